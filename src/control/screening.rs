//! `Screen`: one name against every watchlist held, the same for the control socket and
//! for a stopped node whose store the command opened itself.

use crate::{
    node::NodeError,
    pb,
    screen::{self, Hit, Query},
    store,
};

use super::{clipped, outcome, record_query_with_terms};

/// Longest part of a screened name written to the audit log, in characters.
const AUDIT_NAME_CHARS: usize = 200;

/// Checks `request`, runs it through `search` over an index of `entries` entries, and
/// records the query and how many hits it gave in the audit log; the name screened is kept
/// sealed with the entry. A refused request is recorded too, with the reason. A query that
/// cannot be recorded is not answered.
pub fn screen(
    store: &store::Store,
    request: &pb::ScreenRequest,
    entries: usize,
    search: impl FnOnce(&Query) -> Vec<Hit>,
) -> Result<pb::ScreenResponse, NodeError> {
    let (settings, name) = described(request);
    let query = match screen::query(request) {
        Ok(query) => query,
        Err(e) => {
            let detail = outcome(&settings, format!("refused: {e}"));
            record_query_with_terms(store, "screen", &detail, &name)?;
            return Err(NodeError::Invalid(e.to_string()));
        }
    };
    let hits = search(&query);
    let detail = outcome(&settings, format!("{} hit(s)", hits.len()));
    record_query_with_terms(store, "screen", &detail, &name)?;
    Ok(pb::ScreenResponse {
        hits: hits.into_iter().map(screen::hit_to_pb).collect(),
        entries: entries as u64,
    })
}

/// The request as the audit log records it: the settings given other than the defaults,
/// in clear, and the name and country screened, to keep sealed (clipped, control
/// characters replaced).
fn described(request: &pb::ScreenRequest) -> (String, String) {
    let mut terms = format!("name={:?}", clipped(&request.name, AUDIT_NAME_CHARS));
    if !request.country.is_empty() {
        terms.push_str(&format!(" country={:?}", clipped(&request.country, 8)));
    }
    let mut settings = String::new();
    let kind = pb::SubjectType::try_from(request.subject_type)
        .map_or("", |t| screen::subject_type_name(t));
    if !kind.is_empty() {
        settings.push_str(&format!(" type={kind}"));
    }
    if request.limit != 0 && request.limit as usize != screen::DEFAULT_LIMIT {
        settings.push_str(&format!(" limit={}", request.limit));
    }
    if request.min_score != 0.0 && request.min_score != screen::DEFAULT_MIN_SCORE {
        settings.push_str(&format!(" min-score={}", request.min_score));
    }
    (settings, terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::RequestError;

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
        let err = screen(&store, &bad, 0, |_| Vec::new()).unwrap_err();
        assert!(matches!(err, NodeError::Invalid(_)), "{err}");
        assert!(
            err.to_string()
                .contains(&RequestError::EmptyName.to_string()),
            "{err}"
        );
        let queries: Vec<_> = store
            .audit_entries()
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "query")
            .collect();
        let details: Vec<&str> = queries.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "screen type=person: 0 hit(s)".to_owned(),
                format!("screen refused: {}", RequestError::EmptyName),
            ]
        );
        // The name and country are kept with the entry, sealed: not in the entry's clear
        // text, and readable with the store's data key.
        let terms: Vec<_> = queries.iter().map(|e| store.audit_terms(e)).collect();
        assert_eq!(
            terms,
            [
                Some("name=\"Ali Reza\" country=\"ir\"".to_owned()),
                Some("name=\"\"".to_owned())
            ]
        );
        assert!(
            !queries[0].sealed.windows(4).any(|w| w == b"Reza"),
            "the name is not in clear"
        );
    }
}
