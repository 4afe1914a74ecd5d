//! Watchlist views for the control service and for the CLI on a stopped node: the lists
//! held with their sync state per partner, one list in detail, and import results.

use crate::{
    config::Config,
    node::{ListError, NodeError, Published},
    pb,
    policy::{ListDecision, PolicySet},
    store::{ListMeta, Store, StoreError},
};

/// Default and largest number of entries `ShowWatchlist` lists.
const ENTRIES_DEFAULT: usize = 20;
const ENTRIES_MAX: usize = 10_000;
/// Versions `ShowWatchlist` lists, newest first.
const VERSIONS_SHOWN: usize = 20;

/// Every list held, with its sync state; the same for the socket and for a stopped node.
pub fn list_watchlists(
    store: &Store,
    config: &Config,
    policy: &PolicySet,
) -> Result<Vec<pb::WatchlistSummary>, StoreError> {
    store
        .lists()?
        .into_iter()
        .map(|(list, meta)| summary(store, config, policy, &list, &meta))
        .collect()
}

/// One list in detail: its summary, its recent versions (owner), and one entry or the
/// first `limit` entries by id.
pub fn show_watchlist(
    store: &Store,
    config: &Config,
    policy: &PolicySet,
    request: &pb::ShowWatchlistRequest,
) -> Result<pb::ShowWatchlistResponse, NodeError> {
    let list = request.list.as_str();
    let no_list = || NodeError::List(ListError::NoSuchList(list.to_owned()));
    let meta = store.list_meta(list)?.ok_or_else(no_list)?;
    let summary = summary(store, config, policy, list, &meta)?;
    let versions = store
        .list_deltas(list, 0)?
        .iter()
        .rev()
        .take(VERSIONS_SHOWN)
        .map(|d| pb::WatchlistVersion {
            version: d.to_version,
            published_at_ms: d.published_at_ms,
            upserts: if d.from_version == 0 {
                d.entry_count
            } else {
                d.upserts.len() as u64
            },
            removals: d.removals.len() as u64,
            entry_count: d.entry_count,
            snapshot: d.from_version == 0,
        })
        .collect();
    let entries = if request.entry_id.is_empty() {
        let limit = match request.limit as usize {
            0 => ENTRIES_DEFAULT,
            n => n.min(ENTRIES_MAX),
        };
        store.list_entries_from(list, "", limit)?
    } else {
        let entry = store.list_entry(list, &request.entry_id)?;
        vec![entry.ok_or_else(|| {
            NodeError::NoSuchItem(format!("entry {} of watchlist {list}", request.entry_id))
        })?]
    };
    Ok(pb::ShowWatchlistResponse {
        summary: Some(summary),
        versions,
        entries,
    })
}

/// The answer to an import.
pub fn import_response(p: &Published) -> pb::ImportWatchlistResponse {
    pb::ImportWatchlistResponse {
        list: p.list.clone(),
        version: p.version,
        published: p.published,
        upserts: p.upserts as u64,
        removals: p.removals as u64,
        entry_count: p.entry_count,
        digest: p.digest.hex(),
        decisions: p.decisions.clone(),
    }
}

fn summary(
    store: &Store,
    config: &Config,
    policy: &PolicySet,
    list: &str,
    meta: &ListMeta,
) -> Result<pb::WatchlistSummary, StoreError> {
    let own = meta.owner == config.agency;
    let sync = if own {
        own_sync(store, config, policy, list, meta)?
    } else {
        let state = if meta.state.is_empty() {
            "in-sync"
        } else {
            meta.state.as_str()
        };
        vec![pb::WatchlistSync {
            partner: meta.owner.clone(),
            version: meta.version,
            state: state.to_owned(),
            detail: meta.detail.clone(),
        }]
    };
    Ok(pb::WatchlistSummary {
        list: list.to_owned(),
        owner: meta.owner.clone(),
        version: meta.version,
        entry_count: meta.entry_count,
        digest: meta.digest().hex(),
        updated_at_ms: meta.updated_at_ms,
        own,
        sync,
    })
}

/// Per registered partner: what it was sent of an own list and what it confirmed.
fn own_sync(
    store: &Store,
    config: &Config,
    policy: &PolicySet,
    list: &str,
    meta: &ListMeta,
) -> Result<Vec<pb::WatchlistSync>, StoreError> {
    let rows = store.list_sync(list)?;
    let mut out = Vec::new();
    for partner in &config.partners {
        let row = rows.iter().find(|r| r.partner == partner.agency);
        let decision = policy.decide_list(&config.agency, &partner.agency, list);
        let (version, state, detail) = match (row, decision) {
            (_, ListDecision::Deny { reason, .. }) => (
                row.map_or(0, |r| r.confirmed),
                "withheld",
                format!("the policy sends it nothing: {reason}"),
            ),
            (None, ListDecision::Share { .. }) => (
                0,
                "behind",
                "nothing sent yet: the next version published goes to it, and it pulls the rest"
                    .to_owned(),
            ),
            (Some(r), ListDecision::Share { .. }) if r.last_state == "refused" => (
                r.confirmed,
                "refused",
                format!("v{} refused: {}", r.queued, r.detail),
            ),
            (Some(r), ListDecision::Share { .. }) if r.confirmed >= meta.version => {
                (r.confirmed, "in-sync", String::new())
            }
            (Some(r), ListDecision::Share { .. }) => (
                r.confirmed,
                "behind",
                format!("v{} confirmed, up to v{} queued", r.confirmed, r.queued),
            ),
        };
        out.push(pb::WatchlistSync {
            partner: partner.agency.clone(),
            version,
            state: state.to_owned(),
            detail,
        });
    }
    Ok(out)
}
