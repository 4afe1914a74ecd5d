//! Watchlists in the store: each list's metadata and entries, the deltas an owner keeps to
//! answer pulls, the received deltas waiting for their turn, and which envelopes carried
//! each version to each partner.
//!
//! Every change of a list (its entries and its metadata together) is one sled transaction
//! that checks the version it starts from, so two writers can never interleave and a
//! crash leaves the list at one version or the next, never between. A received delta is
//! marked seen in the same transaction that applies or stages it, so a redelivery after a
//! crash is either applied or recognised, never lost behind a receipt.

use prost::Message as _;
use sled::{
    Transactional as _,
    transaction::{ConflictableTransactionError, TransactionalTree},
};

use super::{
    DeliveryRecord, Result, Sealed, StoreError, Withheld, decode, delivery_key, outbox_key,
    seen_key, sled_err, tx_err, ulid_text,
};
use crate::{
    audit::{self, Event},
    pb,
    watchlist::Digest,
};

/// What a node knows about one watchlist it holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListMeta {
    /// The agency that owns the list.
    #[prost(string, tag = "1")]
    pub owner: String,
    /// The version held; 0 when nothing is held yet.
    #[prost(uint64, tag = "2")]
    pub version: u64,
    /// Entries held.
    #[prost(uint64, tag = "3")]
    pub entry_count: u64,
    /// Digest of the entries held (32 bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub digest: Vec<u8>,
    /// When the version held was stored here, ms since the epoch.
    #[prost(int64, tag = "5")]
    pub updated_at_ms: i64,
    /// For a received list: "in-sync", "waiting" (a later delta waits for missing
    /// versions) or "mismatch" (a delta did not give the digest it carried). Empty for an
    /// own list.
    #[prost(string, tag = "6")]
    pub state: String,
    /// More about the state (which versions wait, what mismatched).
    #[prost(string, tag = "7")]
    pub detail: String,
    /// When the owner published the version held, ms since the epoch.
    #[prost(int64, tag = "8")]
    pub published_at_ms: i64,
}

impl ListMeta {
    /// The digest held.
    pub fn digest(&self) -> Digest {
        Digest(self.digest.as_slice().try_into().unwrap_or([0; 32]))
    }
}

/// A new version of an own list, with the envelopes sealed for it.
#[derive(Debug)]
pub struct ListPublish<'a> {
    /// The list.
    pub list: &'a str,
    /// The whole delta (from the version held to the next).
    pub delta: &'a pb::WatchlistDelta,
    /// Its envelopes per allowed partner: one per part, each with its item id.
    pub sealed: &'a [Sealed],
    /// Partners the policy kept it from.
    pub withheld: &'a [Withheld],
    /// Audit events besides the queued and withheld ones.
    pub events: Vec<Event>,
}

/// Where a staged delta or part waits: its list, versions and part number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagedKey {
    /// The version it applies to (0 for a snapshot).
    pub from: u64,
    /// The version after it.
    pub to: u64,
    /// Its part number, from 1.
    pub part: u32,
}

/// What became of a delta the store was asked to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Applied: the list is now at the delta's `to_version`.
    Applied,
    /// The list was not at the version the caller read; nothing was written.
    Moved,
    /// After applying, the digest was not the one the delta carried; nothing was written.
    Mismatch {
        /// The digest the entries would have had.
        computed: Digest,
    },
}

/// One row of an own list's sync state: a partner and the versions it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSyncRow {
    /// The partner.
    pub partner: String,
    /// The highest version queued for it.
    pub queued: u64,
    /// The highest version whose every envelope it confirmed with a receipt.
    pub confirmed: u64,
    /// The delivery state of the newest version's envelopes ("queued", "delivered",
    /// "refused") and, for a refusal, the partner's reason.
    pub last_state: String,
    /// The reason of the last refusal, if any.
    pub detail: String,
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// The prefix of every key of `list` in the keyed list trees.
fn list_prefix(list: &str) -> Vec<u8> {
    let mut k = list.as_bytes().to_vec();
    k.push(0);
    k
}

