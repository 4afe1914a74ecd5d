//! The sled store: the node's only durable state.
//!
//! Trees and their keys:
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `items` | item id (16) ‖ sender agency | [`StoredItem`], sealed with the data key |
//! | `outbox` | partner ‖ 0x00 ‖ item id (16) | encoded `pb::Envelope`, sealed for that partner |
//! | `deliveries` | item id (16) ‖ partner | [`DeliveryRecord`] |
//! | `seen` | sender ‖ 0x00 ‖ item id (16) | envelope digest (32) |
//! | `audit` | `h` → head (seq ‖ hash); `c` → seq of the last checkpoint (8, BE); `e` ‖ seq (8, BE) → [`audit::Entry`] | |
//! | `screening` | item id (16) ‖ sender agency (the item's key) | encoded `pb::ReportScreening`: the watchlist hits of a report's subjects, sealed with the data key |
//! | `lists` | list name | [`ListMeta`] |
//! | `list_entries` | list ‖ 0x00 ‖ entry id | encoded `pb::WatchlistEntry` (canonical) |
//! | `list_deltas` | list ‖ 0x00 ‖ version (8, BE) | encoded `pb::WatchlistDelta`, whole (owner) |
//! | `list_staged` | list ‖ 0x00 ‖ from (8, BE) ‖ to (8, BE) ‖ part (4, BE) | a received part or an out-of-order delta, waiting |
//! | `list_sent` | list ‖ 0x00 ‖ partner ‖ 0x00 ‖ version (8, BE) | item ids (16 each) of the envelopes queued for it (owner) |
//!
//! Values "sealed with the data key" are [`DataKey::seal`]ed, bound to their tree and key:
//! they hold report content, which a copy of the data directory must not reveal. The other
//! trees hold no report content.
//!
//! Every change that belongs together is one sled transaction that also appends its audit
//! entries, so a crash leaves either all of it or none. Callers that promise durability
//! (a receipt to a partner, an accepted submission) call [`Store::flush`] before answering.
//! The store decides nothing: callers pass it what to write.

use std::{path::Path, sync::Arc};

use prost::Message as _;
use sled::{
    Transactional as _,
    transaction::{ConflictableTransactionError, TransactionError, TransactionalTree},
};

use crate::{
    audit::{self, Event},
    identity::DataKey,
    pb,
};

mod lists;

pub use lists::{ApplyOutcome, ListMeta, ListPublish, ListSyncRow, StagedKey};

mod keys;

mod screening;

mod correlations;

mod lifecycle;

pub use lifecycle::Change;

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
    /// The data key file could not be read, or sealing with it failed.
    #[error("data key: {0}")]
    DataKey(String),
    /// A value sealed at rest does not open with the data key: the key file is not the one
    /// the store was written with, or the value was changed.
    #[error(
        "store {op}: a record in tree {tree} does not decrypt with the data key ([keys] data): \
         wrong key file, or a damaged store"
    )]
    Undecryptable {
        /// What was being done.
        op: &'static str,
        /// The tree.
        tree: &'static str,
    },
    /// Another process holds the store (sled locks its directory).
    #[error(
        "data directory {dir} is in use by another process (is `entente serve` running for \
         this node? commands reach a running node through its control socket)"
    )]
    Locked {
        /// The data directory.
        dir: String,
    },
    /// A watchlist delta did not give the digest it carries. Only used inside the store to
    /// abort the transaction that applied it; callers see [`ApplyOutcome::Mismatch`].
    #[error("watchlist delta does not give the digest it carries (computed {computed})")]
    ListMismatch {
        /// The digest the entries would have had.
        computed: crate::watchlist::Digest,
    },
    /// The file system of the data directory has less free space than the node keeps in
    /// reserve; nothing was written. sled stalls rather than fails when a write finds the
    /// disk full, so writes stop here first.
    #[error(
        "data directory {dir} has {free_mib} MiB free, below the {reserve_mib} MiB kept in \
         reserve ([limits] min_free_disk_mb): nothing was stored; free space and it goes on"
    )]
    LowSpace {
        /// The data directory.
        dir: String,
        /// Free space, in MiB.
        free_mib: u64,
        /// The reserve, in MiB.
        reserve_mib: u64,
    },
    /// No correlation has the id given.
    #[error("no correlation with that id")]
    NoSuchCorrelation,
    /// The correlation was closed already.
    #[error("that correlation is closed already")]
    CorrelationClosed,
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
    /// The agency that delivered it (this node's own agency for own items). Together with
    /// the item id it is the item's key: a sender vouches only for what it sent.
    #[prost(string, tag = "9")]
    pub sender: String,
    /// The version held: 0 or 1 for an item never corrected, then 2, 3, ...
    #[prost(uint32, tag = "10")]
    pub version: u32,
    /// For a corrected version: why the originator corrected it.
    #[prost(string, tag = "11")]
    pub reason: String,
}

impl StoredItem {
    /// The report inside, if the item is a report.
    pub fn report(&self) -> Option<&pb::Report> {
        match self.item.as_ref()?.body.as_ref()? {
            pb::item::Body::Report(r) => Some(r),
            _ => None,
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
    /// The policy rule that decided, if a rule did.
    #[prost(string, tag = "5")]
    pub rule: String,
    /// Field paths removed or generalised in the partner's copy.
    #[prost(string, repeated, tag = "6")]
    pub redactions: Vec<String>,
}

/// An envelope sealed for one partner under one policy decision.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The partner.
    pub partner: String,
    /// The envelope (holding the partner's redacted copy).
    pub envelope: pb::Envelope,
    /// Its digest.
    pub digest: [u8; 32],
    /// The rule that allowed it.
    pub rule: String,
    /// Field paths removed or generalised.
    pub redactions: Vec<String>,
}

/// A partner the policy kept an item from.
#[derive(Debug, Clone)]
pub struct Withheld {
    /// The partner.
    pub partner: String,
    /// Why.
    pub reason: String,
    /// The deny rule, if a rule decided.
    pub rule: String,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Stored now.
    Stored,
    /// The same envelope was stored before (a redelivery): nothing changed.
    Duplicate,
    /// Another envelope with this sender and item id was stored before: refused.
    Replay,
    /// The originator withdrew the item before it arrived: acknowledged, not stored.
    Withdrawn,
    /// A lifecycle message that does not fit what this node holds: refused, and why.
    Refused(pb::RefusalReason, String),
}

/// A received item ready to be stored, with its dedup key.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The verified item.
    pub item: StoredItem,
    /// Digest of its envelope.
    pub digest: [u8; 32],
}

