//! The sled store: the node's only durable state.
//!
//! Trees and their keys:
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `items` | item id (16) ‖ origin agency | [`StoredItem`] |
//! | `outbox` | partner ‖ 0x00 ‖ item id (16) | encoded `pb::Envelope`, sealed for that partner |
//! | `deliveries` | item id (16) ‖ partner | [`DeliveryRecord`] |
//! | `seen` | sender ‖ 0x00 ‖ item id (16) | envelope digest (32) |
//! | `audit` | `h` → head; `e` ‖ seq (8, BE) → [`audit::Entry`] | |
//!
//! Every change that belongs together is one sled transaction that also appends its audit
//! entries, so a crash leaves either all of it or none. Callers that promise durability
//! (a receipt to a partner, an accepted submission) call [`Store::flush`] before answering.
//! The store decides nothing: callers pass it what to write.

use std::path::Path;

use prost::Message as _;
use sled::{
    Transactional as _,
    transaction::{ConflictableTransactionError, TransactionError, TransactionalTree},
};

use crate::{
    audit::{self, Event},
    pb,
};

/// A storage failure. Its message names the operation; it never carries item content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption, or the directory is locked by a running
    /// node).
    #[error("store {op}: {source}")]
    Sled {
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: sled::Error,
    },
    /// A stored value could not be decoded.
    #[error("store {op}: corrupt record in tree {tree}")]
    Corrupt {
        /// What was being done.
        op: &'static str,
        /// Which tree.
        tree: &'static str,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { op, source }
}

fn tx_err(op: &'static str) -> impl FnOnce(TransactionError<StoreError>) -> StoreError {
    move |e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(source) => StoreError::Sled { op, source },
    }
}

/// An item held by this node: its own (unredacted original) or received from a partner.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredItem {
    /// Agency that created the item.
    #[prost(string, tag = "1")]
    pub origin: String,
    /// Item id (16-byte ULID).
    #[prost(bytes = "vec", tag = "2")]
    pub item_id: Vec<u8>,
    /// `pb::ItemKind` number.
    #[prost(int32, tag = "3")]
    pub kind: i32,
    /// Creation time at the origin, ms since the epoch.
    #[prost(int64, tag = "4")]
    pub created_at_ms: i64,
    /// When this node stored it, ms since the epoch.
    #[prost(int64, tag = "5")]
    pub stored_at_ms: i64,
    /// The item itself.
    #[prost(message, optional, tag = "6")]
    pub item: Option<pb::Item>,
    /// For received items: digest of the envelope it arrived in.
    #[prost(bytes = "vec", tag = "7")]
    pub envelope_digest: Vec<u8>,
    /// True when this node's agency created it.
    #[prost(bool, tag = "8")]
    pub own: bool,
}

impl StoredItem {
    /// The report inside, if the item is a report.
    pub fn report(&self) -> Option<&pb::Report> {
        match self.item.as_ref()?.body.as_ref()? {
            pb::item::Body::Report(r) => Some(r),
        }
    }
}

/// Delivery state of one own item towards one partner.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeliveryRecord {
    /// "queued", "delivered", "refused" or "withheld".
    #[prost(string, tag = "1")]
    pub state: String,
    /// For "refused" and "withheld": why.
    #[prost(string, tag = "2")]
    pub detail: String,
    /// When the state last changed, ms since the epoch.
    #[prost(int64, tag = "3")]
    pub updated_at_ms: i64,
    /// Digest of the envelope sealed for the partner.
    #[prost(bytes = "vec", tag = "4")]
    pub envelope_digest: Vec<u8>,
}

/// One envelope waiting in a partner's outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Item id.
    pub item_id: [u8; 16],
    /// The envelope sealed for the partner.
    pub envelope: pb::Envelope,
}

/// What happened to one received envelope when the store tried to keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored now.
    Stored,
    /// The same envelope was stored before (a redelivery): nothing changed.
    Duplicate,
    /// Another envelope with this sender and item id was stored before: refused.
    Replay,
}

