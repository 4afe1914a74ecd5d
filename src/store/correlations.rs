//! Links between items whose subjects match, kept beside the items.
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `correlations` | link id (16, ULID) | encoded `pb::Correlation`, sealed with the data key (it holds subjects' names) |
//! | `correlation_items` | item id (16) ‖ sender ‖ 0x00 ‖ link id (16) | empty: the links of an item |
//!
//! A link is written when the newer of its items is stored and changes only when someone
//! closes it.

use prost::Message as _;

use super::{Result, Store, StoreError, item_key, sled_err};
use crate::{audit, pb};

const CORRELATIONS: &str = "correlations";
const CORRELATION_ITEMS: &str = "correlation_items";

impl Store {
    pub(super) fn correlation_trees(&self) -> Result<(sled::Tree, sled::Tree)> {
        let open = |name| {
            self.db
                .open_tree(name)
                .map_err(sled_err("open correlations"))
        };
        Ok((open(CORRELATIONS)?, open(CORRELATION_ITEMS)?))
    }

    /// Keeps a new link `c` under `id`, indexed under the items it names, with its audit
    /// entry. Not flushed: the caller's next [`Store::flush`] makes it durable.
    pub fn put_correlation(&self, id: &[u8; 16], c: &pb::Correlation) -> Result<()> {
        let (links, by_item) = self.correlation_trees()?;
        links
            .insert(id, self.seal_value(CORRELATIONS, id, &c.encode_to_vec())?)
            .map_err(sled_err("store correlation"))?;
        for (item, sender) in [(&c.item_id, &c.sender), (&c.other_item_id, &c.other_sender)] {
            let Ok(item) = ulid::Ulid::from_string(item) else {
                continue;
            };
            let mut key = item_key(&item.to_bytes(), sender);
            key.push(0);
            key.extend_from_slice(id);
            by_item
                .insert(key, &[][..])
                .map_err(sled_err("store correlation"))?;
        }
        let with = if c.list.is_empty() {
            format!("item {} from {}", c.other_item_id, c.other_sender)
        } else {
            format!("watchlist {} entry {}", c.list, c.entry_id)
        };
        self.record(&[audit::Event::new(
            audit::Action::Correlated,
            &c.sender,
            &c.item_id,
            format!("link {} to {with}", c.id),
        )])
    }

    /// Every link, newest first; the closed ones only when `include_closed`.
    pub fn correlations(&self, include_closed: bool) -> Result<Vec<pb::Correlation>> {
        let (links, _) = self.correlation_trees()?;
        let mut out = Vec::new();
        for entry in links.iter().rev() {
            let (key, value) = entry.map_err(sled_err("read correlations"))?;
            let c: pb::Correlation =
                self.open_value("read correlations", CORRELATIONS, &key, &value)?;
            if include_closed || c.open {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The links of the item with this id (from any sender), newest first.
    pub fn item_correlations(&self, item: &[u8; 16]) -> Result<Vec<pb::Correlation>> {
        let (links, by_item) = self.correlation_trees()?;
        let mut ids: Vec<Vec<u8>> = Vec::new();
        for entry in by_item.scan_prefix(item) {
            let (key, _) = entry.map_err(sled_err("read correlations"))?;
            if key.len() >= 16 {
                ids.push(key[key.len() - 16..].to_vec());
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            if let Some(value) = links.get(&id).map_err(sled_err("read correlations"))? {
                out.push(self.open_value("read correlations", CORRELATIONS, &id, &value)?);
            }
        }
        Ok(out)
    }

    /// Closes link `id` on behalf of `by`, with `note`, and records it. Closing a closed
    /// link changes nothing and says so.
    pub fn close_correlation(
        &self,
        id: &[u8; 16],
        by: &str,
        note: &str,
    ) -> Result<pb::Correlation> {
        let (links, _) = self.correlation_trees()?;
        let value = links
            .get(id)
            .map_err(sled_err("read correlations"))?
            .ok_or(StoreError::NoSuchCorrelation)?;
        let mut c: pb::Correlation =
            self.open_value("read correlations", CORRELATIONS, id, &value)?;
        if !c.open {
            return Err(StoreError::CorrelationClosed);
        }
        c.open = false;
        c.closed_by = by.to_owned();
        c.closed_at_ms = crate::now_ms();
        c.note = note.to_owned();
        links
            .insert(id, self.seal_value(CORRELATIONS, id, &c.encode_to_vec())?)
            .map_err(sled_err("close correlation"))?;
        self.record(&[audit::Event::new(
            audit::Action::Correlated,
            by,
            &c.item_id,
            format!("link {} closed", c.id),
        )])?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: u8, item: u8, other: u8) -> ([u8; 16], pb::Correlation) {
        let text = |n: u8| crate::store::ulid_text(&[n; 16]);
        (
            [id; 16],
            pb::Correlation {
                id: text(id),
                item_id: text(item),
                sender: "DE-BAFA".into(),
                other_item_id: text(other),
                other_sender: "US-BIS".into(),
                open: true,
                ..Default::default()
            },
        )
    }

    #[test]
    fn links_are_found_by_either_item_and_closed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::identity::DataKey::generate().unwrap()).unwrap();
        let (a, la) = link(1, 10, 11);
        let (b, lb) = link(2, 12, 11);
        store.put_correlation(&a, &la).unwrap();
        store.put_correlation(&b, &lb).unwrap();
        assert_eq!(
            store.item_correlations(&[11; 16]).unwrap(),
            [lb.clone(), la.clone()]
        );
        assert_eq!(
            store.item_correlations(&[10; 16]).unwrap(),
            std::slice::from_ref(&la)
        );
        let closed = store.close_correlation(&a, "user:alice", "known").unwrap();
        assert!(!closed.open);
        assert_eq!(closed.closed_by, "user:alice");
        assert_eq!(store.correlations(false).unwrap(), [lb]);
        assert_eq!(store.correlations(true).unwrap().len(), 2);
        assert!(matches!(
            store.close_correlation(&a, "user:alice", "again"),
            Err(StoreError::CorrelationClosed)
        ));
        assert!(matches!(
            store.close_correlation(&[9; 16], "user:alice", ""),
            Err(StoreError::NoSuchCorrelation)
        ));
    }
}
