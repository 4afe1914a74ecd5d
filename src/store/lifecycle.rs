//! What the lifecycle of items leaves in the store: earlier versions, tombstones, consent
//! requests and grants, consultations and licence decisions.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `versions` | item id (16) ‖ version (4, BE) ‖ sender | an earlier [`StoredItem`], sealed with the data key |
//! | `lifecycle` | `t` ‖ item id (16) ‖ originator | `pb::Tombstone`: the item was withdrawn |
//! | | `r` ‖ item id (16) | item id (16) of the retraction message (originator) |
//! | | `v` ‖ item id (16) ‖ message id (16) | version (4, BE) the correction message carried (originator) |
//! | | `c` ‖ request id (16) | `pb::Consent` |
//! | | `u` ‖ item id (16) ‖ originator | agency id of the partner that passed the tombstone on, when the originator's signature could not be checked here |
//! | | `g` ‖ item id (16) ‖ originator ‖ `/` ‖ third agency | request id (16) of the granted consent |
//! | | `k` ‖ consultation id (16) | `pb::Consultation` |
//! | | `a` ‖ application reference | `pb::LicenceRecord` |
//!
//! Every `lifecycle` and `versions` value is sealed with the data key: notes, reasons and
//! earlier versions hold report content.
//!
//! A lifecycle change is one [`Change`]: its writes, removals, queued messages, the
//! received message's replay record and its audit entries go in one transaction.

use prost::Message as _;
use sled::Transactional as _;

use super::{
    DeliveryRecord, ITEMS, Received, Result, Sealed, Store, StoreError, StoredItem, decode,
    delivery_key, id16, item_key, outbox_key, seen_key, sled_err, tx_err, ulid_text,
};
use crate::{audit, pb};

const VERSIONS: &str = "versions";
const LIFECYCLE: &str = "lifecycle";

/// A tree a [`Change`] writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    Items = 0,
    Versions,
    Lifecycle,
    Outbox,
    Deliveries,
    Screening,
    Correlations,
    CorrelationItems,
}

/// A lifecycle change, built (and its values sealed) before the transaction that applies it.
#[derive(Debug, Default)]
pub struct Change {
    puts: Vec<(Tree, Vec<u8>, Vec<u8>)>,
    removals: Vec<(Tree, Vec<u8>)>,
    /// Outbox entries to take back: (partner, item id, new delivery state).
    recalls: Vec<(String, [u8; 16], String)>,
    /// The received message's replay record: (seen key, envelope digest).
    seen: Option<(Vec<u8>, [u8; 32])>,
    events: Vec<audit::Event>,
    /// Partners with a message queued by this change.
    queued: Vec<String>,
}

impl Change {
    /// An empty change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `item` under its key (item id ‖ sender), replacing what was there.
    pub fn put_item(&mut self, store: &Store, item: &StoredItem) -> Result<()> {
        let key = item_key(&id16(&item.item_id), &item.sender);
        let value = store.seal_value(ITEMS, &key, &item.encode_to_vec())?;
        self.puts.push((Tree::Items, key, value));
        Ok(())
    }

    /// Keeps `item` as an earlier version.
    pub fn put_version(&mut self, store: &Store, item: &StoredItem) -> Result<()> {
        let key = version_key(&id16(&item.item_id), item.version.max(1), &item.sender);
        let value = store.seal_value(VERSIONS, &key, &item.encode_to_vec())?;
        self.puts.push((Tree::Versions, key, value));
        Ok(())
    }

    /// Writes a lifecycle record.
    fn put_record(
        &mut self,
        store: &Store,
        key: Vec<u8>,
        record: &impl prost::Message,
    ) -> Result<()> {
        let value = store.seal_value(LIFECYCLE, &key, &record.encode_to_vec())?;
        self.puts.push((Tree::Lifecycle, key, value));
        Ok(())
    }

