//! Screening on a node: the index built at start-up from the watchlists held, analysts'
//! queries, and the screening of reports as they are stored.
//!
//! The index lives in memory ([`crate::screen::ScreeningIndex`]); the lists' entries in
//! the store are its source. The watchlist paths keep it current through
//! [`Shared::index_changes`] and [`Shared::index_drop_list`]; this module builds it once
//! when the node opens, and screens every report stored afterwards: the subjects' names
//! and aliases, with hits at or above `[screening] threshold` kept with the item.

use std::time::{Duration, Instant};

use tracing::{error, info};

use super::{Shared, off_the_reactor};
use crate::{
    pb,
    screen::{self, ScreeningIndex},
    store::{self, Incoming, Received, Store, StoreError, StoredItem},
};

/// What building the index at start-up read.
#[derive(Debug, Clone, Copy)]
pub struct IndexBuilt {
    /// Entries indexed, over all lists.
    pub entries: usize,
    /// Names indexed (primary names and distinct aliases).
    pub names: usize,
    /// How long it took.
    pub took: Duration,
}

/// Builds the screening index from the store when the node opens, and logs its size and
/// how long it took.
pub(super) fn open_index(store: &Store) -> Result<ScreeningIndex, StoreError> {
    let (index, built) = build_index(store)?;
    info!(
        entries = built.entries,
        names = built.names,
        ms = built.took.as_millis() as u64,
        "screening index built"
    );
    Ok(index)
}

/// Builds the screening index from every watchlist entry in `store`.
pub fn build_index(store: &Store) -> Result<(ScreeningIndex, IndexBuilt), StoreError> {
    let started = Instant::now();
    let mut index = ScreeningIndex::new();
    for entry in store.watchlist_entries() {
        let (list, entry) = entry?;
        index.upsert(&list, &entry);
    }
    let built = IndexBuilt {
        entries: index.len(),
        names: index.name_count(),
        took: started.elapsed(),
    };
    Ok((index, built))
}

impl Shared {
    /// The lowest score of a hit kept with a stored report.
    pub fn screening_threshold(&self) -> f64 {
        self.config.screening.threshold
    }

    /// Screens the reports among `items` that the store has just stored from `sender`
    /// (outcome [`Received::Stored`]) and keeps their hits, to be flushed with them.
    /// Then links them to the items and entries their subjects match and indexes them
    /// for search.
    pub(crate) fn screen_received(&self, sender: &str, items: &[Incoming], outcomes: &[Received]) {
        off_the_reactor(|| {
            for (incoming, outcome) in items.iter().zip(outcomes) {
                if *outcome == Received::Stored {
                    let hits = self.screen_stored(sender, &incoming.item);
                    self.analyse_stored(sender, &incoming.item, &hits);
                }
            }
        });
    }

