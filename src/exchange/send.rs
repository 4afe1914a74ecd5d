//! The client side: one delivery task per partner.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use crate::{
    config::PartnerConfig,
    envelope,
    node::Shared,
    pb::{self, peer_exchange_client::PeerExchangeClient},
    store, tls,
};

/// Batches in flight on one stream before the task waits for a result.
const WINDOW: usize = 4;
/// Room left in a message for the batch's own fields.
const MESSAGE_OVERHEAD: usize = 1024;
/// How long an idle stream stays open before the task closes it.
const IDLE: Duration = Duration::from_secs(30);

/// Items a partner confirmed with a verified receipt (for benchmarks and the demo).
#[derive(Debug, Clone)]
pub struct DeliveryEvent {
    /// The partner.
    pub partner: String,
    /// Items it confirmed.
    pub item_ids: Vec<[u8; 16]>,
    /// When the receipt was verified.
    pub at: Instant,
}

/// Why a stream ended early.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{0}")]
    Transport(String),
    #[error("{}", status_text(.0))]
    Status(#[from] tonic::Status),
    #[error("invalid receipt: {0}")]
    Receipt(#[from] envelope::ReceiptError),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("partner could not store items now: {0}")]
    Unavailable(String),
    #[error("answer out of order or incomplete")]
    Protocol,
    #[error("partner refused a message as too large: {detail}")]
    TooLarge {
        /// Items of the batch the partner refused.
        items: Vec<[u8; 16]>,
        /// The partner's words.
        detail: String,
    },
}

/// A status as an operator reads it: the code's name and the message, without the
/// transport's debug dump.
fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Delivers `partner`'s outbox until `shutdown` turns true.
pub async fn run_delivery(
    shared: Arc<Shared>,
    partner: PartnerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let notify = shared.notifier(&partner.agency);
    let delivery = &shared.config.delivery;
    let mut backoff = Duration::from_millis(delivery.initial_backoff_ms);
    let max_backoff = Duration::from_millis(delivery.max_backoff_ms);
    let mut one_at_a_time = false;
    let mut generation = shared.keys_generation();
    let mut client_config = match shared.client_config(&partner) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(partner = %partner.agency, error = %e, "cannot build TLS client config; delivery to this partner is stopped");
            return;
        }
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Keys changed (a rotation here, or an announcement from the partner): connect
        // with the certificate and pin held now.
        if generation != shared.keys_generation() {
            generation = shared.keys_generation();
            match shared.client_config(&partner) {
                Ok(c) => client_config = c,
                Err(e) => {
                    tracing::error!(partner = %partner.agency, error = %e, "cannot rebuild TLS client config after a key change; keeping the previous one")
                }
            }
        }
        // The partner must hold this node's new keys before anything made with them.
        if shared.store.has_pending_announcements(&partner.agency) {
            if let Err(e) =
                super::keys::send_pending(&shared, &partner, client_config.clone()).await
            {
                warn!(partner = %partner.agency, error = %e, retry_in_ms = backoff.as_millis() as u64, "key announcement not delivered");
                tokio::select! {
                    _ = tokio::time::sleep(jitter(backoff)) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(max_backoff);
                continue;
            }
            backoff = Duration::from_millis(delivery.initial_backoff_ms);
        }
        if shared.store.outbox_depth(&partner.agency) == 0 {
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let attempt = stream_outbox(
            &shared,
            &partner,
            client_config.clone(),
            &notify,
            &mut shutdown,
            one_at_a_time,
        );
        match attempt.await {
            Ok(()) => {
                backoff = Duration::from_millis(delivery.initial_backoff_ms);
                one_at_a_time = false;
            }
            // The partner takes smaller messages than this node sends: retry one envelope
            // per batch, and give up on an envelope that alone is too large, so that it
            // does not hold up the items behind it.
            Err(StreamError::TooLarge { items, detail }) => {
                if one_at_a_time && let [id] = items[..] {
                    let reason = format!("larger than the partner accepts ({detail})");
                    warn!(partner = %partner.agency, item_id = %store::ulid_text(&id), reason = %reason, "cannot deliver item");
                    if let Err(e) = shared.store.mark_refused(&partner.agency, id, &reason) {
                        tracing::error!(partner = %partner.agency, error = %e, "cannot record a refused item");
                    }
                } else {
                    warn!(partner = %partner.agency, detail = %detail, "partner refused a batch as too large; sending one envelope per batch");
                    one_at_a_time = true;
                }
            }
            Err(e) => {
                warn!(partner = %partner.agency, error = %e, retry_in_ms = backoff.as_millis() as u64, "delivery failed");
                tokio::select! {
                    _ = tokio::time::sleep(jitter(backoff)) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// Whether a partner's status says a message exceeded its size limit (tonic answers
/// OutOfRange; a batch over the envelope count, ResourceExhausted).
fn too_large(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    )
}

/// Spreads retries of many nodes by up to a quarter of the wait.
fn jitter(d: Duration) -> Duration {
    let nanos = crate::now_ms().unsigned_abs() % 251;
    d + d.mul_f64(nanos as f64 / 1000.0)
}

struct InFlight {
    sequence: u64,
    expected: Vec<([u8; 16], [u8; 32])>,
    sent_at: Instant,
}

/// Opens one stream and delivers until the outbox is empty and the stream idles out.
async fn stream_outbox(
    shared: &Arc<Shared>,
    partner: &PartnerConfig,
    client_config: Arc<rustls::ClientConfig>,
    notify: &tokio::sync::Notify,
    shutdown: &mut watch::Receiver<bool>,
    one_at_a_time: bool,
) -> Result<(), StreamError> {
    let channel = tls::channel(&partner.endpoint, client_config)
        .map_err(|e| StreamError::Transport(e.to_string()))?;
    let limit = shared.config.max_message_bytes;
    let mut client = PeerExchangeClient::new(channel)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let (tx, rx) = mpsc::channel::<pb::DeliverBatch>(WINDOW);
    let mut results = client.deliver(ReceiverStream::new(rx)).await?.into_inner();
    debug!(partner = %partner.agency, "delivery stream open");
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut cursor: Option<[u8; 16]> = None;
    let mut sequence = 0u64;
    let generation = shared.keys_generation();
    let mut rekeyed = false;
    loop {
        if in_flight.is_empty() {
            // Everything before the cursor has been settled or was never read (an item
            // whose id sorts before one already sent): start again from the oldest.
            cursor = None;
        }
        while in_flight.len() < WINDOW && !rekeyed {
            let batch = next_batch(shared, partner, cursor, one_at_a_time)?;
            // Keys changed since the stream opened: a key announcement may have to go
            // first. Checked after the read, so that a batch holding anything made with
            // new keys is never sent on this stream (a rotation bumps the generation
            // before it uses the new keys).
            if shared.keys_generation() != generation {
                rekeyed = true;
                break;
            }
            let Some(last) = batch.last() else { break };
            cursor = Some(last.item_id);
            sequence += 1;
            in_flight.push_back(InFlight {
                sequence,
                sent_at: Instant::now(),
                expected: batch
                    .iter()
                    .map(|q| (q.item_id, envelope::envelope_digest(&q.envelope)))
                    .collect(),
            });
            let envelopes = batch.into_iter().map(|q| q.envelope).collect();
            if tx
                .send(pb::DeliverBatch {
                    sequence,
                    envelopes,
                })
                .await
                .is_err()
            {
                return Err(StreamError::Transport("stream closed by partner".into()));
            }
        }
        if in_flight.is_empty() {
            if rekeyed {
                return Ok(());
            }
            tokio::select! {
                _ = notify.notified() => continue,
                _ = tokio::time::sleep(IDLE) => return Ok(()),
                _ = shutdown.changed() => return Ok(()),
            }
        }
        let result = tokio::select! {
            r = results.message() => r,
            _ = shutdown.changed() => return Ok(()),
        };
        let result = match result {
            Ok(result) => result,
            Err(status) if too_large(&status) => {
                let items = in_flight
                    .front()
                    .map(|b| b.expected.iter().map(|(id, _)| *id).collect());
                return Err(StreamError::TooLarge {
                    items: items.unwrap_or_default(),
                    detail: status.message().to_owned(),
                });
            }
            Err(status) => return Err(status.into()),
        };
        let Some(result) = result else {
            return Err(StreamError::Transport("stream ended by partner".into()));
        };
        let batch = in_flight.pop_front().ok_or(StreamError::Protocol)?;
        settle(shared, partner, batch, result)?;
    }
}

/// The next envelopes to send: at most `batch_size`, and few enough that the batch stays
/// under the message limit. An envelope that alone exceeds the limit could never be
/// delivered; it is marked refused here so that it does not block the items behind it.
fn next_batch(
    shared: &Shared,
    partner: &PartnerConfig,
    cursor: Option<[u8; 16]>,
    one_at_a_time: bool,
) -> Result<Vec<store::Queued>, StreamError> {
    let count = if one_at_a_time {
        1
    } else {
        shared.config.delivery.batch_size
    };
    let limit = shared
        .config
        .max_message_bytes
        .saturating_sub(MESSAGE_OVERHEAD);
    'read: loop {
        let mut batch = shared.store.outbox_batch(&partner.agency, cursor, count)?;
        let mut total = 0;
        let mut keep = 0;
        for queued in &batch {
            let size = prost::Message::encoded_len(&queued.envelope) + 8;
            if size > limit && keep == 0 {
                let reason =
                    format!("envelope of {size} bytes exceeds the message limit of {limit} bytes");
                warn!(partner = %partner.agency, item_id = %store::ulid_text(&queued.item_id), reason = %reason, "cannot deliver item");
                shared
                    .store
                    .mark_refused(&partner.agency, queued.item_id, &reason)?;
                continue 'read;
            }
            if total + size > limit {
                break;
            }
            total += size;
            keep += 1;
        }
        batch.truncate(keep);
        return Ok(batch);
    }
}

/// Checks one batch result against what was sent and records the outcome.
fn settle(
    shared: &Shared,
    partner: &PartnerConfig,
    batch: InFlight,
    result: pb::BatchResult,
) -> Result<(), StreamError> {
    if result.sequence != batch.sequence {
        return Err(StreamError::Protocol);
    }
    let mut confirmed = Vec::new();
    if let Some(receipt) = &result.receipt {
        shared.verify_receipt(receipt, &partner.agency)?;
        for entry in &receipt.entries {
            let id = store::id16(&entry.item_id);
            if batch
                .expected
                .iter()
                .any(|(i, d)| *i == id && d[..] == entry.envelope_digest[..])
            {
                confirmed.push(id);
            }
        }
    }
    let mut unavailable = None;
    for refusal in &result.refusals {
        let id = store::id16(&refusal.item_id);
        if !batch.expected.iter().any(|(i, _)| *i == id) {
            continue;
        }
        let reason = pb::RefusalReason::try_from(refusal.reason).unwrap_or_default();
        if reason == pb::RefusalReason::Unavailable {
            unavailable = Some(refusal.detail.clone());
            continue;
        }
        warn!(partner = %partner.agency, item_id = %store::ulid_text(&id), reason = reason.as_str_name(), detail = %refusal.detail, "partner refused item");
        metrics::counter!(crate::metrics::REFUSED_BY_PARTNER, "partner" => partner.agency.clone(), "reason" => reason.as_str_name())
            .increment(1);
        shared.store.mark_refused(
            &partner.agency,
            id,
            &format!("{}: {}", reason.as_str_name(), refusal.detail),
        )?;
    }
    if !confirmed.is_empty() {
        let receipt_note = format!("receipt for {} item(s)", confirmed.len());
        shared
            .store
            .mark_delivered(&partner.agency, &confirmed, &receipt_note)?;
        info!(partner = %partner.agency, items = confirmed.len(), "delivered");
        metrics::counter!(crate::metrics::DELIVERED, "partner" => partner.agency.clone())
            .increment(confirmed.len() as u64);
        metrics::histogram!(crate::metrics::DELIVERY_SECONDS, "partner" => partner.agency.clone())
            .record(batch.sent_at.elapsed().as_secs_f64());
        shared.publish(DeliveryEvent {
            partner: partner.agency.clone(),
            item_ids: confirmed.clone(),
            at: Instant::now(),
        });
    }
    if let Some(detail) = unavailable {
        return Err(StreamError::Unavailable(detail));
    }
    let settled = confirmed.len() + result.refusals.len();
    if settled < batch.expected.len() {
        return Err(StreamError::Protocol);
    }
    Ok(())
}