    /// Keeps the tombstone of an item. `vouched_by` names the partner that passed it on
    /// when the originator's signature could not be checked here (no keys of the
    /// originator are held); `None` for a tombstone whose signature was checked, or this
    /// node's own.
    pub fn put_tombstone(
        &mut self,
        store: &Store,
        t: &pb::Tombstone,
        vouched_by: Option<&str>,
    ) -> Result<()> {
        let id = id16(&t.item_id);
        self.put_record(store, tombstone_key(&id, &t.originator), t)?;
        let key = voucher_key(&id, &t.originator);
        match vouched_by {
            Some(partner) => {
                let value = store.seal_value(LIFECYCLE, &key, partner.as_bytes())?;
                self.puts.push((Tree::Lifecycle, key, value));
            }
            None => self.removals.push((Tree::Lifecycle, key)),
        }
        Ok(())
    }

    /// Notes which message carried the retraction of own item `item`.
    pub fn put_retraction_message(
        &mut self,
        store: &Store,
        item: &[u8; 16],
        message: &[u8; 16],
    ) -> Result<()> {
        let key = prefixed(b'r', item);
        let value = store.seal_value(LIFECYCLE, &key, message)?;
        self.puts.push((Tree::Lifecycle, key, value));
        Ok(())
    }

    /// Notes that message `message` carried version `version` of own item `item`.
    pub fn put_correction_message(
        &mut self,
        store: &Store,
        item: &[u8; 16],
        message: &[u8; 16],
        version: u32,
    ) -> Result<()> {
        let mut key = prefixed(b'v', item);
        key.extend_from_slice(message);
        let value = store.seal_value(LIFECYCLE, &key, &version.to_be_bytes())?;
        self.puts.push((Tree::Lifecycle, key, value));
        Ok(())
    }

    /// Removes the screening hits of the item (`id`, `sender`), to be screened again.
    pub fn remove_screening(&mut self, id: &[u8; 16], sender: &str) {
        self.removals.push((Tree::Screening, item_key(id, sender)));
    }

    /// Writes a consent request's record.
    pub fn put_consent(&mut self, store: &Store, id: &[u8; 16], c: &pb::Consent) -> Result<()> {
        self.put_record(store, prefixed(b'c', id), c)
    }

    /// Records that `originator` consented to its item `item` going to `third_party`.
    pub fn put_grant(
        &mut self,
        store: &Store,
        item: &[u8; 16],
        originator: &str,
        third_party: &str,
        request: &[u8; 16],
    ) -> Result<()> {
        let key = grant_key(item, originator, third_party);
        let value = store.seal_value(LIFECYCLE, &key, request)?;
        self.puts.push((Tree::Lifecycle, key, value));
        Ok(())
    }

    /// Removes every consent `originator` granted for its item `item` (the item is gone).
    pub fn remove_grants(
        &mut self,
        store: &Store,
        item: &[u8; 16],
        originator: &str,
    ) -> Result<()> {
        let prefix = grant_key(item, originator, "");
        for entry in store.lifecycle_tree()?.scan_prefix(&prefix) {
            let (key, _) = entry.map_err(sled_err("read lifecycle"))?;
            self.removals.push((Tree::Lifecycle, key.to_vec()));
        }
        Ok(())
    }

    /// Writes a consultation's record.
    pub fn put_consultation(
        &mut self,
        store: &Store,
        id: &[u8; 16],
        c: &pb::Consultation,
    ) -> Result<()> {
        self.put_record(store, prefixed(b'k', id), c)
    }

    /// Writes a licence application's record.
    pub fn put_licence(&mut self, store: &Store, record: &pb::LicenceRecord) -> Result<()> {
        self.put_record(store, licence_key(&record.reference), record)
    }

    /// Removes the item (`id`, `sender`) with every earlier version, its screening hits and
    /// its links to other items (which quote its subjects).
    pub fn erase_item(&mut self, store: &Store, id: &[u8; 16], sender: &str) -> Result<()> {
        let key = item_key(id, sender);
        self.removals.push((Tree::Items, key.clone()));
        self.removals.push((Tree::Screening, key.clone()));
        for entry in store.versions_tree()?.scan_prefix(id) {
            let (k, _) = entry.map_err(sled_err("read versions"))?;
            if k.get(20..) == Some(sender.as_bytes()) {
                self.removals.push((Tree::Versions, k.to_vec()));
            }
        }
        let (_, by_item) = store.correlation_trees()?;
        let mut prefix = key;
        prefix.push(0);
        for entry in by_item.scan_prefix(&prefix) {
            let (k, _) = entry.map_err(sled_err("read correlations"))?;
            let link = k[k.len() - 16..].to_vec();
            self.removals.push((Tree::CorrelationItems, k.to_vec()));
            self.removals.push((Tree::Correlations, link));
        }
        Ok(())
    }