    /// Screens the subjects of a stored report against every list held and keeps the
    /// hits at or above the threshold with the item, and returns them. A failure to keep
    /// them is logged; the item stays stored.
    pub(super) fn screen_stored(&self, sender: &str, item: &StoredItem) -> Vec<pb::ScreeningHit> {
        let Some(report) = item.report() else {
            return Vec::new();
        };
        if self.screening_entries() == 0 {
            return Vec::new();
        }
        let threshold = self.screening_threshold();
        let hits = {
            let index = match self.screening.read() {
                Ok(index) => index,
                Err(poisoned) => poisoned.into_inner(),
            };
            screen::screen_report(&index, report, threshold)
        };
        if hits.is_empty() {
            return hits;
        }
        let id = store::id16(&item.item_id);
        let item_id = store::ulid_text(&id);
        let mut lists: Vec<&str> = hits.iter().map(|h| h.list.as_str()).collect();
        lists.sort_unstable();
        lists.dedup();
        info!(
            sender,
            item_id = %item_id,
            hits = hits.len(),
            best = hits[0].score,
            lists = %lists.join(","),
            "report subjects matched watchlist entries"
        );
        let screening = pb::ReportScreening {
            hits,
            threshold,
            screened_at_ms: crate::now_ms(),
        };
        if let Err(e) = self.store.put_screening(&id, sender, &screening) {
            error!(item_id = %item_id, error = %e, "cannot keep the screening hits of a report");
        }
        screening.hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, name: &str, aliases: &[&str]) -> pb::WatchlistEntry {
        pb::WatchlistEntry {
            id: id.into(),
            r#type: pb::SubjectType::Person as i32,
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    async fn shared(dir: &std::path::Path) -> Shared {
        crate::tls::install_crypto_provider();
        let members = crate::testbed::federation(dir, &["US-BIS", "DE-BAFA"], &[])
            .await
            .unwrap();
        let config = members.into_iter().next().unwrap().config;
        Shared::open(config).unwrap()
    }

    fn ids(hits: &[screen::Hit]) -> Vec<(&str, &str)> {
        hits.iter()
            .map(|h| (h.list.as_str(), h.entry_id.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn the_index_follows_changes_and_dropped_lists() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path()).await;
        let query = screen::Query::new("Ali Reza Karimi");
        assert!(shared.screen(&query).is_empty());
        shared.index_changes(
            "US-TREAS/sdn",
            &[
                entry("7", "KARIMI, Ali Reza", &[]),
                entry("8", "John Smith", &[]),
            ],
            &[],
        );
        shared.index_changes("DE-BAFA/el", &[entry("a1", "Ali Reza Karimi", &[])], &[]);
        assert_eq!(shared.screening_entries(), 3);
        let hits = shared.screen(&query);
        assert_eq!(ids(&hits), [("DE-BAFA/el", "a1"), ("US-TREAS/sdn", "7")]);
        // A changed entry replaces the old one; a removal takes it out.
        shared.index_changes(
            "US-TREAS/sdn",
            &[entry("7", "Someone Else", &["Ali Reza KARIMI"])],
            &["8".to_owned()],
        );
        assert_eq!(shared.screening_entries(), 2);
        let hits = shared.screen(&query);
        assert_eq!(hits[1].matched_name, "Ali Reza KARIMI");
        assert!(
            hits[1].why.iter().any(|w| w == "alias"),
            "{:?}",
            hits[1].why
        );
        shared.index_drop_list("DE-BAFA/el");
        assert_eq!(ids(&shared.screen(&query)), [("US-TREAS/sdn", "7")]);
        shared.index_drop_list("NO-SUCH/list");
        assert_eq!(shared.screening_entries(), 1);
    }

    fn stored(subjects: &[&str]) -> StoredItem {
        let mut report = crate::bench::sample_report();
        report.subjects = subjects
            .iter()
            .map(|name| pb::Subject {
                r#type: pb::SubjectType::Person as i32,
                name: name.to_string(),
                ..Default::default()
            })
            .collect();
        StoredItem {
            origin: "DE-BAFA".into(),
            sender: "DE-BAFA".into(),
            item_id: vec![9; 16],
            kind: report.kind,
            item: Some(pb::Item {
                body: Some(pb::item::Body::Report(report)),
                originator: String::new(),
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn stored_reports_keep_the_hits_at_or_above_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path()).await;
        assert_eq!(shared.screening_threshold(), 0.9);
        shared.index_changes("US-TREAS/sdn", &[entry("7", "KARIMI, Ali Reza", &[])], &[]);
        let id = [9u8; 16];
        // Nothing close enough: nothing is kept.
        shared.screen_stored("DE-BAFA", &stored(&["Hans Schmidt", "Ali Karim"]));
        assert_eq!(shared.store.screening(&id, "DE-BAFA").unwrap(), None);
        shared.screen_stored("DE-BAFA", &stored(&["Hans Schmidt", "Ali-Reza Karimi"]));
        let kept = shared.store.screening(&id, "DE-BAFA").unwrap().unwrap();
        assert_eq!(kept.threshold, 0.9);
        assert_eq!(kept.hits.len(), 1);
        let hit = &kept.hits[0];
        assert_eq!(
            (
                hit.subject.as_str(),
                hit.list.as_str(),
                hit.entry_id.as_str()
            ),
            ("Ali-Reza Karimi", "US-TREAS/sdn", "7")
        );
        assert!(hit.score >= 0.9 && hit.score < 1.0, "{}", hit.score);
    }
}
