//! Keys learned from partners' announcements, and this node's own announcements waiting
//! to reach each partner.
//!
//! Neither holds a secret (public keys and signatures only), so neither is sealed with
//! the data key. A learned record takes precedence over the partner's keys in the config
//! file, which are only where a node starts from.

use prost::Message as _;

use super::{Result, Store, StoreError, sled_err};
use crate::pb;

/// Tree of learned partner keys: agency id → `LearnedKeys`.
const LEARNED: &str = "partner_keys";
/// Tree of announcements to send: agency id, a zero byte, `issued_at_ms` (u64
/// big-endian) → `KeyAnnouncement`. Sent in key order, so oldest first.
const OUTGOING: &str = "key_announcements";

fn outgoing_prefix(partner: &str) -> Vec<u8> {
    let mut key = partner.as_bytes().to_vec();
    key.push(0);
    key
}

fn outgoing_key(partner: &str, issued_at_ms: i64) -> Vec<u8> {
    let mut key = outgoing_prefix(partner);
    key.extend_from_slice(&(issued_at_ms.max(0) as u64).to_be_bytes());
    key
}

impl Store {
    fn tree(&self, name: &'static str) -> Result<sled::Tree> {
        self.db.open_tree(name).map_err(sled_err("open tree"))
    }

    /// The keys learned for `partner`, if it ever announced any.
    pub fn learned_keys(&self, partner: &str) -> Result<Option<pb::LearnedKeys>> {
        let Some(value) = self
            .tree(LEARNED)?
            .get(partner.as_bytes())
            .map_err(sled_err("read learned keys"))?
        else {
            return Ok(None);
        };
        pb::LearnedKeys::decode(&value[..])
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                op: "read learned keys",
                tree: LEARNED,
            })
    }

    /// Keeps `keys` as `partner`'s keys (not flushed: the caller flushes).
    pub fn put_learned_keys(&self, partner: &str, keys: &pb::LearnedKeys) -> Result<()> {
        self.tree(LEARNED)?
            .insert(partner.as_bytes(), keys.encode_to_vec())
            .map_err(sled_err("store learned keys"))?;
        Ok(())
    }

    /// Queues `announcement` for each of `partners` (not flushed: the caller flushes).
    pub fn queue_announcement(
        &self,
        partners: &[String],
        announcement: &pb::KeyAnnouncement,
    ) -> Result<()> {
        let tree = self.tree(OUTGOING)?;
        let value = announcement.encode_to_vec();
        for partner in partners {
            tree.insert(
                outgoing_key(partner, announcement.issued_at_ms),
                value.clone(),
            )
            .map_err(sled_err("queue key announcement"))?;
        }
        Ok(())
    }

    /// The announcements still to send to `partner`, oldest first.
    pub fn pending_announcements(&self, partner: &str) -> Result<Vec<pb::KeyAnnouncement>> {
        let mut found = Vec::new();
        for entry in self.tree(OUTGOING)?.scan_prefix(outgoing_prefix(partner)) {
            let (_, value) = entry.map_err(sled_err("read key announcements"))?;
            found.push(pb::KeyAnnouncement::decode(&value[..]).map_err(|_| {
                StoreError::Corrupt {
                    op: "read key announcements",
                    tree: OUTGOING,
                }
            })?);
        }
        Ok(found)
    }

    /// Whether any announcement waits for `partner` (false when the store cannot say).
    pub fn has_pending_announcements(&self, partner: &str) -> bool {
        self.tree(OUTGOING)
            .map(|t| t.scan_prefix(outgoing_prefix(partner)).next().is_some())
            .unwrap_or(false)
    }

    /// The newest announcement waiting for any partner.
    pub fn newest_pending_announcement(&self) -> Result<Option<pb::KeyAnnouncement>> {
        let mut newest: Option<pb::KeyAnnouncement> = None;
        for entry in self.tree(OUTGOING)?.iter() {
            let (_, value) = entry.map_err(sled_err("read key announcements"))?;
            if let Ok(a) = pb::KeyAnnouncement::decode(&value[..])
                && newest
                    .as_ref()
                    .is_none_or(|n| a.issued_at_ms > n.issued_at_ms)
            {
                newest = Some(a);
            }
        }
        Ok(newest)
    }

    /// Drops the announcement of `issued_at_ms` for `partner` once it has applied it.
    pub fn announcement_sent(&self, partner: &str, issued_at_ms: i64) -> Result<()> {
        self.tree(OUTGOING)?
            .remove(outgoing_key(partner, issued_at_ms))
            .map_err(sled_err("drop key announcement"))?;
        Ok(())
    }

    /// Writes everything to disk from a thread that may block.
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush().map_err(sled_err("flush"))?;
        Ok(())
    }
}