fn entry_key(list: &str, id: &str) -> Vec<u8> {
    let mut k = list_prefix(list);
    k.extend_from_slice(id.as_bytes());
    k
}

fn delta_key(list: &str, version: u64) -> Vec<u8> {
    let mut k = list_prefix(list);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn staged_key(list: &str, key: StagedKey) -> Vec<u8> {
    let mut k = list_prefix(list);
    k.extend_from_slice(&key.from.to_be_bytes());
    k.extend_from_slice(&key.to.to_be_bytes());
    k.extend_from_slice(&key.part.to_be_bytes());
    k
}

fn parse_staged_key(list: &str, key: &[u8]) -> Option<StagedKey> {
    let rest = key.get(list_prefix(list).len()..)?;
    if rest.len() != 20 {
        return None;
    }
    Some(StagedKey {
        from: super::u64_be(&rest[..8]),
        to: super::u64_be(&rest[8..16]),
        part: u32::from_be_bytes(rest[16..20].try_into().ok()?),
    })
}

fn sent_prefix(list: &str, partner: &str) -> Vec<u8> {
    let mut k = list_prefix(list);
    k.extend_from_slice(partner.as_bytes());
    k.push(0);
    k
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn read_meta(lists: &TransactionalTree, list: &str) -> TxResult<Option<ListMeta>> {
    match lists.get(list.as_bytes())? {
        Some(v) => Ok(Some(decode(&v, "read list", "lists").map_err(abort)?)),
        None => Ok(None),
    }
}

impl super::Store {
    /// The metadata of `list`, if the node holds it.
    pub fn list_meta(&self, list: &str) -> Result<Option<ListMeta>> {
        match self
            .lists
            .get(list.as_bytes())
            .map_err(sled_err("read list"))?
        {
            Some(v) => Ok(Some(decode(&v, "read list", "lists")?)),
            None => Ok(None),
        }
    }

    /// Every list held, by name.
    pub fn lists(&self) -> Result<Vec<(String, ListMeta)>> {
        let mut out = Vec::new();
        for entry in self.lists.iter() {
            let (key, value) = entry.map_err(sled_err("read lists"))?;
            let name = String::from_utf8_lossy(&key).into_owned();
            out.push((name, decode(&value, "read lists", "lists")?));
        }
        Ok(out)
    }

    /// The entries of `list`, by id.
    pub fn list_entries(&self, list: &str) -> Result<Vec<pb::WatchlistEntry>> {
        self.list_entries_from(list, "", usize::MAX)
    }

    /// Up to `limit` entries of `list` whose ids sort at or after `from`, by id.
    pub fn list_entries_from(
        &self,
        list: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<pb::WatchlistEntry>> {
        let prefix = list_prefix(list);
        let mut out = Vec::new();
        for entry in self.list_entries.range(entry_key(list, from)..) {
            let (key, value) = entry.map_err(sled_err("read list entries"))?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push(decode(&value, "read list entries", "list_entries")?);
        }
        Ok(out)
    }

    /// One entry of `list`.
    pub fn list_entry(&self, list: &str, id: &str) -> Result<Option<pb::WatchlistEntry>> {
        let value = self
            .list_entries
            .get(entry_key(list, id))
            .map_err(sled_err("read list entry"))?;
        value
            .map(|v| decode(&v, "read list entry", "list_entries"))
            .transpose()
    }

    /// Every entry of every list held, with its list's name, list by list and by id
    /// within a list: what the screening index is built from at start-up.
    pub fn watchlist_entries(
        &self,
    ) -> impl Iterator<Item = Result<(String, pb::WatchlistEntry)>> + use<> {
        self.list_entries.iter().map(|entry| {
            let (key, value) = entry.map_err(sled_err("read list entries"))?;
            let split = key
                .iter()
                .position(|b| *b == 0)
                .ok_or(StoreError::Corrupt {
                    op: "read list entries",
                    tree: "list_entries",
                })?;
            let list = String::from_utf8_lossy(&key[..split]).into_owned();
            Ok((list, decode(&value, "read list entries", "list_entries")?))
        })
    }

    /// The whole deltas the owner keeps for `list`, for versions after `after`, oldest
    /// first. A snapshot is kept without its entries (the list itself holds them).
    pub fn list_deltas(&self, list: &str, after: u64) -> Result<Vec<pb::WatchlistDelta>> {
        let prefix = list_prefix(list);
        let mut out = Vec::new();
        for entry in self
            .list_deltas
            .range(delta_key(list, after.saturating_add(1))..)
        {
            let (key, value) = entry.map_err(sled_err("read list deltas"))?;
            if !key.starts_with(&prefix) {
                break;
            }
            out.push(decode(&value, "read list deltas", "list_deltas")?);
        }
        Ok(out)
    }

    /// Stores a new version of an own list: its entries, metadata and delta, the
    /// envelopes queued for each allowed partner and the decisions, in one transaction.
    /// Fails with [`ApplyOutcome::Moved`] (as `Ok`) when the list is no longer at the
    /// delta's `from_version` (another import got there first).
    pub fn publish_list(&self, publish: ListPublish<'_>) -> Result<ApplyOutcome> {
        self.ensure_space()?;
        let ListPublish {
            list,
            delta,
            sealed,
            withheld,
            mut events,
        } = publish;
        let now = crate::now_ms();
        let mut queued = Vec::new();
        let mut records = Vec::new();
        let mut sent: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for s in sealed {
            let id = super::id16(&s.envelope.item_id);
            queued.push((outbox_key(&s.partner, &id), s.envelope.encode_to_vec()));
            let record = DeliveryRecord {
                state: "queued".into(),
                detail: String::new(),
                updated_at_ms: now,
                envelope_digest: s.digest.to_vec(),
                rule: s.rule.clone(),
                redactions: Vec::new(),
            };
            records.push((delivery_key(&id, &s.partner), record.encode_to_vec()));
            let mut key = sent_prefix(list, &s.partner);
            key.extend_from_slice(&delta.to_version.to_be_bytes());
            match sent.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) => ids.extend_from_slice(&id),
                None => sent.push((key, id.to_vec())),
            }
            let detail = format!("{list} v{}; rule {}", delta.to_version, s.rule);
            events.push(Event::new(
                audit::Action::Queued,
                &s.partner,
                &ulid_text(&id),
                detail,
            ));
        }
        for w in withheld {
            let detail = format!("{list} v{}: {}", delta.to_version, w.reason);
            events.push(Event::new(audit::Action::Withheld, &w.partner, "", detail));
        }
        let kept = kept_delta(delta);
        (
            &self.lists,
            &self.list_entries,
            &self.list_deltas,
            &self.list_sent,
            &self.outbox,
            &self.deliveries,
            &self.audit,
        )
            .transaction(
                |(lists, entries, deltas, sent_tree, outbox, deliveries, log)| {
                    let meta = read_meta(lists, list)?.unwrap_or_default();
                    if meta.version != delta.from_version {
                        return Ok(ApplyOutcome::Moved);
                    }
                    let mut digest = meta.digest();
                    let mut count = meta.entry_count;
                    write_changes(entries, list, delta, &mut digest, &mut count)?;
                    let new_meta = ListMeta {
                        owner: meta_owner(&meta, list),
                        version: delta.to_version,
                        entry_count: count,
                        digest: digest.0.to_vec(),
                        updated_at_ms: now,
                        state: String::new(),
                        detail: String::new(),
                        published_at_ms: delta.published_at_ms,
                    };
                    lists.insert(list.as_bytes(), new_meta.encode_to_vec())?;
                    deltas.insert(delta_key(list, delta.to_version), kept.as_slice())?;
                    for (k, v) in &sent {
                        sent_tree.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &queued {
                        outbox.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &records {
                        deliveries.insert(k.as_slice(), v.as_slice())?;
                    }
                    self.append_audit(log, &events)?;
                    Ok(ApplyOutcome::Applied)
                },
            )
            .map_err(tx_err("publish list"))
    }

    /// Applies a whole received delta (or snapshot) to `list`, which must be at
    /// `held_version` (what the caller read), and checks the resulting digest against the
    /// one the delta carries. On success the list's metadata says `in-sync`, the staged
    /// deltas it supersedes are dropped, `seen` (sender, item id, envelope digest) marks
    /// received envelopes and `events` are appended, all in one transaction. On a digest
    /// mismatch nothing is written.
    pub fn apply_list_delta(
        &self,
        delta: &pb::WatchlistDelta,
        held_version: u64,
        seen: &[(String, [u8; 16], [u8; 32])],
        events: &[Event],
    ) -> Result<ApplyOutcome> {
        self.ensure_space()?;
        let list = delta.list.as_str();
        // A snapshot replaces the list: the keys it drops are read first, and the version
        // check inside the transaction makes sure the list has not changed since.
        let old_keys: Vec<sled::IVec> = if delta.from_version == 0 {
            self.list_entries
                .scan_prefix(list_prefix(list))
                .keys()
                .collect::<std::result::Result<_, _>>()
                .map_err(sled_err("read list entries"))?
        } else {
            Vec::new()
        };
        let superseded = self.staged_up_to(list, delta.to_version)?;
        let carried = Digest(delta.digest.as_slice().try_into().unwrap_or([0; 32]));
        let now = crate::now_ms();
        (
            &self.lists,
            &self.list_entries,
            &self.list_staged,
            &self.seen,
            &self.audit,
        )
            .transaction(|(lists, entries, staged, seen_tree, log)| {
                let meta = read_meta(lists, list)?.unwrap_or_default();
                if meta.version != held_version {
                    return Ok(ApplyOutcome::Moved);
                }
                let (mut digest, mut count) = if delta.from_version == 0 {
                    for key in &old_keys {
                        entries.remove(key)?;
                    }
                    (Digest::default(), 0)
                } else {
                    (meta.digest(), meta.entry_count)
                };
                write_changes(entries, list, delta, &mut digest, &mut count)?;
                if digest != carried || count != delta.entry_count {
                    // Aborting writes nothing; the caller learns what was computed.
                    return sled::transaction::abort(StoreError::ListMismatch { computed: digest });
                }
                let new_meta = ListMeta {
                    owner: meta_owner(&meta, list),
                    version: delta.to_version,
                    entry_count: count,
                    digest: digest.0.to_vec(),
                    updated_at_ms: now,
                    state: "in-sync".into(),
                    detail: String::new(),
                    published_at_ms: delta.published_at_ms,
                };
                lists.insert(list.as_bytes(), new_meta.encode_to_vec())?;
                for key in &superseded {
                    staged.remove(key.as_slice())?;
                }
                mark_seen(seen_tree, seen)?;
                self.append_audit(log, events)?;
                Ok(ApplyOutcome::Applied)
            })
            .or_else(|e| match e {
                sled::transaction::TransactionError::Abort(StoreError::ListMismatch {
                    computed,
                }) => Ok(ApplyOutcome::Mismatch { computed }),
                other => Err(tx_err("apply list delta")(other)),
            })
    }

    /// Keys of the staged deltas and parts of `list` whose `to` is at most `version`.
    fn staged_up_to(&self, list: &str, version: u64) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for (key, staged) in self.staged(list)? {
            if staged.to <= version {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Every staged delta or part of `list`, with its raw key.
    fn staged(&self, list: &str) -> Result<Vec<(Vec<u8>, StagedKey)>> {
        let mut out = Vec::new();
        for key in self.list_staged.scan_prefix(list_prefix(list)).keys() {
            let key = key.map_err(sled_err("read staged deltas"))?;
            if let Some(parsed) = parse_staged_key(list, &key) {
                out.push((key.to_vec(), parsed));
            }
        }
        Ok(out)
    }

    /// Keeps a received part, or a whole delta that cannot be applied yet, and marks its
    /// envelope seen, in one transaction.
    pub fn stage_list_delta(
        &self,
        delta: &pb::WatchlistDelta,
        seen: &[(String, [u8; 16], [u8; 32])],
        events: &[Event],
    ) -> Result<()> {
        self.ensure_space()?;
        let key = staged_key(
            &delta.list,
            StagedKey {
                from: delta.from_version,
                to: delta.to_version,
                part: delta.part.max(1),
            },
        );
        let value = delta.encode_to_vec();
        (&self.list_staged, &self.seen, &self.audit)
            .transaction(|(staged, seen_tree, log)| {
                staged.insert(key.as_slice(), value.as_slice())?;
                mark_seen(seen_tree, seen)?;
                self.append_audit(log, events)?;
                Ok(())
            })
            .map_err(tx_err("stage list delta"))
    }

    /// The staged deltas or parts of `list` from `from` to `to`, by part.
    pub fn staged_parts(&self, list: &str, from: u64, to: u64) -> Result<Vec<pb::WatchlistDelta>> {
        let mut out = Vec::new();
        for (key, staged) in self.staged(list)? {
            if staged.from == from && staged.to == to {
                if let Some(v) = self
                    .list_staged
                    .get(&key)
                    .map_err(sled_err("read staged"))?
                {
                    out.push(decode(&v, "read staged", "list_staged")?);
                }
            }
        }
        Ok(out)
    }

    /// The (from, to) pairs of the deltas of `list` staged, oldest first.
    pub fn staged_versions(&self, list: &str) -> Result<Vec<(u64, u64)>> {
        let mut out: Vec<(u64, u64)> = self
            .staged(list)?
            .into_iter()
            .map(|(_, k)| (k.from, k.to))
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Drops every staged delta or part of `list` from `from` to `to`.
    pub fn drop_staged(&self, list: &str, from: u64, to: u64) -> Result<()> {
        for (key, staged) in self.staged(list)? {
            if staged.from == from && staged.to == to {
                self.list_staged
                    .remove(key)
                    .map_err(sled_err("drop staged"))?;
            }
        }
        Ok(())
    }

    /// Marks received envelopes seen (a delta acknowledged without a change: one older
    /// than what is held) and appends `events`, in one transaction.
    pub fn mark_list_seen(
        &self,
        seen: &[(String, [u8; 16], [u8; 32])],
        events: &[Event],
    ) -> Result<()> {
        (&self.seen, &self.audit)
            .transaction(|(seen_tree, log)| {
                mark_seen(seen_tree, seen)?;
                self.append_audit(log, events)?;
                Ok(())
            })
            .map_err(tx_err("acknowledge list delta"))
    }

    /// Whether `sender` delivered an envelope with this item id before: `Some(true)` with
    /// the same digest, `Some(false)` with another.
    pub fn seen_before(
        &self,
        sender: &str,
        id: &[u8; 16],
        digest: &[u8; 32],
    ) -> Result<Option<bool>> {
        let prior = self
            .seen
            .get(seen_key(sender, id))
            .map_err(sled_err("read seen"))?;
        Ok(prior.map(|p| p.as_ref() == digest))
    }

    /// Sets the state and detail of a received list (creating its record at version 0
    /// when the node holds nothing of it yet), and appends `events`.
    pub fn set_list_state(
        &self,
        list: &str,
        state: &str,
        detail: &str,
        events: &[Event],
    ) -> Result<()> {
        (&self.lists, &self.audit)
            .transaction(|(lists, log)| {
                let mut meta = read_meta(lists, list)?.unwrap_or_default();
                meta.owner = meta_owner(&meta, list);
                if meta.digest.is_empty() {
                    meta.digest = vec![0; 32];
                }
                meta.state = state.to_owned();
                meta.detail = detail.to_owned();
                lists.insert(list.as_bytes(), meta.encode_to_vec())?;
                self.append_audit(log, events)?;
                Ok(())
            })
            .map_err(tx_err("set list state"))
    }

    /// For an own list: per partner it was ever queued for, the versions queued and
    /// confirmed by receipts.
    pub fn list_sync(&self, list: &str) -> Result<Vec<ListSyncRow>> {
        let prefix = list_prefix(list);
        let mut rows: Vec<ListSyncRow> = Vec::new();
        for entry in self.list_sent.scan_prefix(&prefix) {
            let (key, ids) = entry.map_err(sled_err("read list sync"))?;
            let rest = &key[prefix.len()..];
            let Some(split) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            if rest.len() != split + 9 {
                continue;
            }
            let partner = String::from_utf8_lossy(&rest[..split]).into_owned();
            let version = super::u64_be(&rest[split + 1..]);
            let (state, detail) = self.sent_state(&partner, &ids)?;
            let row = match rows.iter_mut().find(|r| r.partner == partner) {
                Some(row) => row,
                None => {
                    rows.push(ListSyncRow {
                        partner: partner.clone(),
                        queued: 0,
                        confirmed: 0,
                        last_state: String::new(),
                        detail: String::new(),
                    });
                    rows.last_mut().ok_or(StoreError::Corrupt {
                        op: "read list sync",
                        tree: "list_sent",
                    })?
                }
            };
            // Keys sort by version, so the last one read is the newest.
            row.queued = version;
            row.last_state = state.clone();
            if state == "delivered" {
                row.confirmed = version;
            }
            if state == "refused" {
                row.detail = detail;
            }
        }
        Ok(rows)
    }

    /// The combined delivery state of the envelopes `ids` (16 bytes each) towards
    /// `partner`: "delivered" when all are, "refused" when one is, else "queued".
    fn sent_state(&self, partner: &str, ids: &[u8]) -> Result<(String, String)> {
        let mut all_delivered = true;
        for id in ids.chunks_exact(16) {
            let id = super::id16(id);
            let record: DeliveryRecord = match self
                .deliveries
                .get(delivery_key(&id, partner))
                .map_err(sled_err("read deliveries"))?
            {
                Some(v) => decode(&v, "read deliveries", "deliveries")?,
                None => DeliveryRecord::default(),
            };
            match record.state.as_str() {
                "delivered" => {}
                "refused" => return Ok(("refused".into(), record.detail)),
                _ => all_delivered = false,
            }
        }
        let state = if all_delivered { "delivered" } else { "queued" };
        Ok((state.into(), String::new()))
    }
}

/// The owner recorded in `meta`, or the one the list's name gives.
fn meta_owner(meta: &ListMeta, list: &str) -> String {
    if meta.owner.is_empty() {
        crate::watchlist::list_owner(list)
            .unwrap_or_default()
            .to_owned()
    } else {
        meta.owner.clone()
    }
}

/// What the owner keeps of a delta: all of it, except a snapshot's entries, which the
/// list itself holds.
fn kept_delta(delta: &pb::WatchlistDelta) -> Vec<u8> {
    if delta.from_version == 0 {
        pb::WatchlistDelta {
            upserts: Vec::new(),
            ..delta.clone()
        }
        .encode_to_vec()
    } else {
        delta.encode_to_vec()
    }
}

/// Writes a delta's removals and upserts into `entries`, updating `digest` and `count`
/// from the entries replaced and removed.
fn write_changes(
    entries: &TransactionalTree,
    list: &str,
    delta: &pb::WatchlistDelta,
    digest: &mut Digest,
    count: &mut u64,
) -> TxResult<()> {
    for id in &delta.removals {
        if let Some(old) = entries.remove(entry_key(list, id))? {
            let old: pb::WatchlistEntry =
                decode(&old, "apply list delta", "list_entries").map_err(abort)?;
            digest.remove(&old);
            *count = count.saturating_sub(1);
        }
    }
    for entry in &delta.upserts {
        let entry = crate::watchlist::canonical(entry.clone());
        let key = entry_key(list, &entry.id);
        match entries.insert(key, entry.encode_to_vec())? {
            Some(old) => {
                let old: pb::WatchlistEntry =
                    decode(&old, "apply list delta", "list_entries").map_err(abort)?;
                digest.remove(&old);
            }
            None => *count += 1,
        }
        digest.add(&entry);
    }
    Ok(())
}

/// Marks envelopes seen inside a transaction.
fn mark_seen(seen: &TransactionalTree, marks: &[(String, [u8; 16], [u8; 32])]) -> TxResult<()> {
    for (sender, id, digest) in marks {
        seen.insert(seen_key(sender, id), &digest[..])?;
    }
    Ok(())
}