/// The writes that share one item, as (key, value) pairs: its record (for a new item,
/// sealed with the data key), its envelopes for the outboxes and its delivery records.
struct ShareWrites {
    item: Option<(Vec<u8>, Vec<u8>)>,
    queued: Vec<(Vec<u8>, Vec<u8>)>,
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The node's sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Encrypts the values of `items` and `screening`, which hold report content.
    at_rest: Arc<DataKey>,
    items: sled::Tree,
    outbox: sled::Tree,
    deliveries: sled::Tree,
    seen: sled::Tree,
    screening: sled::Tree,
    audit: sled::Tree,
    lists: sled::Tree,
    list_entries: sled::Tree,
    list_deltas: sled::Tree,
    list_staged: sled::Tree,
    list_sent: sled::Tree,
    /// Signs the audit log's checkpoints; without it none are written.
    checkpoints: Option<Arc<dyn audit::Signer>>,
    /// The data directory, whose free space is checked before each write of new items.
    dir: Arc<Path>,
    /// Bytes that must stay free on the data directory's file system (0: not checked).
    reserve_bytes: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// sled's page cache. Its default, 1 GiB, would be filled by the pass over every watchlist
/// entry that builds the screening index at start-up, and stay resident, although that
/// pass reads each entry once and the index then holds what screening needs. Deliveries
/// and receipts touch a small, recent part of the store, which this holds easily.
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in `dir`. Fails with [`StoreError::Locked`] if another
    /// process holds it.
    pub fn open(dir: &Path, at_rest: DataKey) -> Result<Self> {
        restrict_dir(dir).map_err(|e| StoreError::Sled {
            op: "create data directory",
            source: sled::Error::Io(e),
        })?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::Locked {
                        dir: dir.display().to_string(),
                    }
                }
                other => StoreError::Sled {
                    op: "open",
                    source: other,
                },
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err("open tree"));
        Ok(Self {
            at_rest: Arc::new(at_rest),
            items: tree("items")?,
            outbox: tree("outbox")?,
            deliveries: tree("deliveries")?,
            seen: tree("seen")?,
            screening: tree("screening")?,
            audit: tree("audit")?,
            lists: tree("lists")?,
            list_entries: tree("list_entries")?,
            list_deltas: tree("list_deltas")?,
            list_staged: tree("list_staged")?,
            list_sent: tree("list_sent")?,
            checkpoints: None,
            dir: dir.into(),
            reserve_bytes: 0,
            db,
        })
    }

    /// Keeps `mib` MiB free on the data directory's file system: below that, writes of new
    /// items, lifecycle changes and watchlist versions fail with [`StoreError::LowSpace`]
    /// before anything is written.
    pub fn with_reserve(mut self, mib: u64) -> Self {
        self.reserve_bytes = mib.saturating_mul(1024 * 1024);
        self
    }

    /// Fails with [`StoreError::LowSpace`] when less than the reserve is free. A file
    /// system that cannot say how much is free is not held up.
    pub fn ensure_space(&self) -> Result<()> {
        if self.reserve_bytes == 0 {
            return Ok(());
        }
        match fs2::available_space(&self.dir) {
            Ok(free) if free < self.reserve_bytes => Err(StoreError::LowSpace {
                dir: self.dir.display().to_string(),
                free_mib: free / (1024 * 1024),
                reserve_mib: self.reserve_bytes / (1024 * 1024),
            }),
            _ => Ok(()),
        }
    }

    /// Opens the store in `dir` with the data key in the file `key_file`.
    pub fn open_with_key_file(dir: &Path, key_file: &Path) -> Result<Self> {
        Self::open(dir, load_data_key(key_file)?)
    }

    /// Has every later audit append add a checkpoint signed by `signer` once
    /// [`audit::CHECKPOINT_EVERY`] entries have followed the last one. Every process that
    /// writes to a node's log must pass the node's signing key here, or `entente audit
    /// verify` will find a run of entries without a checkpoint.
    pub fn with_checkpoints(mut self, signer: Arc<dyn audit::Signer>) -> Self {
        self.checkpoints = Some(signer);
        self
    }

    /// Like [`Store::open_with_key_file`], but while another process holds the store
    /// (typically a command reading it a moment before the node started), retries for up
    /// to `patience`.
    pub fn open_patiently(
        dir: &Path,
        at_rest: &Path,
        patience: std::time::Duration,
    ) -> Result<Self> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Self::open(dir, load_data_key(at_rest)?) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
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
        sealed: &[Sealed],
        withheld: &[Withheld],
    ) -> Result<()> {
        self.submit_all(&[(item, sealed, withheld)])
    }

    /// Like [`Store::submit`] for several items, in one transaction: all of them are
    /// stored, or none. sled writes its log out at the start and at the end of every
    /// transaction, so one transaction for a submitted batch, rather than one per item,
    /// saves most of the store's work per item.
    pub fn submit_all(&self, batch: &[(&StoredItem, &[Sealed], &[Withheld])]) -> Result<()> {
        self.ensure_space()?;
        let mut events = Vec::new();
        let writes = batch
            .iter()
            .map(|&(item, sealed, withheld)| {
                events.push(Event::new(
                    audit::Action::Submitted,
                    &item.origin,
                    &ulid_text(&id16(&item.item_id)),
                    "",
                ));
                self.share_writes(item, Some(item), sealed, withheld, &mut events)
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_shares(&writes, &events, "submit")
    }

    /// Queues more envelopes of an item already held (shared again under the current
    /// policy) and records the decisions, in one transaction.
    pub fn share_again(
        &self,
        item: &StoredItem,
        sealed: &[Sealed],
        withheld: &[Withheld],
    ) -> Result<()> {
        self.ensure_space()?;
        let mut events = Vec::new();
        let writes = self.share_writes(item, None, sealed, withheld, &mut events)?;
        self.write_shares(&[writes], &events, "share again")
    }

    /// What sharing one item writes, its audit events added to `events`: built (and the
    /// item sealed with the data key) before the transaction, which sled may run more
    /// than once.
    fn share_writes(
        &self,
        item: &StoredItem,
        insert: Option<&StoredItem>,
        sealed: &[Sealed],
        withheld: &[Withheld],
        events: &mut Vec<Event>,
    ) -> Result<ShareWrites> {
        let id = id16(&item.item_id);
        let id_text = ulid_text(&id);
        let now = crate::now_ms();
        let mut records = Vec::new();
        let mut queued = Vec::new();
        for s in sealed {
            queued.push((outbox_key(&s.partner, &id), s.envelope.encode_to_vec()));
            let record = DeliveryRecord {
                state: "queued".into(),
                detail: String::new(),
                updated_at_ms: now,
                envelope_digest: s.digest.to_vec(),
                rule: s.rule.clone(),
                redactions: s.redactions.clone(),
            };
            records.push((delivery_key(&id, &s.partner), record.encode_to_vec()));
            let detail = format!("rule {}; redacted: {}", s.rule, s.redactions.join(", "));
            events.push(Event::new(
                audit::Action::Queued,
                &s.partner,
                &id_text,
                detail,
            ));
        }
        for w in withheld {
            let record = DeliveryRecord {
                state: "withheld".into(),
                detail: w.reason.clone(),
                updated_at_ms: now,
                envelope_digest: Vec::new(),
                rule: w.rule.clone(),
                redactions: Vec::new(),
            };
            records.push((delivery_key(&id, &w.partner), record.encode_to_vec()));
            events.push(Event::new(
                audit::Action::Withheld,
                &w.partner,
                &id_text,
                w.reason.as_str(),
            ));
        }
        let key = item_key(&id, &item.sender);
        let item = insert
            .map(|i| {
                Ok::<_, StoreError>((
                    key.clone(),
                    self.seal_value(ITEMS, &key, &i.encode_to_vec())?,
                ))
            })
            .transpose()?;
        Ok(ShareWrites {
            item,
            queued,
            records,
        })
    }

    /// Applies the writes of one or more shared items and appends their audit events,
    /// in one transaction.
    fn write_shares(
        &self,
        writes: &[ShareWrites],
        events: &[Event],
        op: &'static str,
    ) -> Result<()> {
        (&self.items, &self.outbox, &self.deliveries, &self.audit)
            .transaction(|(items, outbox, deliveries, log)| {
                for w in writes {
                    if let Some((k, v)) = &w.item {
                        items.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &w.queued {
                        outbox.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &w.records {
                        deliveries.insert(k.as_slice(), v.as_slice())?;
                    }
                }
                self.append_audit(log, events)?;
                Ok(())
            })
            .map_err(tx_err(op))
    }

    /// Stores received items, deduplicating by (sender, item id), and records each
    /// outcome in the audit log, in one transaction.
    pub fn receive(&self, sender: &str, batch: &[Incoming]) -> Result<Vec<Received>> {
        self.ensure_space()?;
        // Sealed before the transaction, which sled may run more than once.
        let sealed = batch
            .iter()
            .map(|incoming| {
                let key = item_key(&id16(&incoming.item.item_id), sender);
                self.seal_value(ITEMS, &key, &incoming.item.encode_to_vec())
            })
            .collect::<Result<Vec<_>>>()?;
        // An item whose originator withdrew it before it arrived is acknowledged and not
        // kept: only its tombstone stays.
        let withdrawn = batch
            .iter()
            .map(|incoming| {
                let id = id16(&incoming.item.item_id);
                Ok(self.tombstone(&id, &incoming.item.origin)?.is_some())
            })
            .collect::<Result<Vec<bool>>>()?;
        (&self.items, &self.seen, &self.audit)
            .transaction(|(items, seen, log)| {
                let mut outcomes = Vec::with_capacity(batch.len());
                let mut events = Vec::with_capacity(batch.len());
                for ((incoming, value), withdrawn) in batch.iter().zip(&sealed).zip(&withdrawn) {
                    let id = id16(&incoming.item.item_id);
                    let seen_key = seen_key(sender, &id);
                    let outcome = match seen.get(seen_key.as_slice())? {
                        _ if *withdrawn => Received::Withdrawn,
                        Some(prior) if prior.as_ref() == incoming.digest => Received::Duplicate,
                        Some(_) => Received::Replay,
                        None => {
                            seen.insert(seen_key.as_slice(), &incoming.digest[..])?;
                            let key = item_key(&id, sender);
                            items.insert(key.as_slice(), value.as_slice())?;
                            Received::Stored
                        }
                    };
                    events.push(received_event(sender, &id, &outcome));
                    outcomes.push(outcome);
                }
                self.append_audit(log, &events)?;
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
                    let mut record = match deliveries.get(key.as_slice())? {
                        Some(v) => DeliveryRecord::decode(v.as_ref()).unwrap_or_default(),
                        None => DeliveryRecord::default(),
                    };
                    record.state = state.to_owned();
                    record.detail = detail.to_owned();
                    record.updated_at_ms = now;
                    deliveries.insert(key, record.encode_to_vec())?;
                    events.push(Event::new(action, partner, &ulid_text(id), detail));
                }
                self.append_audit(log, &events)?;
                Ok(())
            })
            .map_err(tx_err("settle deliveries"))
    }

    /// Appends events that belong to no other change (such as a refused connection).
    pub fn record(&self, events: &[Event]) -> Result<()> {
        self.audit
            .transaction(|log| {
                self.append_audit(log, events)?;
                Ok(())
            })
            .map_err(tx_err("append audit"))
    }

    /// Items held, newest first, at most `limit`.
    pub fn list_items(&self, limit: usize) -> Result<Vec<StoredItem>> {
        let mut out = Vec::new();
        for entry in self.items.iter().rev().take(limit) {
            let (key, value) = entry.map_err(sled_err("list items"))?;
            out.push(self.open_value("list items", ITEMS, &key, &value)?);
        }
        Ok(out)
    }

    /// Calls `each` with the key and contents of every item held, in key order, one at a
    /// time (the store may hold more than fits in memory at once).
    pub fn each_item(&self, mut each: impl FnMut(&[u8], StoredItem)) -> Result<()> {
        for entry in self.items.iter() {
            let (key, value) = entry.map_err(sled_err("read items"))?;
            each(&key, self.open_value("read items", ITEMS, &key, &value)?);
        }
        Ok(())
    }

    /// The item stored under `key` (item id ‖ sender), if any.
    pub fn item_at(&self, key: &[u8]) -> Result<Option<StoredItem>> {
        self.items
            .get(key)
            .map_err(sled_err("get item"))?
            .map(|value| self.open_value("get item", ITEMS, key, &value))
            .transpose()
    }

    /// Number of envelopes waiting in `partner`'s outbox.
    pub fn outbox_len(&self, partner: &str) -> usize {
        self.outbox.scan_prefix(outbox_prefix(partner)).count()
    }

    /// Number of items held.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// Every held copy of the item with this id (one per sender that delivered it).
    pub fn item(&self, id: &[u8; 16]) -> Result<Vec<StoredItem>> {
        let mut out = Vec::new();
        for entry in self.items.scan_prefix(id) {
            let (key, value) = entry.map_err(sled_err("get item"))?;
            out.push(self.open_value("get item", ITEMS, &key, &value)?);
        }
        Ok(out)
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
        self.audit_newest().rev().collect()
    }

    /// The audit log, newest entry first (reversible, for oldest first).
    pub fn audit_newest(&self) -> impl DoubleEndedIterator<Item = Result<audit::Entry>> + '_ {
        self.audit.scan_prefix(b"e").rev().map(|entry| {
            let (_, value) = entry.map_err(sled_err("read audit"))?;
            decode(&value, "read audit", "audit")
        })
    }

    /// Appends a checkpoint over the newest entry, unless the newest entry is a
    /// checkpoint already or no signer was given. Returns the checkpoint's seq.
    pub fn checkpoint(&self) -> Result<Option<u64>> {
        let Some(signer) = self.checkpoints.as_deref() else {
            return Ok(None);
        };
        self.audit
            .transaction(|log| {
                let (seq, prev) = audit_head(log)?;
                if seq == 0 || last_checkpoint(log)? == seq {
                    return Ok(None);
                }
                append_checkpoint(log, seq + 1, prev, signer)?;
                Ok(Some(seq + 1))
            })
            .map_err(tx_err("append audit checkpoint"))
    }

    /// Checks the audit log: the hash chain, every checkpoint's signature against `key`
    /// (the node's public signing key), that no run of entries lacks a checkpoint, and
    /// that the head record names the newest entry, so that removing or changing the
    /// newest entries is detected as well.
    pub fn verify_audit(&self, key: &[u8; 32]) -> Result<audit::Verification> {
        self.verify_audit_any(std::slice::from_ref(key))
    }

    /// Like [`Store::verify_audit`], accepting checkpoints signed by any of `keys` (the
    /// node's current signing key and the ones it retired).
    pub fn verify_audit_any(&self, keys: &[[u8; 32]]) -> Result<audit::Verification> {
        let mut raw = Vec::new();
        for entry in self.audit.scan_prefix(b"e") {
            raw.push(entry.map_err(sled_err("read audit"))?.1);
        }
        let verify = |n: usize| audit::verify_any(raw.iter().take(n).map(|v| v.as_ref()), keys);
        let done = verify(raw.len());
        if !done.is_intact() {
            return Ok(done);
        }
        let n = done.entries;
        let head = self.audit.get(b"h").map_err(sled_err("read audit"))?;
        let (seq, flaw) = match head.as_deref() {
            Some(h) if h.len() == 40 => {
                let head_seq = u64_be(&h[..8]);
                let last_hash = raw.last().map(|v| audit::entry_hash(v).to_vec());
                if head_seq != n {
                    (head_seq.min(n) + 1, audit::Flaw::HeadMismatch { head_seq })
                } else if last_hash.as_deref() != Some(&h[8..]) {
                    (n, audit::Flaw::HeadHash)
                } else {
                    return Ok(done);
                }
            }
            None if n == 0 => return Ok(done),
            _ => (n.max(1), audit::Flaw::NoHead),
        };
        // Count again only the entries before the bad one.
        let before = usize::try_from(seq - 1).unwrap_or(usize::MAX);
        Ok(verify(before).stop_at(seq, flaw))
    }

    /// Appends events to the audit chain inside a transaction, each followed by a
    /// checkpoint when it completes a run of [`audit::CHECKPOINT_EVERY`] entries and a
    /// signer was given. The head record is read and written in the same transaction, so
    /// concurrent appends serialise through sled's conflict detection and the chain never
    /// forks.
    fn append_audit(
        &self,
        log: &TransactionalTree,
        events: &[Event],
    ) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
        if events.is_empty() {
            return Ok(());
        }
        let (mut seq, mut prev) = audit_head(log)?;
        let mut last_checkpoint = last_checkpoint(log)?;
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
                signature: Vec::new(),
                sealed: self.seal_terms(seq, &event.sealed)?,
            };
            prev = insert_entry(log, &entry)?;
            if let Some(signer) = self.checkpoints.as_deref() {
                if seq - last_checkpoint >= audit::CHECKPOINT_EVERY {
                    seq += 1;
                    prev = append_checkpoint(log, seq, prev, signer)?;
                    last_checkpoint = seq;
                }
            }
        }
        write_head(log, seq, &prev)
    }
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// The seq and hash of the newest audit entry (0 and zeros for an empty log).
fn audit_head(log: &TransactionalTree) -> TxResult<(u64, Vec<u8>)> {
    Ok(match log.get(b"h")? {
        Some(head) if head.len() == 40 => (u64_be(&head[..8]), head[8..].to_vec()),
        _ => (0, vec![0u8; 32]),
    })
}

