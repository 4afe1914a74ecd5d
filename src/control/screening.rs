//! `Screen`: one name against every watchlist held, the same for the control socket and
//! for a stopped node whose store the command opened itself.

use crate::{
    pb,
    screen::{self, Hit, Query, RequestError},
    store,
};

use super::record_query;

/// Longest part of a screened name written to the audit log, in characters.
const AUDIT_NAME_CHARS: usize = 200;

/// Checks `request`, runs it through `search` over an index of `entries` entries, and
/// records the query and how many hits it gave in the audit log. A refused request is
/// recorded too, with the reason.
pub fn screen(
    store: &store::Store,
    request: &pb::ScreenRequest,
    entries: usize,
    search: impl FnOnce(&Query) -> Vec<Hit>,
) -> Result<pb::ScreenResponse, RequestError> {
    let query = match screen::query(request) {
        Ok(query) => query,
        Err(e) => {
            record_query(
                store,
                "screen",
                &format!("{}: refused: {e}", described(request)),
            );
            return Err(e);
        }
    };
    let hits = search(&query);
    let detail = format!("{}: {} hit(s)", described(request), hits.len());
    record_query(store, "screen", &detail);
    Ok(pb::ScreenResponse {
        hits: hits.into_iter().map(screen::hit_to_pb).collect(),
        entries: entries as u64,
    })
}

/// The request as the audit log records it: the name (clipped, control characters
/// replaced) and the filters and settings given other than the defaults.
fn described(request: &pb::ScreenRequest) -> String {
    let name: String = request
        .name
        .chars()
        .take(AUDIT_NAME_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = format!("{name:?}");
    let kind = pb::SubjectType::try_from(request.subject_type)
        .map_or("", |t| screen::subject_type_name(t));
    if !kind.is_empty() {
        out.push_str(&format!(" type={kind}"));
    }
    if !request.country.is_empty() {
        let country: String = request.country.chars().take(8).collect();
        out.push_str(&format!(" country={country:?}"));
    }
    if request.limit != 0 && request.limit as usize != screen::DEFAULT_LIMIT {
        out.push_str(&format!(" limit={}", request.limit));
    }
    if request.min_score != 0.0 && request.min_score != screen::DEFAULT_MIN_SCORE {
        out.push_str(&format!(" min-score={}", request.min_score));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_is_audited_refused_ones_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            store::Store::open(dir.path(), crate::identity::DataKey::generate().unwrap()).unwrap();
        let request = pb::ScreenRequest {
            name: "Ali\nReza".into(),
            subject_type: pb::SubjectType::Person as i32,
            country: "ir".into(),
            ..Default::default()
        };
        let response = screen(&store, &request, 0, |_| Vec::new()).unwrap();
        assert!(response.hits.is_empty());
        let bad = pb::ScreenRequest {
            name: " ".into(),
            ..Default::default()
        };
        assert_eq!(
            screen(&store, &bad, 0, |_| Vec::new()),
            Err(RequestError::EmptyName)
        );
        let details: Vec<String> = store
            .audit_entries()
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "query")
            .map(|e| e.detail)
            .collect();
        assert_eq!(
            details,
            [
                "screen \"Ali Reza\" type=person country=\"ir\": 0 hit(s)".to_owned(),
                format!("screen \" \": refused: {}", RequestError::EmptyName),
            ]
        );
    }
}