    /// The partners this change queues messages for.
    pub fn queued_partners(&self) -> impl Iterator<Item = &str> {
        self.queued.iter().map(String::as_str)
    }

    /// Queues a message sealed for one partner, with its delivery record.
    pub fn queue(&mut self, id: &[u8; 16], sealed: &Sealed) {
        self.queued.push(sealed.partner.clone());
        self.puts.push((
            Tree::Outbox,
            outbox_key(&sealed.partner, id),
            sealed.envelope.encode_to_vec(),
        ));
        let record = DeliveryRecord {
            state: "queued".into(),
            updated_at_ms: crate::now_ms(),
            envelope_digest: sealed.digest.to_vec(),
            rule: sealed.rule.clone(),
            redactions: sealed.redactions.clone(),
            ..Default::default()
        };
        self.puts.push((
            Tree::Deliveries,
            delivery_key(id, &sealed.partner),
            record.encode_to_vec(),
        ));
    }

    /// Records that a message was not sent to `partner`, and why.
    pub fn withhold(&mut self, id: &[u8; 16], partner: &str, reason: &str, rule: &str) {
        let record = DeliveryRecord {
            state: "withheld".into(),
            detail: reason.to_owned(),
            updated_at_ms: crate::now_ms(),
            rule: rule.to_owned(),
            ..Default::default()
        };
        self.puts.push((
            Tree::Deliveries,
            delivery_key(id, partner),
            record.encode_to_vec(),
        ));
    }

    /// Takes item `id` out of `partner`'s outbox if it is still there, setting its
    /// delivery state to `state`.
    pub fn recall(&mut self, partner: &str, id: &[u8; 16], state: &str) {
        self.recalls
            .push((partner.to_owned(), *id, state.to_owned()));
    }

    /// Marks the received message (`sender`, `id`) as seen, with its envelope digest: the
    /// change is applied only if no other envelope with that id was.
    pub fn seen(&mut self, sender: &str, id: &[u8; 16], digest: [u8; 32]) {
        self.seen = Some((seen_key(sender, id), digest));
    }

    /// Adds an audit entry.
    pub fn event(&mut self, event: audit::Event) {
        self.events.push(event);
    }
}

impl Store {
    fn versions_tree(&self) -> Result<sled::Tree> {
        self.db
            .open_tree(VERSIONS)
            .map_err(sled_err("open versions"))
    }

    fn lifecycle_tree(&self) -> Result<sled::Tree> {
        self.db
            .open_tree(LIFECYCLE)
            .map_err(sled_err("open lifecycle"))
    }

    /// Applies `change` in one transaction. With a replay record set, an envelope seen
    /// before changes nothing: the same one gives [`Received::Duplicate`], another one with
    /// the same id [`Received::Replay`].
    pub fn apply(&self, change: &Change) -> Result<Received> {
        self.ensure_space()?;
        let (links, by_item) = self.correlation_trees()?;
        let trees = [
            &self.items,
            &self.versions_tree()?,
            &self.lifecycle_tree()?,
            &self.outbox,
            &self.deliveries,
            &self.screening,
            &links,
            &by_item,
            &self.seen,
            &self.audit,
        ];
        let trees: Vec<&sled::Tree> = trees.to_vec();
        trees
            .as_slice()
            .transaction(|t| {
                let (seen, log) = (&t[8], &t[9]);
                if let Some((key, digest)) = &change.seen {
                    match seen.get(key.as_slice())? {
                        Some(prior) if prior.as_ref() == digest => return Ok(Received::Duplicate),
                        Some(_) => return Ok(Received::Replay),
                        None => {
                            seen.insert(key.as_slice(), &digest[..])?;
                        }
                    }
                }
                for (tree, key) in &change.removals {
                    t[*tree as usize].remove(key.as_slice())?;
                }
                for (tree, key, value) in &change.puts {
                    t[*tree as usize].insert(key.as_slice(), value.as_slice())?;
                }
                let mut events = change.events.clone();
                for (partner, id, state) in &change.recalls {
                    let outbox = &t[Tree::Outbox as usize];
                    let deliveries = &t[Tree::Deliveries as usize];
                    if outbox.remove(outbox_key(partner, id))?.is_none() {
                        continue;
                    }
                    let key = delivery_key(id, partner);
                    let mut record = match deliveries.get(key.as_slice())? {
                        Some(v) => DeliveryRecord::decode(v.as_ref()).unwrap_or_default(),
                        None => DeliveryRecord::default(),
                    };
                    record.state = state.clone();
                    record.updated_at_ms = crate::now_ms();
                    deliveries.insert(key, record.encode_to_vec())?;
                    events.push(audit::Event::new(
                        audit::Action::Retracted,
                        partner,
                        &ulid_text(id),
                        format!("taken out of the outbox before delivery: {state}"),
                    ));
                }
                self.append_audit(log, &events)?;
                Ok(Received::Stored)
            })
            .map_err(tx_err("apply lifecycle change"))
    }