/// The seq of the newest checkpoint, 0 if none was written.
fn last_checkpoint(log: &TransactionalTree) -> TxResult<u64> {
    Ok(match log.get(b"c")? {
        Some(c) if c.len() == 8 => u64_be(&c),
        _ => 0,
    })
}

/// Writes `entry` under its seq and returns its hash.
fn insert_entry(log: &TransactionalTree, entry: &audit::Entry) -> TxResult<Vec<u8>> {
    let encoded = entry.encode_to_vec();
    let mut key = b"e".to_vec();
    key.extend_from_slice(&entry.seq.to_be_bytes());
    log.insert(key, encoded.as_slice())?;
    Ok(audit::entry_hash(&encoded).to_vec())
}

/// Writes a checkpoint at `seq` over the entry whose hash is `prev`, and updates the
/// head; returns the checkpoint's hash.
fn append_checkpoint(
    log: &TransactionalTree,
    seq: u64,
    prev: Vec<u8>,
    signer: &dyn audit::Signer,
) -> TxResult<Vec<u8>> {
    let entry = audit::checkpoint(seq, crate::now_ms(), prev, signer);
    let hash = insert_entry(log, &entry)?;
    log.insert(b"c", seq.to_be_bytes().to_vec())?;
    write_head(log, seq, &hash)?;
    Ok(hash)
}

