//! Watchlists on a node: publishing a list this agency owns, sealing its deltas for the
//! partners its policy allows, and the queue of pulls the sync task works through.
//!
//! Publishing is the one path by which a list's new version enters the node: diff the
//! imported entries against the version held, store the delta as the next version, and
//! seal it for every partner whose policy allows the list, split into parts that fit a
//! message, all in one store transaction. Receiving and pulling are in
//! `crate::exchange::sync`.

use std::{collections::BTreeMap, sync::Mutex};

use prost::Message as _;
use tokio::sync::mpsc;
use tracing::info;

use super::{NodeError, Shared, off_the_reactor};
use crate::{
    audit::{Action, Event},
    config::PartnerConfig,
    envelope, pb,
    policy::ListDecision,
    store::{ApplyOutcome, ListPublish, Sealed, Withheld},
    watchlist::{self, Digest, WatchlistError},
};

/// Longest entry id accepted, in bytes.
const MAX_ENTRY_ID: usize = 256;
/// How many times an import is tried again when another import of the same list got in
/// first.
const PUBLISH_ATTEMPTS: usize = 3;

/// Why a list could not be published.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The list's name is invalid.
    #[error(transparent)]
    Name(#[from] WatchlistError),
    /// The list belongs to another agency: only its owner publishes it.
    #[error(
        "watchlist {list} is owned by {owner}; this node is {agency} and publishes only its \
         own lists (AGENCY/list with AGENCY = {agency})"
    )]
    NotOwner {
        /// The list.
        list: String,
        /// Its owner.
        owner: String,
        /// This node's agency.
        agency: String,
    },
    /// An entry cannot be stored as given.
    #[error("entry {index}: {reason}")]
    BadEntry {
        /// Its 1-based position.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Other imports of the same list kept getting in first.
    #[error("watchlist {0} changed during the import several times; try again")]
    Busy(String),
    /// No list of this name is held.
    #[error("no watchlist {0} is held by this node")]
    NoSuchList(String),
}

/// What an import published.
#[derive(Debug, Clone)]
pub struct Published {
    /// The list.
    pub list: String,
    /// Its version now.
    pub version: u64,
    /// True when a new version was published.
    pub published: bool,
    /// Entries added or changed.
    pub upserts: usize,
    /// Entries removed.
    pub removals: usize,
    /// Entries now.
    pub entry_count: u64,
    /// Digest now.
    pub digest: Digest,
    /// The sharing decision per partner, for a new version.
    pub decisions: Vec<pb::DeliveryStatus>,
}

/// The lists whose missing versions should be pulled from their owners: the receive path
/// adds to it, the node's sync task works through it.
pub(crate) struct PullQueue {
    wanted: mpsc::UnboundedSender<String>,
    queue: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl PullQueue {
    pub(crate) fn new() -> Self {
        let (wanted, queue) = mpsc::unbounded_channel();
        Self {
            wanted,
            queue: Mutex::new(Some(queue)),
        }
    }
}

impl Shared {
    /// Publishes `entries` as the next version of `list`, which this node's agency must
    /// own. Nothing is published when they equal the entries held. Otherwise the delta is
    /// stored as version + 1 (a snapshot for version 1) and sealed and queued for every
    /// partner whose policy allows the list, in one transaction; durable when it returns.
    /// `source` (file and format) goes to the audit log.
    pub async fn import_list(
        &self,
        list: &str,
        entries: Vec<pb::WatchlistEntry>,
        source: &str,
    ) -> Result<Published, NodeError> {
        watchlist::validate_list_name(list).map_err(ListError::from)?;
        let owner = watchlist::list_owner(list).unwrap_or_default();
        if owner != self.config.agency {
            return Err(ListError::NotOwner {
                list: list.to_owned(),
                owner: owner.to_owned(),
                agency: self.config.agency.clone(),
            }
            .into());
        }
        check_entries(&entries)?;
        for _ in 0..PUBLISH_ATTEMPTS {
            let Some((published, upserts, removals, snapshot)) =
                off_the_reactor(|| self.publish_once(list, &entries, source))?
            else {
                continue;
            };
            if published.published {
                self.store.flush().await?;
                if snapshot {
                    self.index_drop_list(list);
                }
                self.index_changes(list, &upserts, &removals);
                self.announce_list(&published);
            }
            return Ok(published);
        }
        Err(ListError::Busy(list.to_owned()).into())
    }

