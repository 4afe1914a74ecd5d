//! What a node works out from the items it holds: the search index and the links between
//! items whose subjects match.
//!
//! When an item is stored (submitted here or received), each of its subjects is looked up
//! among the subjects of the items already held. A match at or above the node's
//! `[screening] threshold` on an item from another agency links the two items; so does a
//! watchlist hit of the screening that ran just before. Then the item joins the index.
//! Links are kept in the store (see `store::correlations`); the index is rebuilt from the
//! store at start-up.

use std::collections::BTreeMap;

use tracing::{error, info};

use super::Shared;
use crate::{
    pb, screen,
    search::{Page, Search, SearchError, SearchIndex},
    store::{self, Store, StoreError, StoredItem},
};

/// Builds the search index over every item in `store`.
pub fn open_search(store: &Store) -> Result<SearchIndex, StoreError> {
    let mut index = SearchIndex::new();
    store.each_item(|key, item| {
        if let Some(report) = item.report() {
            index.insert(key, &item.sender, item.stored_at_ms, report);
        }
    })?;
    Ok(index)
}

/// Items read from the store between two takes of the index's write lock while the index
/// is built.
const BUILD_CHUNK: usize = 1_000;

impl Shared {
    /// One page of the items that match `search`.
    pub fn search_items(&self, search: &Search) -> Result<Page, SearchError> {
        let index = match self.search.read() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        index.search(search)
    }

    /// Waits up to `patience` for the search index to cover every item stored before the
    /// node started; false if it does not by then.
    pub async fn search_ready(&self, patience: std::time::Duration) -> bool {
        let mut ready = self.search_ready.subscribe();
        tokio::time::timeout(patience, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Number of items in the search index.
    pub fn search_len(&self) -> usize {
        match self.search.read() {
            Ok(index) => index.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// The search index, for writing. A poisoned lock is taken over: the index's methods
    /// do not panic, so a panic elsewhere while it was held left it whole.
    pub(super) fn search_mut(&self) -> std::sync::RwLockWriteGuard<'_, SearchIndex> {
        match self.search.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds every stored item to the search index, a chunk at a time (items are read and
    /// decrypted outside the lock), then marks the index ready. Items stored meanwhile
    /// are indexed as they arrive; an item met twice is indexed once. Runs on a blocking
    /// thread at start-up.
    pub(super) fn build_search_index(&self) {
        let started = std::time::Instant::now();
        let mut chunk: Vec<(Vec<u8>, StoredItem)> = Vec::with_capacity(BUILD_CHUNK);
        let add = |chunk: &mut Vec<(Vec<u8>, StoredItem)>| {
            let mut index = self.search_mut();
            for (key, item) in chunk.drain(..) {
                if let Some(report) = item.report() {
                    index.insert(&key, &item.sender, item.stored_at_ms, report);
                }
            }
        };
        let walked = self.store.each_item(|key, item| {
            chunk.push((key.to_vec(), item));
            if chunk.len() == BUILD_CHUNK {
                add(&mut chunk);
            }
        });
        add(&mut chunk);
        match walked {
            Ok(()) => info!(
                items = self.search_len(),
                secs = started.elapsed().as_secs_f64(),
                "search index built"
            ),
            Err(e) => {
                error!(error = %e, "cannot read every item for the search index; searches miss the rest")
            }
        }
        self.search_ready.send_replace(true);
    }

    /// Links a just-stored item to the held items of other agencies whose subjects match
    /// its own, and to the watchlist entries in `hits`; then adds it to the search index.
    /// A failure to keep a link is logged; the item stays stored.
    pub(super) fn analyse_stored(
        &self,
        sender: &str,
        item: &StoredItem,
        hits: &[pb::ScreeningHit],
    ) {
        let Some(report) = item.report() else {
            return;
        };
        let id = store::id16(&item.item_id);
        let key = store::item_key(&id, sender);
        let threshold = self.screening_threshold();
        let mut links: BTreeMap<(Vec<u8>, String), Vec<pb::CorrelationEvidence>> = BTreeMap::new();
        let mut index = self.search_mut();
        for subject in &report.subjects {
            let subject_type = match pb::SubjectType::try_from(subject.r#type) {
                Ok(pb::SubjectType::Unspecified) | Err(_) => None,
                Ok(t) => Some(t),
            };
            for name in std::iter::once(&subject.name).chain(&subject.aliases) {
                let query = screen::Query {
                    name: name.clone(),
                    subject_type,
                    country: None,
                    limit: screen::MAX_REPORT_HITS,
                    min_score: threshold,
                };
                for m in index.subjects(&query, sender) {
                    let evidence = links.entry((m.key, m.sender)).or_default();
                    if !evidence
                        .iter()
                        .any(|e| e.subject == subject.name && e.matched == m.hit.matched_name)
                    {
                        evidence.push(pb::CorrelationEvidence {
                            subject: subject.name.clone(),
                            matched: m.hit.matched_name,
                            score: m.hit.score,
                            why: m.hit.why,
                        });
                    }
                }
            }
        }
        index.insert(&key, sender, item.stored_at_ms, report);
        drop(index);
        let item_text = store::ulid_text(&id);
        let now = crate::now_ms();
        let mut made = Vec::new();
        for ((other, other_sender), evidence) in links {
            made.push(pb::Correlation {
                item_id: item_text.clone(),
                sender: sender.to_owned(),
                other_item_id: store::ulid_text(&store::id16(&other)),
                other_sender,
                evidence,
                created_at_ms: now,
                open: true,
                ..Default::default()
            });
        }
        let mut by_entry: BTreeMap<(&str, &str), Vec<pb::CorrelationEvidence>> = BTreeMap::new();
        for hit in hits {
            by_entry
                .entry((&hit.list, &hit.entry_id))
                .or_default()
                .push(pb::CorrelationEvidence {
                    subject: hit.subject.clone(),
                    matched: hit.matched_name.clone(),
                    score: hit.score,
                    why: hit.why.clone(),
                });
        }
        for ((list, entry), evidence) in by_entry {
            made.push(pb::Correlation {
                item_id: item_text.clone(),
                sender: sender.to_owned(),
                list: list.to_owned(),
                entry_id: entry.to_owned(),
                evidence,
                created_at_ms: now,
                open: true,
                ..Default::default()
            });
        }
        for mut link in made {
            let link_id = self.next_item_id();
            link.id = store::ulid_text(&link_id);
            if let Err(e) = self.store.put_correlation(&link_id, &link) {
                error!(item_id = %item_text, error = %e, "cannot keep a correlation");
                continue;
            }
            metrics::counter!(crate::metrics::CORRELATIONS).increment(1);
            info!(
                item_id = %item_text,
                sender,
                link = %link.id,
                with_item = %link.other_item_id,
                with_list = %link.list,
                "linked items by subject"
            );
        }
    }
}
