//! The server side of `PeerExchange`.

use std::{net::SocketAddr, pin::Pin, sync::Arc};

use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use super::limits::PeerLimits;

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
    limits: Arc<PeerLimits>,
}

impl PeerService {
    /// A service answering for the node behind `shared`. When `stopped` turns true, open
    /// delivery streams end after the batch in hand, so that a stopping node does not
    /// wait for its partners to hang up.
    pub fn new(shared: Arc<Shared>, stopped: watch::Receiver<bool>) -> Self {
        let limits = Arc::new(PeerLimits::new(
            &shared.config.limits,
            shared.config.partners.iter().map(|p| p.agency.as_str()),
        ));
        Self {
            shared,
            stopped,
            limits,
        }
    }

    /// The node this service answers for.
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A slot for one more stream from `partner`, or the refusal, logged and recorded.
    pub(super) fn open_stream(
        &self,
        partner: &PartnerConfig,
        peer: &str,
    ) -> Result<OwnedSemaphorePermit, Status> {
        self.limits.open_stream(&partner.agency).map_err(|reason| {
            warn!(partner = %partner.agency, peer, reason, "refused stream");
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "stream limit")
                .increment(1);
            self.shared.record(Event::new(
                Action::Refused,
                &partner.agency,
                "",
                reason.as_str(),
            ));
            Status::resource_exhausted(reason)
        })
    }

    /// Names the registered partner behind the TLS client certificate, or refuses.
    fn authenticate<T>(&self, request: &Request<T>, peer: &str) -> Result<PartnerConfig, Status> {
        let certs = request.peer_certs();
        let Some(leaf) = certs.as_ref().and_then(|c| c.first()) else {
            return Err(self.refuse_peer(peer, "", "no client certificate"));
        };
        let agency = tls::agency_from_cert(leaf.as_ref())
            .map_err(|e| self.refuse_peer(peer, "", &format!("unusable certificate: {e}")))?;
        let Some(partner) = self.shared.partner(&agency) else {
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
        Ok(partner)
    }

    pub(super) fn refuse_peer(&self, peer: &str, agency: &str, reason: &str) -> Status {
        warn!(peer, agency, reason, "refused peer connection");
        metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "not a registered partner")
            .increment(1);
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

type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullBatch, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_exchange_server::PeerExchange for PeerService {
    type DeliverStream = ResultStream;
    type PullStream = PullStream;

    async fn announce_keys(
        &self,
        request: Request<pb::KeyAnnouncement>,
    ) -> Result<Response<pb::KeyAnnouncementResult>, Status> {
        super::keys::announce_keys(self, request).await
    }

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a: SocketAddr| a.to_string());
        let partner = self.authenticate(&request, &peer)?;
        let slot = self.open_stream(&partner, &peer)?;
        let shared = self.shared.clone();
        let pull = request.into_inner();
        let batches =
            tokio::task::spawn_blocking(move || super::sync::serve_pull(&shared, &partner, &pull))
                .await
                .map_err(|_| Status::internal("pull task failed"))??;
        drop(slot);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            batches.into_iter().map(Ok),
        ))))
    }

    async fn deliver(
        &self,
        request: Request<Streaming<pb::DeliverBatch>>,
    ) -> Result<Response<Self::DeliverStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a: SocketAddr| a.to_string());
        let partner = self.authenticate(&request, &peer)?;
        let slot = self.open_stream(&partner, &peer)?;
        debug!(partner = %partner.agency, %peer, "delivery stream opened");
        let batches = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        // Two stages, so that opening the next batch (CPU) overlaps storing and flushing
        // the previous one (disk). Results still go back in batch order.
        let (checked_tx, checked_rx) = mpsc::channel(1);
        let stage = Stage {
            shared: self.shared.clone(),
            partner,
            peer,
        };
        let reader = stage.clone().read_and_open(
            batches,
            checked_tx,
            self.stopped.clone(),
            self.limits.clone(),
        );
        tokio::spawn(async move {
            reader.await;
            drop(slot);
        });
        tokio::spawn(stage.store_and_receipt(checked_rx, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A batch whose envelopes were opened and checked, ready to store.
struct Checked {
    sequence: u64,
    items: Vec<Incoming>,
    refusals: Vec<pb::Refusal>,
}

/// One delivery stream's context.
#[derive(Clone)]
struct Stage {
    shared: Arc<Shared>,
    partner: PartnerConfig,
    peer: String,
}

impl Stage {
    /// Reads batches and opens their envelopes until the stream ends, fails or the node
    /// stops.
    async fn read_and_open(
        self,
        mut batches: Streaming<pb::DeliverBatch>,
        out: mpsc::Sender<Result<Checked, Status>>,
        mut stopped: watch::Receiver<bool>,
        limits: Arc<PeerLimits>,
    ) {
        let mut throttled = false;
        while !*stopped.borrow_and_update() {
            let next = tokio::select! {
                next = tokio::time::timeout(limits.idle(), batches.message()) => next,
                _ = stopped.changed() => break,
            };
            let Ok(next) = next else {
                debug!(partner = %self.partner.agency, peer = %self.peer, "idle delivery stream closed");
                break;
            };
            let checked = match next {
                Ok(Some(batch)) => {
                    if limits
                        .admit(&self.partner.agency, batch.envelopes.len())
                        .await
                        && !throttled
                    {
                        throttled = true;
                        warn!(
                            partner = %self.partner.agency,
                            peer = %self.peer,
                            "partner delivers faster than limits.max_envelopes_per_sec; holding its stream back"
                        );
                    }
                    check_batch(&self.shared, &self.partner, &self.peer, batch).await
                }
                Ok(None) => break,
                Err(status) => Err(stream_error(
                    &self.shared,
                    &self.partner,
                    &self.peer,
                    status,
                )),
            };
            let failed = checked.is_err();
            if out.send(checked).await.is_err() || failed {
                break;
            }
        }
    }

    /// Stores opened batches in order and answers each with a signed receipt.
    async fn store_and_receipt(
        self,
        mut checked: mpsc::Receiver<Result<Checked, Status>>,
        out: mpsc::Sender<Result<pb::BatchResult, Status>>,
    ) {
        while let Some(batch) = checked.recv().await {
            let result = match batch {
                Ok(batch) => store_batch(&self.shared, &self.partner, &self.peer, batch).await,
                Err(status) => Err(status),
            };
            let failed = result.is_err();
            if out.send(result).await.is_err() || failed {
                break;
            }
        }
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

/// Checks the batch size and opens every envelope off the async threads.
async fn check_batch(
    shared: &Arc<Shared>,
    partner: &PartnerConfig,
    peer: &str,
    batch: pb::DeliverBatch,
) -> Result<Checked, Status> {
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
    let shared = shared.clone();
    let (partner, peer) = (partner.clone(), peer.to_owned());
    let (items, refusals) =
        tokio::task::spawn_blocking(move || open_all(&shared, &partner, &peer, batch.envelopes))
            .await
            .map_err(|_| Status::internal("envelope verification task failed"))?;
    Ok(Checked {
        sequence,
        items,
        refusals,
    })
}

/// Stores a checked batch, flushes it to disk, and signs the receipt.
async fn store_batch(
    shared: &Shared,
    partner: &PartnerConfig,
    peer: &str,
    batch: Checked,
) -> Result<pb::BatchResult, Status> {
    let Checked {
        sequence,
        items: checked,
        mut refusals,
    } = batch;
    let outcomes = {
        let turn = shared.turn().await;
        super::sync::receive(shared, &turn, &partner.agency, &checked)
    }
    .map_err(|e| unavailable(partner, &e))?;
    // Screening the new reports' subjects costs microseconds each; their hits go to disk
    // with them in the flush below.
    shared.screen_received(&partner.agency, &checked, &outcomes);
    shared
        .store
        .flush()
        .await
        .map_err(|e| unavailable(partner, &e))?;
    let mut entries = Vec::new();
    let stored = outcomes.iter().filter(|o| **o == Received::Stored).count();
    metrics::counter!(crate::metrics::RECEIVED, "partner" => partner.agency.clone())
        .increment(stored as u64);
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
            Received::Withdrawn => {
                info!(partner = %partner.agency, item_id = %id, "received an item its originator withdrew: acknowledged, not stored");
                entries.push(pb::ReceiptEntry {
                    item_id: item.item.item_id.clone(),
                    envelope_digest: item.digest.to_vec(),
                });
            }
            Received::Replay => {
                warn!(partner = %partner.agency, peer, item_id = %id, "refused replayed item id");
                count_refusal(&partner.agency, pb::RefusalReason::Replay);
                refusals.push(refusal(
                    &item.item.item_id,
                    pb::RefusalReason::Replay,
                    "item id already used for another envelope",
                ));
            }
            Received::Refused(reason, detail) => {
                count_refusal(&partner.agency, reason);
                shared.record(Event::new(
                    Action::Refused,
                    &partner.agency,
                    &id,
                    format!("{}: {detail}", reason.as_str_name()),
                ));
                refusals.push(refusal(&item.item.item_id, reason, &detail));
            }
        }
    }
    let receipt = (!entries.is_empty()).then(|| {
        envelope::sign_receipt(
            &shared.own_keys().identity,
            &partner.agency,
            crate::now_ms(),
            entries,
        )
    });
    Ok(pb::BatchResult {
        sequence,
        receipt,
        refusals,
    })
}

fn count_refusal(partner: &str, reason: pb::RefusalReason) {
    metrics::counter!(crate::metrics::REFUSED, "partner" => partner.to_owned(), "reason" => reason.as_str_name())
        .increment(1);
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
    let results = open_parallel(shared, partner, &envelopes);
    let mut ok = Vec::with_capacity(envelopes.len());
    let mut refusals = Vec::new();
    let mut events = Vec::new();
    for (env, result) in envelopes.iter().zip(results) {
        match result {
            Ok(incoming) => ok.push(incoming),
            Err((reason, detail)) => {
                let id = store::ulid_text(&store::id16(&env.item_id));
                warn!(partner = %partner.agency, peer, item_id = %id, reason = reason.as_str_name(), detail = %detail, "refused envelope");
                count_refusal(&partner.agency, reason);
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

type Opening = Result<Incoming, (pb::RefusalReason, String)>;

/// Opens envelopes on as many threads as there are cores (for batches large enough to
/// be worth it), the calling thread among them, keeping their order.
fn open_parallel(
    shared: &Shared,
    partner: &PartnerConfig,
    envelopes: &[pb::Envelope],
) -> Vec<Opening> {
    let open_part = |part: &[pb::Envelope]| -> Vec<Opening> {
        part.iter().map(|e| open_one(shared, partner, e)).collect()
    };
    let threads = crate::cores();
    if threads < 2 || envelopes.len() < 16 {
        return open_part(envelopes);
    }
    let (first, rest) = envelopes.split_at(envelopes.len().div_ceil(threads));
    std::thread::scope(|scope| {
        let workers: Vec<_> = rest
            .chunks(first.len())
            .map(|part| (part.len(), scope.spawn(move || open_part(part))))
            .collect();
        let mut opened = open_part(first);
        for (len, worker) in workers {
            opened.extend(worker.join().unwrap_or_else(|_| {
                let failed = (
                    pb::RefusalReason::Unavailable,
                    "verification failed".to_owned(),
                );
                vec![Err(failed); len]
            }));
        }
        opened
    })
}

/// Checks and opens one envelope from `partner` (delivered, or answering a pull).
pub(super) fn open_one(
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
    // The inbound policy is checked on the clear header first, so that an unwanted kind
    // costs no decryption; the kind is authenticated by `open` before anything is stored.
    let kind = pb::ItemKind::try_from(env.kind).unwrap_or_default();
    // A lifecycle message concerns an item exchanged before (or a request about one); it
    // is checked against what this node holds when it is stored.
    if !crate::lifecycle::is_lifecycle_kind(kind) && !shared.policy().accepts(&partner.agency, kind)
    {
        return Err((
            pb::RefusalReason::NotAccepted,
            format!(
                "{} does not accept {} from {}",
                shared.config.agency,
                report::kind_name(kind),
                partner.agency
            ),
        ));
    }
    // The creation time is in the clear header too, and signed: an envelope outside the
    // window costs no decryption, and one whose time was altered fails the signature.
    shared
        .config
        .limits
        .check_time(env.created_at_ms, crate::now_ms())
        .map_err(|why| (pb::RefusalReason::OutOfTimeWindow, why))?;
    let opened = shared
        .open_envelope(&partner.agency, env)
        .map_err(|e| (e.reason(), e.to_string()))?;
    match opened.item.body.as_ref() {
        Some(pb::item::Body::Report(report)) => {
            report::validate(report, &format!("item from {}", partner.agency))
                .map_err(|e| (pb::RefusalReason::Malformed, e.to_string()))?;
            shared
                .config
                .limits
                .check_recipients(report)
                .map_err(|why| (pb::RefusalReason::Malformed, why))?;
        }
        Some(pb::item::Body::WatchlistDelta(delta)) => {
            super::sync::check_incoming(shared, &partner.agency, delta, &opened.item.originator)?;
        }
        Some(_) if !opened.item.originator.is_empty() => {
            return Err((
                pb::RefusalReason::Malformed,
                "a lifecycle message names no originator: it is from its sender".into(),
            ));
        }
        Some(_) => {}
        None => return Err((pb::RefusalReason::Malformed, "empty item body".into())),
    }
    let origin = match opened.item.originator.as_str() {
        "" => opened.header.sender.clone(),
        other => {
            crate::identity::validate_agency_id(other)
                .map_err(|e| (pb::RefusalReason::Malformed, format!("originator: {e}")))?;
            other.to_owned()
        }
    };
    // This node's own items reach it from no one else: an item "passed on" in its name
    // would sit beside the original and could be retracted or corrected by its sender.
    if origin == shared.config.agency {
        return Err((
            pb::RefusalReason::NotOriginator,
            format!(
                "the item names {origin}, this node, as its originator; {origin}'s items \
                 are not taken from {}",
                partner.agency
            ),
        ));
    }
    let digest = envelope::envelope_digest(env);
    Ok(Incoming {
        digest,
        item: StoredItem {
            origin,
            sender: opened.header.sender.clone(),
            item_id: opened.header.item_id.to_vec(),
            kind: opened.header.kind as i32,
            created_at_ms: opened.header.created_at_ms,
            stored_at_ms: crate::now_ms(),
            item: Some(opened.item),
            envelope_digest: digest.to_vec(),
            own: false,
            version: 1,
            reason: String::new(),
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