fn write_head(log: &TransactionalTree, seq: u64, hash: &[u8]) -> TxResult<()> {
    let mut head = seq.to_be_bytes().to_vec();
    head.extend_from_slice(hash);
    log.insert(b"h", head)?;
    Ok(())
}

/// Creates `dir` if needed and makes it accessible to its owner only (mode 0700 on
/// Unix): the store holds report content in clear, and sled creates its files with the
/// process umask.
fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The tree of items, whose values are sealed with the data key.
const ITEMS: &str = "items";

/// Reads the data key file at `path`.
pub fn load_data_key(path: &Path) -> Result<DataKey> {
    DataKey::load(path).map_err(|e| StoreError::DataKey(e.to_string()))
}

impl Store {
    /// Seals the query terms of audit entry `seq` (nothing when there are none).
    fn seal_terms(&self, seq: u64, terms: &str) -> TxResult<Vec<u8>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        self.seal_value("audit", &seq.to_be_bytes(), terms.as_bytes())
            .map_err(ConflictableTransactionError::Abort)
    }

    /// The query terms sealed with audit entry `entry`, if it has any and they open with
    /// this store's data key.
    pub fn audit_terms(&self, entry: &audit::Entry) -> Option<String> {
        if entry.sealed.is_empty() {
            return None;
        }
        let plain = self
            .at_rest
            .open("audit", &entry.seq.to_be_bytes(), &entry.sealed)?;
        Some(String::from_utf8_lossy(&plain).into_owned())
    }

    /// `plaintext` sealed with the data key as the value of `key` in `tree`.
    fn seal_value(&self, tree: &'static str, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.at_rest
            .seal(tree, key, plaintext)
            .map_err(|e| StoreError::DataKey(e.to_string()))
    }

    /// Opens and decodes a value sealed with the data key.
    fn open_value<T: prost::Message + Default>(
        &self,
        op: &'static str,
        tree: &'static str,
        key: &[u8],
        value: &[u8],
    ) -> Result<T> {
        let plain = self
            .at_rest
            .open(tree, key, value)
            .ok_or(StoreError::Undecryptable { op, tree })?;
        decode(&plain, op, tree)
    }
}