    /// One attempt at publishing: `None` when another import changed the list meanwhile.
    /// Returns what was published with its upserts, removals and whether it is a snapshot.
    #[allow(clippy::type_complexity)]
    fn publish_once(
        &self,
        list: &str,
        entries: &[pb::WatchlistEntry],
        source: &str,
    ) -> Result<Option<(Published, Vec<pb::WatchlistEntry>, Vec<String>, bool)>, NodeError> {
        let meta = self.store.list_meta(list)?.unwrap_or_default();
        let held = self.store.list_entries(list)?;
        let change = watchlist::diff(&held, entries);
        let mut digest = meta.digest();
        if change.is_empty() {
            return Ok(Some((
                Published {
                    list: list.to_owned(),
                    version: meta.version,
                    published: false,
                    upserts: 0,
                    removals: 0,
                    entry_count: meta.entry_count,
                    digest,
                    decisions: Vec::new(),
                },
                Vec::new(),
                Vec::new(),
                false,
            )));
        }
        let mut by_id: BTreeMap<String, pb::WatchlistEntry> =
            held.into_iter().map(|e| (e.id.clone(), e)).collect();
        change.apply(&mut by_id, &mut digest);
        let from = meta.version;
        let delta = pb::WatchlistDelta {
            list: list.to_owned(),
            from_version: from,
            to_version: from + 1,
            upserts: change.upserts.clone(),
            removals: if from == 0 {
                Vec::new()
            } else {
                change.removals.clone()
            },
            digest: digest.0.to_vec(),
            entry_count: by_id.len() as u64,
            part: 1,
            parts: 1,
            published_at_ms: crate::now_ms(),
        };
        let (sealed, withheld) = self.seal_for_partners(&delta)?;
        let detail = format!(
            "{list} v{} from {source}: {} added or changed, {} removed, {} entries, digest {}",
            delta.to_version,
            delta.upserts.len(),
            delta.removals.len(),
            delta.entry_count,
            digest.hex()
        );
        let events = vec![Event::new(Action::ListPublished, "local", "", detail)];
        let outcome = self.store.publish_list(ListPublish {
            list,
            delta: &delta,
            sealed: &sealed,
            withheld: &withheld,
            events,
        })?;
        if outcome != ApplyOutcome::Applied {
            return Ok(None);
        }
        let published = Published {
            list: list.to_owned(),
            version: delta.to_version,
            published: true,
            upserts: delta.upserts.len(),
            removals: delta.removals.len(),
            entry_count: delta.entry_count,
            digest,
            decisions: decisions(&sealed, &withheld),
        };
        Ok(Some((published, delta.upserts, delta.removals, from == 0)))
    }

    /// Runs the policy for every partner and seals the delta, in parts, for each one it
    /// allows.
    fn seal_for_partners(
        &self,
        delta: &pb::WatchlistDelta,
    ) -> Result<(Vec<Sealed>, Vec<Withheld>), NodeError> {
        let policy = self.policy();
        let (mut sealed, mut withheld) = (Vec::new(), Vec::new());
        for partner in &self.config.partners {
            match policy.decide_list(&self.config.agency, &partner.agency, &delta.list) {
                ListDecision::Share { rule } => {
                    for (_, envelope) in self.seal_list_delta(partner, delta)? {
                        sealed.push(Sealed {
                            partner: partner.agency.clone(),
                            digest: envelope::envelope_digest(&envelope),
                            envelope,
                            rule: rule.clone(),
                            redactions: Vec::new(),
                        });
                    }
                }
                ListDecision::Deny { rule, reason } => withheld.push(Withheld {
                    partner: partner.agency.clone(),
                    reason,
                    rule: rule.unwrap_or_default(),
                }),
            }
        }
        Ok((sealed, withheld))
    }