    fn record_at<T: prost::Message + Default>(&self, key: &[u8]) -> Result<Option<T>> {
        self.lifecycle_tree()?
            .get(key)
            .map_err(sled_err("read lifecycle"))?
            .map(|v| self.open_value("read lifecycle", LIFECYCLE, key, &v))
            .transpose()
    }

    fn records<T: prost::Message + Default>(&self, prefix: u8) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for entry in self.lifecycle_tree()?.scan_prefix([prefix]).rev() {
            let (key, value) = entry.map_err(sled_err("read lifecycle"))?;
            out.push(self.open_value("read lifecycle", LIFECYCLE, &key, &value)?);
        }
        Ok(out)
    }

    fn id_at(&self, key: &[u8]) -> Result<Option<[u8; 16]>> {
        let Some(value) = self
            .lifecycle_tree()?
            .get(key)
            .map_err(sled_err("read lifecycle"))?
        else {
            return Ok(None);
        };
        let plain = self
            .at_rest
            .open(LIFECYCLE, key, &value)
            .ok_or(StoreError::Undecryptable {
                op: "read lifecycle",
                tree: LIFECYCLE,
            })?;
        Ok(Some(id16(&plain)))
    }

    /// The tombstone of item `id` from `originator`, if the originator withdrew it.
    pub fn tombstone(&self, id: &[u8; 16], originator: &str) -> Result<Option<pb::Tombstone>> {
        self.record_at(&tombstone_key(id, originator))
    }

    /// The message that carried the retraction of own item `id`, if it was retracted.
    pub fn retraction_message(&self, id: &[u8; 16]) -> Result<Option<[u8; 16]>> {
        self.id_at(&prefixed(b'r', id))
    }

    /// The messages that carried corrections of own item `id`, with the version each
    /// carried, oldest first.
    pub fn correction_messages(&self, id: &[u8; 16]) -> Result<Vec<([u8; 16], u32)>> {
        let prefix = prefixed(b'v', id);
        let mut out = Vec::new();
        for entry in self.lifecycle_tree()?.scan_prefix(&prefix) {
            let (key, value) = entry.map_err(sled_err("read lifecycle"))?;
            let plain =
                self.at_rest
                    .open(LIFECYCLE, &key, &value)
                    .ok_or(StoreError::Undecryptable {
                        op: "read lifecycle",
                        tree: LIFECYCLE,
                    })?;
            let version = <[u8; 4]>::try_from(&plain[..]).map_or(0, u32::from_be_bytes);
            out.push((id16(&key[prefix.len()..]), version));
        }
        Ok(out)
    }

    /// Every tombstone held for item `id` (one per originator; at most one in practice).
    pub fn tombstones_of(&self, id: &[u8; 16]) -> Result<Vec<pb::Tombstone>> {
        let prefix = prefixed(b't', id);
        let mut out = Vec::new();
        for entry in self.lifecycle_tree()?.scan_prefix(&prefix) {
            let (key, value) = entry.map_err(sled_err("read lifecycle"))?;
            out.push(self.open_value("read lifecycle", LIFECYCLE, &key, &value)?);
        }
        Ok(out)
    }

    /// The earlier versions of the item (`id`, `sender`), oldest first.
    pub fn versions(&self, id: &[u8; 16], sender: &str) -> Result<Vec<StoredItem>> {
        let mut out = Vec::new();
        for entry in self.versions_tree()?.scan_prefix(id) {
            let (key, value) = entry.map_err(sled_err("read versions"))?;
            if key.get(20..) == Some(sender.as_bytes()) {
                out.push(self.open_value("read versions", VERSIONS, &key, &value)?);
            }
        }
        Ok(out)
    }

    /// Consent request `id`.
    pub fn consent(&self, id: &[u8; 16]) -> Result<Option<pb::Consent>> {
        self.record_at(&prefixed(b'c', id))
    }

    /// Every consent request, newest first.
    pub fn consents(&self) -> Result<Vec<pb::Consent>> {
        self.records(b'c')
    }

    /// The partner on whose word the tombstone of item `id` from `originator` was taken,
    /// if its signature was not checked here.
    pub fn tombstone_voucher(&self, id: &[u8; 16], originator: &str) -> Result<Option<String>> {
        let key = voucher_key(id, originator);
        let Some(value) = self
            .lifecycle_tree()?
            .get(&key)
            .map_err(sled_err("read lifecycle"))?
        else {
            return Ok(None);
        };
        let plain =
            self.at_rest
                .open(LIFECYCLE, &key, &value)
                .ok_or(StoreError::Undecryptable {
                    op: "read lifecycle",
                    tree: LIFECYCLE,
                })?;
        Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
    }

    /// The agencies `originator` consented to its item `item` going to.
    pub fn grants(&self, item: &[u8; 16], originator: &str) -> Result<Vec<String>> {
        let prefix = grant_key(item, originator, "");
        let mut out = Vec::new();
        for entry in self.lifecycle_tree()?.scan_prefix(&prefix) {
            let (key, _) = entry.map_err(sled_err("read lifecycle"))?;
            out.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// Consultation `id`.
    pub fn consultation(&self, id: &[u8; 16]) -> Result<Option<pb::Consultation>> {
        self.record_at(&prefixed(b'k', id))
    }

    /// Every consultation, newest first.
    pub fn consultations(&self) -> Result<Vec<pb::Consultation>> {
        self.records(b'k')
    }

    /// The record of licence application `reference`.
    pub fn licence(&self, reference: &str) -> Result<Option<pb::LicenceRecord>> {
        self.record_at(&licence_key(reference))
    }

    /// The delivery record of item or message `id` towards `partner`.
    pub fn delivery(&self, id: &[u8; 16], partner: &str) -> Result<Option<DeliveryRecord>> {
        self.deliveries
            .get(delivery_key(id, partner))
            .map_err(sled_err("read deliveries"))?
            .map(|v| decode(&v, "read deliveries", "deliveries"))
            .transpose()
    }
}

fn prefixed(tag: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(tag);
    k.extend_from_slice(id);
    k
}

fn tombstone_key(id: &[u8; 16], originator: &str) -> Vec<u8> {
    let mut k = prefixed(b't', id);
    k.extend_from_slice(originator.as_bytes());
    k
}

fn voucher_key(id: &[u8; 16], originator: &str) -> Vec<u8> {
    let mut k = prefixed(b'u', id);
    k.extend_from_slice(originator.as_bytes());
    k
}

/// `g` ‖ item ‖ originator ‖ `/` ‖ third agency; with an empty `third_party`, the prefix
/// of every grant of that originator for that item. Agency ids hold no `/`.
fn grant_key(item: &[u8; 16], originator: &str, third_party: &str) -> Vec<u8> {
    let mut k = prefixed(b'g', item);
    k.extend_from_slice(originator.as_bytes());
    k.push(b'/');
    k.extend_from_slice(third_party.as_bytes());
    k
}

fn licence_key(reference: &str) -> Vec<u8> {
    prefixed(b'a', reference.as_bytes())
}

fn version_key(id: &[u8; 16], version: u32, sender: &str) -> Vec<u8> {
    let mut k = id.to_vec();
    k.extend_from_slice(&version.to_be_bytes());
    k.extend_from_slice(sender.as_bytes());
    k
}
