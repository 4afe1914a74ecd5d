//! The analysts' calls: search over the held items and the links between them.

use super::{NodeError, clipped, outcome, record_query, record_query_with_terms, summary};
use crate::{
    pb,
    search::{Page, Search, SearchError},
    store::{self, Store},
};

/// Checks `request`, runs it through `search` (the node's index, or one built for a
/// stopped node), and records the query with its parameters and how many items it gave;
/// the subject name and free text searched are kept sealed with the entry. A refused
/// request is recorded too, with the reason. A query that cannot be recorded is not
/// answered.
pub fn search_items(
    store: &Store,
    request: &pb::SearchItemsRequest,
    search: impl FnOnce(&Search) -> Result<Page, SearchError>,
) -> Result<pb::SearchItemsResponse, NodeError> {
    let (settings, terms) = described(request);
    let page = match Search::from_request(request).and_then(|s| search(&s)) {
        Ok(page) => page,
        Err(e) => {
            let detail = outcome(&settings, format!("refused: {e}"));
            record_query_with_terms(store, "search", &detail, &terms)?;
            return Err(NodeError::Invalid(e.to_string()));
        }
    };
    let mut items = Vec::with_capacity(page.keys.len());
    for key in &page.keys {
        // An item is never removed once indexed; one that cannot be read is skipped and
        // the failure logged, so that one bad record does not hide the rest of a page.
        match store.item_at(key) {
            Ok(Some(item)) => match summary(store, &item) {
                Ok(s) => items.push(s),
                Err(e) => tracing::error!(error = %e, "cannot summarise a found item"),
            },
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read a found item"),
        }
    }
    let detail = outcome(&settings, format!("{} item(s)", items.len()));
    record_query_with_terms(store, "search", &detail, &terms)?;
    Ok(pb::SearchItemsResponse {
        items,
        next_cursor: page.next_cursor.unwrap_or_default(),
    })
}

/// The links asked for, newest first, recorded as a query.
pub fn correlations(
    store: &Store,
    request: &pb::ListCorrelationsRequest,
) -> Result<pb::ListCorrelationsResponse, NodeError> {
    let correlations = if request.item_id.is_empty() {
        store.correlations(request.include_closed)?
    } else {
        let id = ulid::Ulid::from_string(request.item_id.trim())
            .map_err(|_| NodeError::NoSuchItem(request.item_id.clone()))?
            .to_bytes();
        let mut found = store.item_correlations(&id)?;
        found.retain(|c| request.include_closed || c.open);
        found
    };
    let scope = if request.include_closed {
        "all"
    } else {
        "open"
    };
    let item = if request.item_id.is_empty() {
        String::new()
    } else {
        format!(" item={}", request.item_id)
    };
    record_query(
        store,
        "correlations",
        &format!("{scope}{item}: {} link(s)", correlations.len()),
    )?;
    Ok(pb::ListCorrelationsResponse { correlations })
}

/// Closes a link on behalf of the current caller.
pub fn close_correlation(
    store: &Store,
    request: &pb::CloseCorrelationRequest,
) -> Result<pb::Correlation, NodeError> {
    let id = ulid::Ulid::from_string(request.id.trim())
        .map_err(|_| NodeError::Store(store::StoreError::NoSuchCorrelation))?
        .to_bytes();
    let by = super::current_caller().audit_name;
    Ok(store.close_correlation(&id, &by, request.note.trim())?)
}

/// The request as the audit log records it: each parameter set, by name, in clear, and
/// the subject name and free text, to keep sealed. Values are clipped and their control
/// characters replaced.
fn described(r: &pb::SearchItemsRequest) -> (String, String) {
    let named = |name: &str, value: &str| {
        (!value.trim().is_empty()).then(|| format!("{name}={:?}", clipped(value, 80)))
    };
    let terms: Vec<String> = [named("subject", &r.subject), named("text", &r.text)]
        .into_iter()
        .flatten()
        .collect();
    let mut parts = Vec::new();
    let mut text = |name: &str, value: &str| parts.extend(named(name, value));
    text("sender", &r.sender);
    text("subject_country", &r.subject_country);
    text("control_entry", &r.control_entry);
    text("hs_prefix", &r.hs_prefix);
    text("route_country", &r.route_country);
    text("cursor", &r.cursor);
    if r.min_score != 0.0 {
        parts.push(format!("min_score={}", r.min_score));
    }
    if r.kind != 0 {
        parts.push(format!("kind={}", r.kind));
    }
    if r.tlp != 0 {
        parts.push(format!("tlp={}", r.tlp));
    }
    if r.received_after_ms != 0 {
        parts.push(format!("received_after_ms={}", r.received_after_ms));
    }
    if r.received_before_ms != 0 {
        parts.push(format!("received_before_ms={}", r.received_before_ms));
    }
    if r.limit != 0 {
        parts.push(format!("limit={}", r.limit));
    }
    let settings = match (parts.is_empty(), terms.is_empty()) {
        (true, true) => "all items".to_owned(),
        _ => parts.join(" "),
    };
    (settings, terms.join(" "))
}
