//! The server side of `PeerExchange`.

use std::{net::SocketAddr, pin::Pin, sync::Arc};

use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::{
    audit::{Action, Event},
    config::PartnerConfig,
    envelope,
    node::Shared,
    pb, report,
    store::{self, Incoming, Received, StoredItem},
    tls,
};

/// Most envelopes accepted in one batch.
pub const MAX_BATCH_ENVELOPES: usize = 4096;

/// The `PeerExchange` service of a node.
#[derive(Clone)]
pub struct PeerService {
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
}

impl PeerService {
    /// A service answering for the node behind `shared`. When `stopped` turns true, open
    /// delivery streams end after the batch in hand, so that a stopping node does not
    /// wait for its partners to hang up.
    pub fn new(shared: Arc<Shared>, stopped: watch::Receiver<bool>) -> Self {
        Self { shared, stopped }
    }

    /// Names the registered partner behind the TLS client certificate, or refuses.
    fn authenticate<T>(&self, request: &Request<T>, peer: &str) -> Result<PartnerConfig, Status> {
        let certs = request.peer_certs();
        let Some(leaf) = certs.as_ref().and_then(|c| c.first()) else {
            return Err(self.refuse_peer(peer, "", "no client certificate"));
        };
        let agency = tls::agency_from_cert(leaf.as_ref())
            .map_err(|e| self.refuse_peer(peer, "", &format!("unusable certificate: {e}")))?;
        let Some(partner) = self.shared.config.partner(&agency) else {
            return Err(self.refuse_peer(
                peer,
                &agency,
                &format!(
                    "agency {agency} is not a registered partner of {}",
                    self.shared.config.agency
                ),
            ));
        };
        if let Some(pin) = partner.cert_fingerprint
            && tls::fingerprint(leaf.as_ref()) != pin
        {
            return Err(self.refuse_peer(
                peer,
                &agency,
                "certificate does not match the pinned fingerprint",
            ));
        }
        Ok(partner.clone())
    }