    /// Seals `delta` for `partner`, split into parts that fit the message limit, each
    /// under a new item id.
    pub(crate) fn seal_list_delta(
        &self,
        partner: &PartnerConfig,
        delta: &pb::WatchlistDelta,
    ) -> Result<Vec<([u8; 16], pb::Envelope)>, NodeError> {
        let now = crate::now_ms();
        let mut out = Vec::new();
        for part in watchlist::split(delta, self.max_item_bytes()) {
            let id = self.next_item_id();
            let payload = pb::Item {
                body: Some(pb::item::Body::WatchlistDelta(part)),
                originator: String::new(),
            }
            .encode_to_vec();
            let envelope = envelope::seal(
                &self.own_keys().identity,
                &partner.agency,
                &self.sealing_keys(partner),
                id,
                pb::ItemKind::WatchlistDelta,
                now,
                &payload,
            )
            .map_err(|source| NodeError::Seal {
                partner: partner.agency.clone(),
                source,
            })?;
            out.push((id, envelope));
        }
        Ok(out)
    }

    /// Logs the decisions of a published version and wakes the delivery tasks.
    fn announce_list(&self, published: &Published) {
        info!(list = %published.list, version = published.version, upserts = published.upserts, removals = published.removals, entries = published.entry_count, "watchlist published");
        for d in &published.decisions {
            if d.state == "queued" {
                info!(partner = %d.partner, list = %published.list, version = published.version, rule = %d.rule, "watchlist delta sealed and queued");
                metrics::counter!(crate::metrics::QUEUED, "partner" => d.partner.clone())
                    .increment(1);
                self.notifier(&d.partner).notify_one();
            } else {
                info!(partner = %d.partner, list = %published.list, version = published.version, rule = %d.rule, reason = %d.detail, "watchlist delta withheld by policy");
            }
        }
    }

    /// Asks the sync task to pull the versions of `list` this node misses from its owner.
    pub(crate) fn want_pull(&self, list: &str) {
        let _ = self.pulls.wanted.send(list.to_owned());
    }

    /// The pull queue, for the one sync task of a serving node.
    pub(crate) fn take_pull_queue(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.pulls
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// Checks that every entry can be stored: a non-empty id, not too long, given once.
fn check_entries(entries: &[pb::WatchlistEntry]) -> Result<(), ListError> {
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let id = entry.id.trim();
        let reason = if id.is_empty() {
            Some("empty id".to_owned())
        } else if id.len() > MAX_ENTRY_ID {
            Some(format!("id longer than {MAX_ENTRY_ID} bytes"))
        } else if !seen.insert(id) {
            Some(format!("id {id:?} given twice"))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ListError::BadEntry {
                index: i + 1,
                reason,
            });
        }
    }
    Ok(())
}

/// The decisions of a published version, one per partner.
fn decisions(sealed: &[Sealed], withheld: &[Withheld]) -> Vec<pb::DeliveryStatus> {
    let mut out: Vec<pb::DeliveryStatus> = Vec::new();
    for s in sealed {
        if !out.iter().any(|d| d.partner == s.partner) {
            out.push(pb::DeliveryStatus {
                partner: s.partner.clone(),
                state: "queued".into(),
                detail: String::new(),
                rule: s.rule.clone(),
                redactions: Vec::new(),
            });
        }
    }
    out.extend(withheld.iter().map(|w| pb::DeliveryStatus {
        partner: w.partner.clone(),
        state: "withheld".into(),
        detail: w.reason.clone(),
        rule: w.rule.clone(),
        redactions: Vec::new(),
    }));
    out
}

/// Checks a watchlist delta's fields that the receiver relies on before applying it.
pub(crate) fn check_delta(delta: &pb::WatchlistDelta) -> Result<(), String> {
    watchlist::validate_list_name(&delta.list).map_err(|e| e.to_string())?;
    if delta.to_version == 0 {
        return Err("to_version is 0".into());
    }
    if delta.from_version != 0 && delta.to_version != delta.from_version + 1 {
        return Err(format!(
            "a delta from version {} must go to {}, not {}",
            delta.from_version,
            delta.from_version + 1,
            delta.to_version
        ));
    }
    if delta.from_version == 0 && !delta.removals.is_empty() {
        return Err("a snapshot carries no removals".into());
    }
    if delta.digest.len() != 32 {
        return Err(format!("digest of {} bytes, not 32", delta.digest.len()));
    }
    if delta.parts == 0 || delta.part == 0 || delta.part > delta.parts {
        return Err(format!("part {} of {}", delta.part, delta.parts));
    }
    check_entries(&delta.upserts).map_err(|e| e.to_string())?;
    Ok(())
}