fn decode<T: prost::Message + Default>(
    value: &[u8],
    op: &'static str,
    tree: &'static str,
) -> Result<T> {
    T::decode(value).map_err(|_| StoreError::Corrupt { op, tree })
}

fn received_event(sender: &str, id: &[u8; 16], outcome: &Received) -> Event {
    let (action, detail) = match outcome {
        Received::Stored => (audit::Action::Received, ""),
        Received::Duplicate => (audit::Action::Received, "duplicate: already stored"),
        Received::Replay => (audit::Action::Refused, "replay: item id reused"),
        Received::Withdrawn => (
            audit::Action::Received,
            "withdrawn by its originator: not stored",
        ),
        Received::Refused(..) => (audit::Action::Refused, "lifecycle message refused"),
    };
    Event::new(action, sender, &ulid_text(id), detail)
}

fn u64_be(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}

/// The copy of an item to show and to act on, of those [`Store::item`] returns: the own one,
/// else the one its originator delivered (the copy that corrections reach), else the first.
/// Every copy held has the same originator: a report whose id is held from another is
/// refused on receipt.
pub fn preferred_copy(copies: &[StoredItem]) -> Option<&StoredItem> {
    copies
        .iter()
        .find(|c| c.own)
        .or_else(|| copies.iter().find(|c| c.sender == c.origin))
        .or_else(|| copies.first())
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

/// The key of an item in the `items` tree: its id, then the agency that sent it.
pub fn item_key(id: &[u8; 16], origin: &str) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "US-BIS";

    fn id(n: u8) -> [u8; 16] {
        let mut id = [0x01; 16];
        id[15] = n;
        id
    }

    fn item(origin: &str, n: u8) -> StoredItem {
        StoredItem {
            origin: origin.to_owned(),
            item_id: id(n).to_vec(),
            kind: pb::ItemKind::DenialNotification as i32,
            created_at_ms: 1_700_000_000_000,
            own: origin == OWN,
            sender: origin.to_owned(),
            ..Default::default()
        }
    }

    fn envelope(recipient: &str, n: u8) -> pb::Envelope {
        pb::Envelope {
            version: 1,
            sender: OWN.to_owned(),
            recipient: recipient.to_owned(),
            item_id: id(n).to_vec(),
            ciphertext: vec![n; 8],
            ..Default::default()
        }
    }

    /// Submits own item `n`, sealed for `partners` and withheld from `withheld`.
    fn submit(store: &Store, n: u8, partners: &[&str], withheld: &[&str]) {
        let sealed: Vec<_> = partners
            .iter()
            .map(|p| Sealed {
                partner: p.to_string(),
                envelope: envelope(p, n),
                digest: [n; 32],
                rule: "all".into(),
                redactions: vec!["narrative".into()],
            })
            .collect();
        let withheld: Vec<_> = withheld
            .iter()
            .map(|p| Withheld {
                partner: p.to_string(),
                reason: "kind not shared".to_owned(),
                rule: String::new(),
            })
            .collect();
        store.submit(&item(OWN, n), &sealed, &withheld).unwrap();
    }

    fn incoming(sender: &str, n: u8, digest: u8) -> Incoming {
        Incoming {
            item: item(sender, n),
            digest: [digest; 32],
        }
    }

    fn key() -> crate::identity::SigningKey {
        crate::identity::SigningKey::from_seed(&[3; 32])
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), DataKey::generate().unwrap()).unwrap();
        (dir, store.with_checkpoints(Arc::new(key())))
    }

    /// The number of intact entries, or the seq of the first bad one.
    fn verified(store: &Store) -> std::result::Result<u64, u64> {
        let done = store.verify_audit(&key().public()).unwrap();
        match done.first_bad {
            None => Ok(done.entries),
            Some(bad) => Err(bad.seq),
        }
    }

    fn first_flaw(store: &Store) -> Option<audit::Flaw> {
        let done = store.verify_audit(&key().public()).unwrap();
        done.first_bad.map(|bad| bad.flaw)
    }

    /// Records `n` refused connections, one event per call.
    fn record_many(store: &Store, n: u64) {
        for i in 0..n {
            let event = Event::new(audit::Action::Refused, "10.0.0.9:5000", "", format!("{i}"));
            store.record(&[event]).unwrap();
        }
    }

    fn delivery(store: &Store, n: u8, partner: &str) -> DeliveryRecord {
        let records = store.deliveries(&id(n)).unwrap();
        records.into_iter().find(|(p, _)| p == partner).unwrap().1
    }

    fn batch_ids(store: &Store, partner: &str, after: Option<u8>, limit: usize) -> Vec<u8> {
        let batch = store.outbox_batch(partner, after.map(id), limit).unwrap();
        batch.iter().map(|q| q.item_id[15]).collect()
    }

    fn actions(store: &Store) -> Vec<String> {
        let entries = store.audit_entries().unwrap();
        entries.into_iter().map(|e| e.action).collect()
    }

    /// Flushes and closes the store, applies `change` to its audit tree through sled
    /// directly, and opens it again.
    async fn tamper(dir: &Path, store: Store, change: impl FnOnce(&sled::Tree)) -> Store {
        store.flush().await.unwrap();
        drop(store);
        let db = patiently(|| sled::open(dir).map_err(sled_err("open")));
        change(&db.open_tree("audit").unwrap());
        db.flush().unwrap();
        drop(db);
        patiently(|| Store::open(dir, DataKey::generate().unwrap()))
            .with_checkpoints(Arc::new(key()))
    }

    /// `open()` again until sled's background threads, which may hold the store's lock
    /// a moment after it was dropped, let go of it.
    fn patiently<T>(open: impl Fn() -> Result<T>) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match open() {
                Err(StoreError::Locked { .. }) | Err(StoreError::Sled { .. })
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other.unwrap(),
            }
        }
    }

    /// Rewrites the whole log as someone without the key would: every entry from `log`,
    /// renumbered and linked again, and a head naming the newest.
    fn rewrite(tree: &sled::Tree, log: Vec<audit::Entry>) {
        tree.clear().unwrap();
        let mut prev = vec![0u8; 32];
        let mut seq = 0;
        for mut entry in log {
            seq += 1;
            entry.seq = seq;
            entry.prev_hash = prev;
            let encoded = entry.encode_to_vec();
            prev = audit::entry_hash(&encoded).to_vec();
            tree.insert(audit_key(seq), encoded).unwrap();
        }
        tree.insert(b"h", [&seq.to_be_bytes()[..], &prev].concat())
            .unwrap();
    }

    fn entries_of(tree: &sled::Tree) -> Vec<audit::Entry> {
        tree.scan_prefix(b"e")
            .map(|e| audit::Entry::decode(e.unwrap().1.as_ref()).unwrap())
            .collect()
    }

    fn audit_key(seq: u64) -> Vec<u8> {
        [&b"e"[..], &seq.to_be_bytes()].concat()
    }

    /// A store with eight audit entries from a mix of operations.
    fn busy_store() -> (tempfile::TempDir, Store) {
        let (dir, store) = open();
        submit(&store, 1, &["DE-BAFA", "JP-METI"], &["FR-DGDDI"]);
        store
            .mark_delivered("DE-BAFA", &[id(1)], "receipt 1")
            .unwrap();
        store.mark_refused("JP-METI", id(1), "unknown key").unwrap();
        store
            .receive("DE-BAFA", &[incoming("DE-BAFA", 2, 9)])
            .unwrap();
        store
            .record(&[Event::new(
                audit::Action::Refused,
                "10.0.0.9:5000",
                "",
                "bad cert",
            )])
            .unwrap();
        assert_eq!(store.audit_entries().unwrap().len(), 8);
        (dir, store)
    }

    #[test]
    fn submit_stores_the_item_and_queues_an_envelope_per_allowed_partner() {
        let (_dir, store) = open();
        submit(&store, 1, &["DE-BAFA", "JP-METI"], &[]);
        assert_eq!(store.item(&id(1)).unwrap(), vec![item(OWN, 1)]);
        for partner in ["DE-BAFA", "JP-METI"] {
            let batch = store.outbox_batch(partner, None, 10).unwrap();
            assert_eq!(batch.len(), 1);
            assert_eq!(batch[0].item_id, id(1));
            assert_eq!(batch[0].envelope, envelope(partner, 1));
            let record = delivery(&store, 1, partner);
            assert_eq!(record.state, "queued");
            assert_eq!(record.envelope_digest, [1; 32]);
        }
    }

    #[test]
    fn submit_all_stores_every_item_with_its_audit_entries_in_order() {
        let (_dir, store) = open();
        let items: Vec<_> = (1..=3).map(|n| item(OWN, n)).collect();
        let sealed: Vec<Vec<Sealed>> = (1..=3)
            .map(|n| {
                vec![Sealed {
                    partner: "DE-BAFA".into(),
                    envelope: envelope("DE-BAFA", n),
                    digest: [n; 32],
                    rule: "all".into(),
                    redactions: Vec::new(),
                }]
            })
            .collect();
        let batch: Vec<_> = items
            .iter()
            .zip(&sealed)
            .map(|(i, s)| (i, &s[..], &[][..]))
            .collect();
        store.submit_all(&batch).unwrap();
        for n in 1..=3 {
            assert_eq!(store.item(&id(n)).unwrap(), vec![item(OWN, n)]);
            assert_eq!(delivery(&store, n, "DE-BAFA").state, "queued");
        }
        assert_eq!(batch_ids(&store, "DE-BAFA", None, 10), [1, 2, 3]);
        assert_eq!(actions(&store), ["submitted", "queued"].repeat(3));
        assert_eq!(verified(&store), Ok(6));
    }

    #[test]
    fn submit_records_withheld_partners_without_queueing_for_them() {
        let (_dir, store) = open();
        submit(&store, 1, &["DE-BAFA"], &["FR-DGDDI"]);
        assert_eq!(store.outbox_depth("FR-DGDDI"), 0);
        let record = delivery(&store, 1, "FR-DGDDI");
        assert_eq!(record.state, "withheld");
        assert_eq!(record.detail, "kind not shared");
        assert!(record.envelope_digest.is_empty());
        assert_eq!(actions(&store), ["submitted", "queued", "withheld"]);
    }

    #[test]
    fn outbox_batch_returns_envelopes_in_id_order() {
        let (_dir, store) = open();
        for n in [3, 1, 2] {
            submit(&store, n, &["DE-BAFA"], &[]);
        }
        assert_eq!(batch_ids(&store, "DE-BAFA", None, 10), [1, 2, 3]);
        assert_eq!(store.outbox_depth("DE-BAFA"), 3);
    }

    #[test]
    fn outbox_batch_starts_after_the_given_id_and_stops_at_the_limit() {
        let (_dir, store) = open();
        for n in 1..=5 {
            submit(&store, n, &["DE-BAFA"], &[]);
        }
        assert_eq!(batch_ids(&store, "DE-BAFA", None, 2), [1, 2]);
        assert_eq!(batch_ids(&store, "DE-BAFA", Some(2), 2), [3, 4]);
        assert_eq!(batch_ids(&store, "DE-BAFA", Some(4), 10), [5]);
        assert!(batch_ids(&store, "DE-BAFA", Some(5), 10).is_empty());
        assert!(batch_ids(&store, "DE-BAFA", None, 0).is_empty());
    }

    #[test]
    fn outbox_batch_never_mixes_partners_whose_names_share_a_prefix() {
        let (_dir, store) = open();
        submit(&store, 1, &["AB-C"], &[]);
        submit(&store, 2, &["AB-CD"], &[]);
        submit(&store, 3, &["AB-C", "AB-CD"], &[]);
        assert_eq!(batch_ids(&store, "AB-C", None, 10), [1, 3]);
        assert_eq!(batch_ids(&store, "AB-CD", None, 10), [2, 3]);
        assert!(batch_ids(&store, "AB-C", Some(3), 10).is_empty());
        assert!(batch_ids(&store, "AB", None, 10).is_empty());
        assert_eq!(store.outbox_depth("AB-C"), 2);
        let batch = store.outbox_batch("AB-C", None, 10).unwrap();
        assert!(batch.iter().all(|q| q.envelope.recipient == "AB-C"));
    }

    #[test]
    fn mark_delivered_empties_the_outbox_and_records_the_receipt() {
        let (_dir, store) = open();
        submit(&store, 1, &["DE-BAFA", "JP-METI"], &[]);
        submit(&store, 2, &["DE-BAFA"], &[]);
        store
            .mark_delivered("DE-BAFA", &[id(1), id(2)], "receipt 7")
            .unwrap();
        assert_eq!(store.outbox_depth("DE-BAFA"), 0);
        assert_eq!(store.outbox_depth("JP-METI"), 1);
        let record = delivery(&store, 1, "DE-BAFA");
        assert_eq!(
            (record.state.as_str(), record.detail.as_str()),
            ("delivered", "receipt 7")
        );
        assert_eq!(record.envelope_digest, [1; 32]);
        assert_eq!(delivery(&store, 1, "JP-METI").state, "queued");
    }

    #[test]
    fn mark_delivered_again_changes_nothing_and_writes_no_audit_entry() {
        let (_dir, store) = open();
        submit(&store, 1, &["DE-BAFA"], &[]);
        store
            .mark_delivered("DE-BAFA", &[id(1)], "receipt 1")
            .unwrap();
        let entries = store.audit_entries().unwrap().len();
        store
            .mark_delivered("DE-BAFA", &[id(1)], "receipt 2")
            .unwrap();
        assert_eq!(store.audit_entries().unwrap().len(), entries);
        assert_eq!(delivery(&store, 1, "DE-BAFA").detail, "receipt 1");
    }

    #[test]
    fn mark_delivered_leaves_a_withheld_item_withheld() {
        let (_dir, store) = open();
        submit(&store, 1, &[], &["FR-DGDDI"]);
        store
            .mark_delivered("FR-DGDDI", &[id(1)], "receipt 1")
            .unwrap();
        assert_eq!(delivery(&store, 1, "FR-DGDDI").state, "withheld");
    }

    #[test]
    fn mark_refused_takes_the_item_out_of_the_outbox_as_refused() {
        let (_dir, store) = open();
        submit(&store, 1, &["DE-BAFA"], &[]);
        store
            .mark_refused("DE-BAFA", id(1), "unknown key id")
            .unwrap();
        assert_eq!(store.outbox_depth("DE-BAFA"), 0);
        let record = delivery(&store, 1, "DE-BAFA");
        assert_eq!(
            (record.state.as_str(), record.detail.as_str()),
            ("refused", "unknown key id")
        );
        assert_eq!(actions(&store).last().unwrap(), "refused-by-partner");
    }

    #[test]
    fn receive_stores_once_then_reports_duplicates_and_replays() {
        let (_dir, store) = open();
        let first = store
            .receive("DE-BAFA", &[incoming("DE-BAFA", 1, 7)])
            .unwrap();
        let again = store
            .receive("DE-BAFA", &[incoming("DE-BAFA", 1, 7)])
            .unwrap();
        let other = store
            .receive("DE-BAFA", &[incoming("DE-BAFA", 1, 8)])
            .unwrap();
        assert_eq!(
            [first, again, other].concat(),
            [Received::Stored, Received::Duplicate, Received::Replay]
        );
        assert_eq!(store.item_count(), 1);
        assert_eq!(store.item(&id(1)).unwrap(), vec![item("DE-BAFA", 1)]);
        assert_eq!(actions(&store), ["received", "received", "refused"]);
    }

    #[test]
    fn a_repeated_id_within_one_batch_is_stored_once() {
        let (_dir, store) = open();
        let batch = [
            incoming("DE-BAFA", 1, 7),
            incoming("DE-BAFA", 1, 7),
            incoming("DE-BAFA", 1, 8),
        ];
        let outcomes = store.receive("DE-BAFA", &batch).unwrap();
        assert_eq!(
            outcomes,
            [Received::Stored, Received::Duplicate, Received::Replay]
        );
        assert_eq!(store.item_count(), 1);
    }

    #[test]
    fn the_same_item_id_from_two_senders_is_stored_for_each() {
        let (_dir, store) = open();
        let a = store
            .receive("DE-BAFA", &[incoming("DE-BAFA", 1, 7)])
            .unwrap();
        let b = store
            .receive("JP-METI", &[incoming("JP-METI", 1, 7)])
            .unwrap();
        assert_eq!([a, b].concat(), [Received::Stored, Received::Stored]);
        assert_eq!(store.item_count(), 2);
        let senders: Vec<String> = store
            .item(&id(1))
            .unwrap()
            .into_iter()
            .map(|i| i.sender)
            .collect();
        assert_eq!(senders, ["DE-BAFA", "JP-METI"]);
    }

    #[test]
    fn items_are_listed_newest_first() {
        let (_dir, store) = open();
        for n in [2, 3, 1] {
            submit(&store, n, &[], &[]);
        }
        let listed = store.list_items(2).unwrap();
        let ids: Vec<u8> = listed.iter().map(|i| i.item_id[15]).collect();
        assert_eq!(ids, [3, 2]);
    }

    #[test]
    fn the_audit_chain_verifies_after_a_mix_of_operations() {
        let (_dir, store) = busy_store();
        let entries = store.audit_entries().unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
        assert_eq!(verified(&store), Ok(8));
        let expected = [
            "submitted",
            "queued",
            "queued",
            "withheld",
            "delivered",
            "refused-by-partner",
            "received",
            "refused",
        ];
        assert_eq!(actions(&store), expected);
    }

    #[test]
    fn an_empty_record_call_writes_nothing() {
        let (_dir, store) = open();
        store.record(&[]).unwrap();
        assert_eq!(verified(&store), Ok(0));
    }

    #[tokio::test]
    async fn a_changed_audit_entry_breaks_the_link_to_the_next_one() {
        let (dir, store) = busy_store();
        let store = tamper(dir.path(), store, |log| {
            let raw = log.get(audit_key(3)).unwrap().unwrap();
            let mut entry = audit::Entry::decode(raw.as_ref()).unwrap();
            entry.detail = "nothing happened".into();
            log.insert(audit_key(3), entry.encode_to_vec()).unwrap();
        })
        .await;
        assert_eq!(verified(&store), Err(4));
    }

    #[tokio::test]
    async fn a_removed_audit_entry_is_reported_by_its_seq() {
        let (dir, store) = busy_store();
        let store = tamper(dir.path(), store, |log| {
            log.remove(audit_key(5)).unwrap();
        })
        .await;
        assert_eq!(verified(&store), Err(5));
    }

    #[tokio::test]
    async fn removing_the_newest_audit_entry_is_detected() {
        let (dir, store) = busy_store();
        let store = tamper(dir.path(), store, |log| {
            log.remove(audit_key(8)).unwrap();
        })
        .await;
        assert_eq!(verified(&store), Err(8));
    }

    #[tokio::test]
    async fn a_changed_newest_audit_entry_is_detected() {
        let (dir, store) = busy_store();
        let store = tamper(dir.path(), store, |log| {
            let raw = log.get(audit_key(8)).unwrap().unwrap();
            let mut entry = audit::Entry::decode(raw.as_ref()).unwrap();
            entry.detail = "nothing happened".into();
            log.insert(audit_key(8), entry.encode_to_vec()).unwrap();
        })
        .await;
        assert_eq!(verified(&store), Err(8));
    }

    #[tokio::test]
    async fn everything_survives_closing_and_reopening() {
        let (dir, store) = busy_store();
        submit(&store, 3, &["DE-BAFA"], &[]);
        store.flush().await.unwrap();
        drop(store);
        let store = Store::open(dir.path(), DataKey::generate().unwrap()).unwrap();
        assert_eq!(store.item_count(), 3);
        assert_eq!(batch_ids(&store, "DE-BAFA", None, 10), [3]);
        assert_eq!(delivery(&store, 1, "JP-METI").state, "refused");
        let again = store
            .receive("DE-BAFA", &[incoming("DE-BAFA", 2, 9)])
            .unwrap();
        assert_eq!(again, [Received::Duplicate]);
        assert_eq!(verified(&store), Ok(11));
    }

    #[test]
    fn a_checkpoint_follows_every_run_of_entries() {
        let (_dir, store) = open();
        let every = audit::CHECKPOINT_EVERY;
        record_many(&store, 2 * every + 3);
        let entries = store.audit_entries().unwrap();
        let checkpoints: Vec<u64> = entries
            .iter()
            .filter(|e| e.action == "checkpoint")
            .map(|e| e.seq)
            .collect();
        assert_eq!(checkpoints, [every + 1, 2 * every + 2]);
        let done = store.verify_audit(&key().public()).unwrap();
        assert_eq!(done.first_bad, None);
        assert_eq!((done.entries, done.checkpoints), (2 * every + 5, 2));
        assert_eq!(done.uncovered(), 3);
    }

    #[test]
    fn a_batch_longer_than_a_run_gets_its_checkpoints_inside_it() {
        let (_dir, store) = open();
        let events: Vec<Event> = (0..audit::CHECKPOINT_EVERY + 2)
            .map(|i| Event::new(audit::Action::Query, "local", "", format!("{i}")))
            .collect();
        store.record(&events).unwrap();
        assert_eq!(verified(&store), Ok(audit::CHECKPOINT_EVERY + 3));
    }

    #[test]
    fn a_closing_checkpoint_covers_the_newest_entry_once() {
        let (_dir, store) = busy_store();
        assert_eq!(store.checkpoint().unwrap(), Some(9));
        assert_eq!(store.checkpoint().unwrap(), None);
        let last = store.audit_entries().unwrap().pop().unwrap();
        assert_eq!(last.action, "checkpoint");
        assert!(
            last.detail.starts_with("entry 8 sha256 "),
            "{}",
            last.detail
        );
        let done = store.verify_audit(&key().public()).unwrap();
        assert_eq!((done.checkpoints, done.last_checkpoint), (1, 9));
    }

    #[test]
    fn a_store_without_a_signer_writes_no_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), DataKey::generate().unwrap()).unwrap();
        record_many(&store, audit::CHECKPOINT_EVERY + 1);
        assert_eq!(store.checkpoint().unwrap(), None);
        assert_eq!(verified(&store), Err(audit::CHECKPOINT_EVERY + 1));
        assert_eq!(first_flaw(&store), Some(audit::Flaw::MissingCheckpoint));
    }

    #[tokio::test]
    async fn reordered_audit_entries_are_reported_at_the_first_displaced_seq() {
        let (dir, store) = busy_store();
        let store = tamper(dir.path(), store, |log| {
            let third = log.get(audit_key(3)).unwrap().unwrap();
            let fourth = log.get(audit_key(4)).unwrap().unwrap();
            log.insert(audit_key(3), fourth).unwrap();
            log.insert(audit_key(4), third).unwrap();
        })
        .await;
        assert_eq!(verified(&store), Err(3));
        assert_eq!(
            first_flaw(&store),
            Some(audit::Flaw::OutOfPlace { found: 4 })
        );
    }

    #[tokio::test]
    async fn a_checkpoint_with_a_bad_signature_is_named_by_its_seq() {
        let (dir, store) = open();
        record_many(&store, audit::CHECKPOINT_EVERY + 4);
        let store = tamper(dir.path(), store, |log| {
            let mut entries = entries_of(log);
            entries[audit::CHECKPOINT_EVERY as usize].signature[5] ^= 0x40;
            rewrite(log, entries);
        })
        .await;
        assert_eq!(verified(&store), Err(audit::CHECKPOINT_EVERY + 1));
        assert_eq!(first_flaw(&store), Some(audit::Flaw::BadSignature));
    }

    #[tokio::test]
    async fn a_log_rebuilt_consistently_without_the_key_is_detected() {
        let (dir, store) = open();
        record_many(&store, audit::CHECKPOINT_EVERY + 4);
        // Drop one early entry and link the rest again: the chain and the head are
        // consistent, but the checkpoint no longer names the entry before it.
        let store = tamper(dir.path(), store, |log| {
            let mut entries = entries_of(log);
            entries.remove(2);
            rewrite(log, entries);
        })
        .await;
        assert_eq!(verified(&store), Err(audit::CHECKPOINT_EVERY));
        assert_eq!(first_flaw(&store), Some(audit::Flaw::WrongHash));
        // A log written from scratch with no checkpoints at all is refused too.
        let store = tamper(dir.path(), store, |log| {
            let mut entries = entries_of(log);
            entries.retain(|e| e.action != "checkpoint");
            rewrite(log, entries);
        })
        .await;
        assert_eq!(verified(&store), Err(audit::CHECKPOINT_EVERY + 1));
        assert_eq!(first_flaw(&store), Some(audit::Flaw::MissingCheckpoint));
    }

    #[test]
    fn the_newest_audit_entries_come_first() {
        let (_dir, store) = busy_store();
        let seqs: Vec<u64> = store
            .audit_newest()
            .take(3)
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(seqs, [8, 7, 6]);
    }

    #[test]
    fn a_second_open_of_a_held_store_fails() {
        let (dir, _store) = open();
        assert!(Store::open(dir.path(), DataKey::generate().unwrap()).is_err());
    }

    #[test]
    fn short_ids_are_zero_padded_and_long_ones_cut() {
        assert_eq!(
            id16(&[7, 7]),
            [7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(id16(&[9; 20]), [9; 16]);
        assert_eq!(ulid_text(&[0; 16]), "00000000000000000000000000");
    }
}