    fn refuse_peer(&self, peer: &str, agency: &str, reason: &str) -> Status {
        warn!(peer, agency, reason, "refused peer connection");
        let who = if agency.is_empty() {
            peer.to_owned()
        } else {
            format!("{agency}@{peer}")
        };
        self.shared
            .record(Event::new(Action::Refused, &who, "", reason));
        Status::permission_denied(reason.to_owned())
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::BatchResult, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_exchange_server::PeerExchange for PeerService {
    type DeliverStream = ResultStream;

    async fn deliver(
        &self,
        request: Request<Streaming<pb::DeliverBatch>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a: SocketAddr| a.to_string());
        let partner = self.authenticate(&request, &peer)?;
        debug!(partner = %partner.agency, %peer, "delivery stream opened");
        let mut batches = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let shared = self.shared.clone();
        let mut stopped = self.stopped.clone();
        tokio::spawn(async move {
            while !*stopped.borrow_and_update() {
                let next = tokio::select! {
                    next = batches.message() => next,
                    _ = stopped.changed() => break,
                };
                let result = match next {
                    Ok(Some(batch)) => receive_batch(&shared, &partner, &peer, batch).await,
                    Ok(None) => break,
                    Err(status) => Err(stream_error(&shared, &partner, &peer, status)),
                };
                let failed = result.is_err();
                if tx.send(result).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A malformed or oversized message ends the stream; it is logged and recorded.
fn stream_error(shared: &Shared, partner: &PartnerConfig, peer: &str, status: Status) -> Status {
    let reason = format!("unreadable message: {}", status.message());
    warn!(partner = %partner.agency, peer, reason = %reason, "refused message from peer");
    shared.record(Event::new(
        Action::Refused,
        &partner.agency,
        "",
        reason.as_str(),
    ));
    Status::new(status.code(), reason)
}

async fn receive_batch(
    shared: &Arc<Shared>,
    partner: &PartnerConfig,
    peer: &str,
    batch: pb::DeliverBatch,
) -> Result<pb::BatchResult, Status> {
    if batch.envelopes.len() > MAX_BATCH_ENVELOPES {
        let reason = format!(
            "batch of {} envelopes exceeds {MAX_BATCH_ENVELOPES}",
            batch.envelopes.len()
        );
        warn!(partner = %partner.agency, peer, reason = %reason, "refused batch");
        shared.record(Event::new(
            Action::Refused,
            &partner.agency,
            "",
            reason.as_str(),
        ));
        return Err(Status::resource_exhausted(reason));
    }
    let sequence = batch.sequence;
    let (checked, mut refusals) = {
        let shared = shared.clone();
        let (partner, peer) = (partner.clone(), peer.to_owned());
        tokio::task::spawn_blocking(move || open_all(&shared, &partner, &peer, batch.envelopes))
            .await
            .map_err(|_| Status::internal("envelope verification task failed"))?
    };
    let outcomes = shared
        .store
        .receive(&partner.agency, &checked)
        .map_err(|e| unavailable(partner, &e))?;
    shared
        .store
        .flush()
        .await
        .map_err(|e| unavailable(partner, &e))?;
    let mut entries = Vec::new();
    for (item, outcome) in checked.iter().zip(outcomes) {
        let id = store::ulid_text(&store::id16(&item.item.item_id));
        match outcome {
            Received::Stored | Received::Duplicate => {
                info!(partner = %partner.agency, item_id = %id, duplicate = outcome == Received::Duplicate, "received item");
                entries.push(pb::ReceiptEntry {
                    item_id: item.item.item_id.clone(),
                    envelope_digest: item.digest.to_vec(),
                });
            }
            Received::Replay => {
                warn!(partner = %partner.agency, peer, item_id = %id, "refused replayed item id");
                refusals.push(refusal(
                    &item.item.item_id,
                    pb::RefusalReason::Replay,
                    "item id already used for another envelope",
                ));
            }
        }
    }
    let receipt = (!entries.is_empty()).then(|| {
        envelope::sign_receipt(&shared.identity, &partner.agency, crate::now_ms(), entries)
    });
    Ok(pb::BatchResult {
        sequence,
        receipt,
        refusals,
    })
}

fn unavailable(partner: &PartnerConfig, e: &store::StoreError) -> Status {
    tracing::error!(partner = %partner.agency, error = %e, "cannot store received items");
    Status::unavailable("receiver cannot store items now; retry later")
}

/// Verifies and decrypts every envelope of a batch. Returns the items to store and the
/// refusals (already logged and recorded).
fn open_all(
    shared: &Shared,
    partner: &PartnerConfig,
    peer: &str,
    envelopes: Vec<pb::Envelope>,
) -> (Vec<Incoming>, Vec<pb::Refusal>) {
    let mut ok = Vec::with_capacity(envelopes.len());
    let mut refusals = Vec::new();
    let mut events = Vec::new();
    for env in envelopes {
        match open_one(shared, partner, &env) {
            Ok(incoming) => ok.push(incoming),
            Err((reason, detail)) => {
                let id = store::ulid_text(&store::id16(&env.item_id));
                warn!(partner = %partner.agency, peer, item_id = %id, reason = reason.as_str_name(), detail = %detail, "refused envelope");
                events.push(Event::new(
                    Action::Refused,
                    &partner.agency,
                    &id,
                    format!("{}: {detail}", reason.as_str_name()),
                ));
                refusals.push(refusal(&env.item_id, reason, &detail));
            }
        }
    }
    shared.record_all(&events);
    (ok, refusals)
}

fn open_one(
    shared: &Shared,
    partner: &PartnerConfig,
    env: &pb::Envelope,
) -> Result<Incoming, (pb::RefusalReason, String)> {
    if env.sender != partner.agency {
        return Err((
            pb::RefusalReason::SenderMismatch,
            format!(
                "envelope names sender {:?} but the TLS peer is {}",
                env.sender, partner.agency
            ),
        ));
    }
    let opened = envelope::open(&shared.identity, &partner.keys, env)
        .map_err(|e| (e.reason(), e.to_string()))?;
    let report = match opened.item.body.as_ref() {
        Some(pb::item::Body::Report(r)) => r,
        None => return Err((pb::RefusalReason::Malformed, "empty item body".into())),
    };
    report::validate(report, &format!("item from {}", partner.agency))
        .map_err(|e| (pb::RefusalReason::Malformed, e.to_string()))?;
    let digest = envelope::envelope_digest(env);
    Ok(Incoming {
        digest,
        item: StoredItem {
            origin: opened.header.sender.clone(),
            item_id: opened.header.item_id.to_vec(),
            kind: opened.header.kind as i32,
            created_at_ms: opened.header.created_at_ms,
            stored_at_ms: crate::now_ms(),
            item: Some(opened.item),
            envelope_digest: digest.to_vec(),
            own: false,
        },
    })
}

fn refusal(item_id: &[u8], reason: pb::RefusalReason, detail: &str) -> pb::Refusal {
    pb::Refusal {
        item_id: item_id.to_vec(),
        reason: reason as i32,
        detail: detail.to_owned(),
    }
}
