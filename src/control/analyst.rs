//! The analysts' calls: search over the held items and the links between them.

use super::{NodeError, record_query, summary};
use crate::{
    pb,
    search::{Page, Search, SearchError},
    store::{self, Store},
};

/// Checks `request`, runs it through `search` (the node's index, or one built for a
/// stopped node), and records the query with its parameters and how many items it gave.
/// A refused request is recorded too, with the reason.
pub fn search_items(
    store: &Store,
    request: &pb::SearchItemsRequest,
    search: impl FnOnce(&Search) -> Result<Page, SearchError>,
) -> Result<pb::SearchItemsResponse, SearchError> {
    let described = described(request);
    let page = match Search::from_request(request).and_then(|s| search(&s)) {
        Ok(page) => page,
        Err(e) => {
            record_query(store, "search", &format!("{described}: refused: {e}"));
            return Err(e);
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
    record_query(
        store,
        "search",
        &format!("{described}: {} item(s)", items.len()),
    );
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
    );
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

/// The request as the audit log records it: each parameter set, by name. Names and text
/// are clipped and their control characters replaced.
fn described(r: &pb::SearchItemsRequest) -> String {
    let mut parts = Vec::new();
    let mut text = |name: &str, value: &str| {
        if !value.trim().is_empty() {
            let clipped: String = value
                .trim()
                .chars()
                .take(80)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            parts.push(format!("{name}={clipped:?}"));
        }
    };
    text("subject", &r.subject);
    text("sender", &r.sender);
    text("subject_country", &r.subject_country);
    text("control_entry", &r.control_entry);
    text("hs_prefix", &r.hs_prefix);
    text("route_country", &r.route_country);
    text("text", &r.text);
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
    if parts.is_empty() {
        "all items".to_owned()
    } else {
        parts.join(" ")
    }
}
