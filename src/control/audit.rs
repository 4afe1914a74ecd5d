//! Audit log searches: the same answer over the control socket and for a stopped node.

use crate::{
    audit::{self, Filter},
    pb,
    store::{Store, StoreError},
};

use super::record_query;

/// Entries returned when the request names no limit.
const SEARCH_DEFAULT: usize = 20;
/// The most entries one search returns.
const SEARCH_MAX: usize = 10_000;

/// The newest entries that match `request`, oldest first. The search is then recorded in
/// the log itself, as a query naming its conditions.
pub fn search_audit(
    store: &Store,
    request: &pb::SearchAuditRequest,
) -> Result<pb::SearchAuditResponse, StoreError> {
    let filter = filter(request);
    let limit = match request.limit as usize {
        0 => SEARCH_DEFAULT,
        n => n.min(SEARCH_MAX),
    };
    let mut entries = Vec::new();
    let mut total = 0;
    for entry in store.audit_newest() {
        let entry = entry?;
        total = total.max(entry.seq);
        if entries.len() == limit {
            break;
        }
        if filter.matches(&entry) {
            entries.push(entry_message(store, entry));
        }
    }
    entries.reverse();
    record_query(store, "audit", &conditions(request, limit))?;
    Ok(pb::SearchAuditResponse { entries, total })
}

fn filter(request: &pb::SearchAuditRequest) -> Filter {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let time = |ms: i64| (ms != 0).then_some(ms);
    Filter {
        action: text(&request.action),
        peer: text(&request.peer),
        item_id: text(&request.item_id),
        since_ms: time(request.since_ms),
        until_ms: time(request.until_ms),
    }
}

/// The conditions of a search, for its own audit entry.
fn conditions(request: &pb::SearchAuditRequest, limit: usize) -> String {
    let mut out = Vec::new();
    for (name, value) in [
        ("action", &request.action),
        ("peer", &request.peer),
        ("item", &request.item_id),
    ] {
        if !value.is_empty() {
            out.push(format!("{name}={value}"));
        }
    }
    for (name, ms) in [("since", request.since_ms), ("until", request.until_ms)] {
        if ms != 0 {
            out.push(format!("{name}={}", crate::view::time_rfc3339(ms)));
        }
    }
    out.push(format!("limit {limit}"));
    out.join(" ")
}

/// An entry as operators read it: a query's sealed terms, opened with the node's data key,
/// follow its detail in brackets.
fn entry_message(store: &Store, entry: audit::Entry) -> pb::AuditEntry {
    let detail = match store.audit_terms(&entry) {
        Some(terms) => format!("{} [{terms}]", entry.detail),
        None if !entry.sealed.is_empty() => {
            format!("{} [terms sealed with another data key]", entry.detail)
        }
        None => entry.detail,
    };
    pb::AuditEntry {
        seq: entry.seq,
        at_ms: entry.at_ms,
        action: entry.action,
        peer: entry.peer,
        item_id: entry.item_id,
        detail,
    }
}