/// A received item ready to be stored, with its dedup key.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The verified item.
    pub item: StoredItem,
    /// Digest of its envelope.
    pub digest: [u8; 32],
}

/// The node's sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    items: sled::Tree,
    outbox: sled::Tree,
    deliveries: sled::Tree,
    seen: sled::Tree,
    audit: sled::Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. Fails if another process holds it.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(sled_err("open"))?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err("open tree"));
        Ok(Self {
            items: tree("items")?,
            outbox: tree("outbox")?,
            deliveries: tree("deliveries")?,
            seen: tree("seen")?,
            audit: tree("audit")?,
            db,
        })
    }

    /// Writes everything to disk; returns once it is durable.
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await.map_err(sled_err("flush"))?;
        Ok(())
    }

    /// Stores an own item with the envelopes sealed for each allowed partner and the
    /// partners it was withheld from, in one transaction.
    pub fn submit(
        &self,
        item: &StoredItem,
        sealed: &[(String, pb::Envelope, [u8; 32])],
        withheld: &[(String, String)],
    ) -> Result<()> {
        let id = id16(&item.item_id);
        let id_text = ulid_text(&id);
        let now = crate::now_ms();
        let mut events = vec![Event::new(
            audit::Action::Submitted,
            &item.origin,
            &id_text,
            "",
        )];
        let mut records = Vec::new();
        let mut queued = Vec::new();
        for (partner, envelope, digest) in sealed {
            queued.push((outbox_key(partner, &id), envelope.encode_to_vec()));
            records.push((
                delivery_key(&id, partner),
                record("queued", "", now, digest),
            ));
            events.push(Event::new(audit::Action::Queued, partner, &id_text, ""));
        }
        for (partner, reason) in withheld {
            records.push((
                delivery_key(&id, partner),
                record("withheld", reason, now, &[]),
            ));
            events.push(Event::new(
                audit::Action::Withheld,
                partner,
                &id_text,
                reason.as_str(),
            ));
        }
        let key = item_key(&id, &item.origin);
        let value = item.encode_to_vec();
        (&self.items, &self.outbox, &self.deliveries, &self.audit)
            .transaction(|(items, outbox, deliveries, log)| {
                items.insert(key.as_slice(), value.as_slice())?;
                for (k, v) in &queued {
                    outbox.insert(k.as_slice(), v.as_slice())?;
                }
                for (k, v) in &records {
                    deliveries.insert(k.as_slice(), v.as_slice())?;
                }
                append_audit(log, &events)?;
                Ok(())
            })
            .map_err(tx_err("submit"))
    }

    /// Stores received items, deduplicating by (sender, item id), and records each
    /// outcome in the audit log, in one transaction.
    pub fn receive(&self, sender: &str, batch: &[Incoming]) -> Result<Vec<Received>> {
        (&self.items, &self.seen, &self.audit)
            .transaction(|(items, seen, log)| {
                let mut outcomes = Vec::with_capacity(batch.len());
                let mut events = Vec::with_capacity(batch.len());
                for incoming in batch {
                    let id = id16(&incoming.item.item_id);
                    let seen_key = seen_key(sender, &id);
                    let outcome = match seen.get(seen_key.as_slice())? {
                        Some(prior) if prior.as_ref() == incoming.digest => Received::Duplicate,
                        Some(_) => Received::Replay,
                        None => {
                            seen.insert(seen_key.as_slice(), &incoming.digest[..])?;
                            let key = item_key(&id, &incoming.item.origin);
                            items.insert(key.as_slice(), incoming.item.encode_to_vec())?;
                            Received::Stored
                        }
                    };
                    events.push(received_event(sender, &id, outcome));
                    outcomes.push(outcome);
                }
                append_audit(log, &events)?;
                Ok(outcomes)
            })
            .map_err(tx_err("receive"))
    }

    /// Up to `limit` envelopes from `partner`'s outbox, oldest first, after `after`.
    pub fn outbox_batch(
        &self,
        partner: &str,
        after: Option<[u8; 16]>,
        limit: usize,
    ) -> Result<Vec<Queued>> {
        let prefix = outbox_prefix(partner);
        let start = match after {
            Some(id) => {
                let mut k = outbox_key(partner, &id);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for entry in self.outbox.range(start..) {
            let (key, value) = entry.map_err(sled_err("read outbox"))?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let envelope =
                pb::Envelope::decode(value.as_ref()).map_err(|_| StoreError::Corrupt {
                    op: "read outbox",
                    tree: "outbox",
                })?;
            out.push(Queued {
                item_id: id16(&key[prefix.len()..]),
                envelope,
            });
        }
        Ok(out)
    }

    /// Number of envelopes waiting for `partner`.
    pub fn outbox_depth(&self, partner: &str) -> usize {
        self.outbox.scan_prefix(outbox_prefix(partner)).count()
    }

    /// Marks items delivered to `partner` under a verified receipt: removes them from the
    /// outbox and records the new state, in one transaction.
    pub fn mark_delivered(&self, partner: &str, ids: &[[u8; 16]], receipt: &str) -> Result<()> {
        self.settle(partner, ids, "delivered", receipt, audit::Action::Delivered)
    }

    /// Marks one item as permanently refused by `partner` (it leaves the outbox).
    pub fn mark_refused(&self, partner: &str, id: [u8; 16], reason: &str) -> Result<()> {
        self.settle(
            partner,
            &[id],
            "refused",
            reason,
            audit::Action::RefusedByPartner,
        )
    }

    fn settle(
        &self,
        partner: &str,
        ids: &[[u8; 16]],
        state: &str,
        detail: &str,
        action: audit::Action,
    ) -> Result<()> {
        let now = crate::now_ms();
        (&self.outbox, &self.deliveries, &self.audit)
            .transaction(|(outbox, deliveries, log)| {
                let mut events = Vec::with_capacity(ids.len());
                for id in ids {
                    if outbox.remove(outbox_key(partner, id))?.is_none() {
                        continue; // already settled by an earlier receipt
                    }
                    let key = delivery_key(id, partner);
                    let digest = match deliveries.get(key.as_slice())? {
                        Some(v) => DeliveryRecord::decode(v.as_ref())
                            .map(|r| r.envelope_digest)
                            .unwrap_or_default(),
                        None => Vec::new(),
                    };
                    deliveries.insert(key, record(state, detail, now, &digest))?;
                    events.push(Event::new(action, partner, &ulid_text(id), detail));
                }
                append_audit(log, &events)?;
                Ok(())
            })
            .map_err(tx_err("settle deliveries"))
    }

    /// Appends events that belong to no other change (such as a refused connection).
    pub fn record(&self, events: &[Event]) -> Result<()> {
        self.audit
            .transaction(|log| {
                append_audit(log, events)?;
                Ok(())
            })
            .map_err(tx_err("append audit"))
    }

    /// Items held, newest first, at most `limit`.
    pub fn list_items(&self, limit: usize) -> Result<Vec<StoredItem>> {
        let mut out = Vec::new();
        for entry in self.items.iter().rev().take(limit) {
            let (_, value) = entry.map_err(sled_err("list items"))?;
            out.push(decode(&value, "list items", "items")?);
        }
        Ok(out)
    }

    /// Number of items held.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// The item with this id from `origin`, if held.
    pub fn item(&self, id: &[u8; 16], origin: &str) -> Result<Option<StoredItem>> {
        match self
            .items
            .get(item_key(id, origin))
            .map_err(sled_err("get item"))?
        {
            Some(v) => Ok(Some(decode(&v, "get item", "items")?)),
            None => Ok(None),
        }
    }

    /// Delivery records of an own item, by partner.
    pub fn deliveries(&self, id: &[u8; 16]) -> Result<Vec<(String, DeliveryRecord)>> {
        let mut out = Vec::new();
        for entry in self.deliveries.scan_prefix(id) {
            let (key, value) = entry.map_err(sled_err("read deliveries"))?;
            let partner = String::from_utf8_lossy(&key[16..]).into_owned();
            out.push((partner, decode(&value, "read deliveries", "deliveries")?));
        }
        Ok(out)
    }

    /// The audit log, in order, as encoded entries.
    pub fn audit_entries(&self) -> Result<Vec<audit::Entry>> {
        let mut out = Vec::new();
        for entry in self.audit.scan_prefix(b"e") {
            let (_, value) = entry.map_err(sled_err("read audit"))?;
            out.push(decode(&value, "read audit", "audit")?);
        }
        Ok(out)
    }

    /// Checks the audit hash chain; returns the number of entries, or the sequence
    /// number of the first bad one.
    pub fn verify_audit(&self) -> Result<std::result::Result<u64, u64>> {
        let mut raw = Vec::new();
        for entry in self.audit.scan_prefix(b"e") {
            raw.push(entry.map_err(sled_err("read audit"))?.1);
        }
        Ok(audit::verify_chain(raw.iter().map(|v| v.as_ref())))
    }
}

fn decode<T: prost::Message + Default>(
    value: &[u8],
    op: &'static str,
    tree: &'static str,
) -> Result<T> {
    T::decode(value).map_err(|_| StoreError::Corrupt { op, tree })
}

fn received_event(sender: &str, id: &[u8; 16], outcome: Received) -> Event {
    let (action, detail) = match outcome {
        Received::Stored => (audit::Action::Received, ""),
        Received::Duplicate => (audit::Action::Received, "duplicate: already stored"),
        Received::Replay => (audit::Action::Refused, "replay: item id reused"),
    };
    Event::new(action, sender, &ulid_text(id), detail)
}

/// Appends events to the audit chain inside a transaction. The head record is read and
/// written in the same transaction, so concurrent appends serialise through sled's
/// conflict detection and the chain never forks.
fn append_audit(
    log: &TransactionalTree,
    events: &[Event],
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    if events.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = match log.get(b"h")? {
        Some(head) if head.len() == 40 => (u64_be(&head[..8]), head[8..].to_vec()),
        _ => (0, vec![0u8; 32]),
    };
    let now = crate::now_ms();
    for event in events {
        seq += 1;
        let entry = audit::Entry {
            seq,
            at_ms: now,
            action: event.action.name().to_owned(),
            peer: event.peer.clone(),
            item_id: event.item_id.clone(),
            detail: event.detail.clone(),
            prev_hash: prev,
        };
        let encoded = entry.encode_to_vec();
        prev = audit::entry_hash(&encoded).to_vec();
        let mut key = b"e".to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        log.insert(key, encoded)?;
    }
    let mut head = seq.to_be_bytes().to_vec();
    head.extend_from_slice(&prev);
    log.insert(b"h", head)?;
    Ok(())
}

fn record(state: &str, detail: &str, now: i64, digest: &[u8]) -> Vec<u8> {
    DeliveryRecord {
        state: state.to_owned(),
        detail: detail.to_owned(),
        updated_at_ms: now,
        envelope_digest: digest.to_vec(),
    }
    .encode_to_vec()
}

fn u64_be(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}

/// The first 16 bytes of `bytes` as an item id (zero-padded if shorter; callers pass
/// validated ids).
pub fn id16(bytes: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    let n = bytes.len().min(16);
    id[..n].copy_from_slice(&bytes[..n]);
    id
}

/// The ULID text form of an item id.
pub fn ulid_text(id: &[u8; 16]) -> String {
    ulid::Ulid::from_bytes(*id).to_string()
}

fn item_key(id: &[u8; 16], origin: &str) -> Vec<u8> {
    let mut k = id.to_vec();
    k.extend_from_slice(origin.as_bytes());
    k
}

fn outbox_prefix(partner: &str) -> Vec<u8> {
    let mut k = partner.as_bytes().to_vec();
    k.push(0);
    k
}

fn outbox_key(partner: &str, id: &[u8; 16]) -> Vec<u8> {
    let mut k = outbox_prefix(partner);
    k.extend_from_slice(id);
    k
}

fn delivery_key(id: &[u8; 16], partner: &str) -> Vec<u8> {
    item_key(id, partner)
}

fn seen_key(sender: &str, id: &[u8; 16]) -> Vec<u8> {
    outbox_key(sender, id)
}
