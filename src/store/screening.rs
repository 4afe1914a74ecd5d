//! The screening hits of stored reports, kept beside the items under the same key.
//!
//! A report's hits are written when it is stored (in the same flush as the item when it
//! is received) and never change afterwards: they record what the lists held then. A
//! report whose subjects matched nothing has no record.

use prost::Message as _;

use super::{Result, Store, item_key, sled_err};

/// The tree of screening hits, whose values are sealed with the data key: they hold names
/// from reports.
const SCREENING: &str = "screening";
use crate::pb;

impl Store {
    /// Keeps the screening of the item (`id`, `sender`), replacing any earlier one. Not
    /// flushed: the caller's next [`Store::flush`] makes it durable.
    pub fn put_screening(
        &self,
        id: &[u8; 16],
        sender: &str,
        screening: &pb::ReportScreening,
    ) -> Result<()> {
        let key = item_key(id, sender);
        let value = self.seal_value(SCREENING, &key, &screening.encode_to_vec())?;
        self.screening
            .insert(key, value)
            .map_err(sled_err("store screening"))?;
        Ok(())
    }

    /// The screening of the item (`id`, `sender`), if its subjects matched anything.
    pub fn screening(&self, id: &[u8; 16], sender: &str) -> Result<Option<pb::ReportScreening>> {
        let key = item_key(id, sender);
        self.screening
            .get(&key)
            .map_err(sled_err("read screening"))?
            .map(|v| self.open_value("read screening", SCREENING, &key, &v))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screenings_are_kept_per_item_and_sender() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::identity::DataKey::generate().unwrap()).unwrap();
        let id = [7u8; 16];
        assert_eq!(store.screening(&id, "DE-BAFA").unwrap(), None);
        let screening = pb::ReportScreening {
            hits: vec![pb::ScreeningHit {
                score: 0.97,
                list: "US-TREAS/sdn".into(),
                entry_id: "36".into(),
                ..Default::default()
            }],
            threshold: 0.9,
            screened_at_ms: 1,
        };
        store.put_screening(&id, "DE-BAFA", &screening).unwrap();
        assert_eq!(store.screening(&id, "DE-BAFA").unwrap(), Some(screening));
        assert_eq!(store.screening(&id, "JP-METI").unwrap(), None);
    }
}
