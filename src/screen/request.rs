//! Screening as the node offers it: checking an analyst's request before it becomes a
//! [`Query`], the wire form of a [`Hit`], and screening the subjects of a report.
//!
//! Like the rest of the module it does no I/O: the node calls it with its index, and the
//! store keeps what it returns.

use std::collections::HashMap;

use super::{DEFAULT_LIMIT, DEFAULT_MIN_SCORE, Hit, Query, ScreeningIndex, normalise};
use crate::pb;

/// Most hits one request may ask for.
pub const MAX_LIMIT: usize = 1000;

/// Hits kept per name screened when a report is screened.
const REPORT_LIMIT: usize = 10;

/// Most hits kept with one report, over all its subjects.
pub const MAX_REPORT_HITS: usize = 100;

/// The subject types an analyst may name, as `--type` and report JSON write them.
pub const TYPE_NAMES: [(&str, pb::SubjectType); 4] = [
    ("person", pb::SubjectType::Person),
    ("organisation", pb::SubjectType::Organisation),
    ("vessel", pb::SubjectType::Vessel),
    ("aircraft", pb::SubjectType::Aircraft),
];

/// Why a screening request was refused. Messages say what was wrong and what is expected;
/// the name screened is never repeated in them, so that it stays out of logs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The name is empty or white space.
    #[error("the name to screen is empty: expected a name such as \"Ali Reza Karimi\"")]
    EmptyName,
    /// The name has no letter or digit, so nothing in it can match.
    #[error(
        "the name to screen has no letter or digit: expected a name such as \"Ali Reza Karimi\""
    )]
    NoTokens,
    /// The subject type is not one of the known ones.
    #[error("unknown subject type {0:?}: expected one of person, organisation, vessel, aircraft")]
    UnknownType(String),
    /// The country is not an assigned ISO 3166-1 alpha-2 code.
    #[error(
        "country {0:?} is not an assigned ISO 3166-1 alpha-2 code: expected one such as \"IR\""
    )]
    BadCountry(String),
    /// The limit is out of range.
    #[error("limit {0} is out of range: expected 1 to {MAX_LIMIT}")]
    Limit(u64),
    /// The lowest score is out of range.
    #[error("minimum score {0} is out of range: expected a number above 0 and at most 1")]
    MinScore(f64),
}

/// The subject type named `text` ("person", "Organisation" ...). "organization" is
/// accepted for "organisation".
pub fn parse_subject_type(text: &str) -> Result<pb::SubjectType, RequestError> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = if lower == "organization" {
        "organisation".to_owned()
    } else {
        lower
    };
    TYPE_NAMES
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, t)| *t)
        .ok_or_else(|| RequestError::UnknownType(clip(text)))
}

/// The name of a subject type as [`parse_subject_type`] reads it ("" for unspecified).
pub fn subject_type_name(subject_type: pb::SubjectType) -> &'static str {
    TYPE_NAMES
        .iter()
        .find(|(_, t)| *t == subject_type)
        .map_or("", |(name, _)| name)
}

/// Checks a request and turns it into a query: a name with at least one token, a known
/// type, an assigned country code (any case), a limit of 1 to [`MAX_LIMIT`] (0: the
/// default) and a lowest score above 0 and at most 1 (0: the default).
pub fn query(request: &pb::ScreenRequest) -> Result<Query, RequestError> {
    if request.name.trim().is_empty() {
        return Err(RequestError::EmptyName);
    }
    if normalise(&request.name).is_empty() {
        return Err(RequestError::NoTokens);
    }
    let subject_type = match pb::SubjectType::try_from(request.subject_type) {
        Ok(pb::SubjectType::Unspecified) => None,
        Ok(t) => Some(t),
        Err(_) => return Err(RequestError::UnknownType(request.subject_type.to_string())),
    };
    let country = match request.country.trim() {
        "" => None,
        code => Some(country_code(code)?),
    };
    let limit = match request.limit as usize {
        0 => DEFAULT_LIMIT,
        n if n <= MAX_LIMIT => n,
        n => return Err(RequestError::Limit(n as u64)),
    };
    let min_score = match request.min_score {
        0.0 => DEFAULT_MIN_SCORE,
        s if s > 0.0 && s <= 1.0 => s,
        s => return Err(RequestError::MinScore(s)),
    };
    Ok(Query {
        name: request.name.clone(),
        subject_type,
        country,
        limit,
        min_score,
    })
}

/// `code` in upper case when it is an assigned ISO 3166-1 alpha-2 code.
fn country_code(code: &str) -> Result<String, RequestError> {
    let upper = code.to_ascii_uppercase();
    match crate::watchlist::country_code(&upper) {
        Some(c) if c == upper => Ok(upper),
        _ => Err(RequestError::BadCountry(clip(code))),
    }
}

/// At most 16 characters of what a user typed, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(16).collect()
}

/// The wire form of a hit.
pub fn hit_to_pb(hit: Hit) -> pb::ScreeningHit {
    pb::ScreeningHit {
        score: hit.score,
        list: hit.list,
        entry_id: hit.entry_id,
        matched_name: hit.matched_name,
        primary_name: hit.primary_name,
        why: hit.why,
        subject: String::new(),
        screened_name: String::new(),
    }
}

/// Screens the name and aliases of every subject of `report` against `index`: the hits
/// scoring at least `threshold`, best first, one per (subject, entry), at most
/// [`MAX_REPORT_HITS`]. A subject is screened against entries of its own type (or of no
/// stated type), not filtered by country.
pub fn screen_report(
    index: &ScreeningIndex,
    report: &pb::Report,
    threshold: f64,
) -> Vec<pb::ScreeningHit> {
    if index.is_empty() {
        return Vec::new();
    }
    // (subject, list, entry) → position in `hits`.
    let mut best: HashMap<(usize, String, String), usize> = HashMap::new();
    let mut hits: Vec<pb::ScreeningHit> = Vec::new();
    for (i, subject) in report.subjects.iter().enumerate() {
        let subject_type = match pb::SubjectType::try_from(subject.r#type) {
            Ok(pb::SubjectType::Unspecified) | Err(_) => None,
            Ok(t) => Some(t),
        };
        for name in std::iter::once(&subject.name).chain(&subject.aliases) {
            let query = Query {
                name: name.clone(),
                subject_type,
                country: None,
                limit: REPORT_LIMIT,
                min_score: threshold,
            };
            for hit in index.search(&query) {
                let key = (i, hit.list.clone(), hit.entry_id.clone());
                let mut found = hit_to_pb(hit);
                found.subject = subject.name.clone();
                found.screened_name = name.clone();
                match best.get(&key) {
                    Some(&at) if hits[at].score >= found.score => {}
                    Some(&at) => hits[at] = found,
                    None => {
                        best.insert(key, hits.len());
                        hits.push(found);
                    }
                }
            }
        }
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits.truncate(MAX_REPORT_HITS);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str) -> pb::ScreenRequest {
        pb::ScreenRequest {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    fn index() -> ScreeningIndex {
        let mut index = ScreeningIndex::new();
        index.upsert(
            "US-TREAS/sdn",
            &pb::WatchlistEntry {
                id: "36".into(),
                r#type: pb::SubjectType::Organisation as i32,
                name: "AEROCARIBBEAN AIRLINES".into(),
                aliases: vec!["AERO-CARIBBEAN".into()],
                ..Default::default()
            },
        );
        index.upsert(
            "US-TREAS/sdn",
            &pb::WatchlistEntry {
                id: "7".into(),
                r#type: pb::SubjectType::Person as i32,
                name: "KARIMI, Ali Reza".into(),
                ..Default::default()
            },
        );
        index
    }

    #[test]
    fn a_request_with_defaults_becomes_the_default_query() {
        let q = query(&request("Ali Reza")).unwrap();
        assert_eq!(q, Query::new("Ali Reza"));
    }

    #[test]
    fn empty_and_tokenless_names_are_refused() {
        assert_eq!(query(&request("  ")), Err(RequestError::EmptyName));
        assert_eq!(query(&request("-- , .")), Err(RequestError::NoTokens));
    }

    #[test]
    fn country_codes_must_be_assigned_and_any_case_is_read() {
        let mut r = request("x");
        r.country = "ir".into();
        assert_eq!(query(&r).unwrap().country.as_deref(), Some("IR"));
        for bad in ["QQ", "IRN", "Iran", "1"] {
            r.country = bad.into();
            assert!(
                matches!(query(&r), Err(RequestError::BadCountry(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn types_are_read_by_name_and_unknown_ones_refused() {
        assert_eq!(parse_subject_type("Person"), Ok(pb::SubjectType::Person));
        assert_eq!(
            parse_subject_type("organization"),
            Ok(pb::SubjectType::Organisation)
        );
        assert!(parse_subject_type("ship").is_err());
        let mut r = request("x");
        r.subject_type = 99;
        assert!(matches!(query(&r), Err(RequestError::UnknownType(_))));
    }

    #[test]
    fn limits_and_scores_out_of_range_are_refused() {
        let mut r = request("x");
        r.limit = 1001;
        assert_eq!(query(&r), Err(RequestError::Limit(1001)));
        r.limit = 5;
        r.min_score = 1.5;
        assert_eq!(query(&r), Err(RequestError::MinScore(1.5)));
        r.min_score = -0.1;
        assert!(query(&r).is_err());
        r.min_score = 0.95;
        let q = query(&r).unwrap();
        assert_eq!((q.limit, q.min_score), (5, 0.95));
    }

    #[test]
    fn error_messages_do_not_echo_long_input() {
        let long = "x".repeat(200);
        let message = parse_subject_type(&long).unwrap_err().to_string();
        assert!(message.len() < 150, "{message}");
    }

    fn report(subjects: Vec<pb::Subject>) -> pb::Report {
        pb::Report {
            subjects,
            ..Default::default()
        }
    }

    fn subject(kind: pb::SubjectType, name: &str, aliases: &[&str]) -> pb::Subject {
        pb::Subject {
            r#type: kind as i32,
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn report_subjects_and_aliases_are_screened_once_per_entry() {
        let r = report(vec![
            subject(
                pb::SubjectType::Organisation,
                "Aero Caribbean",
                &["Aerocaribbean Airlines"],
            ),
            subject(pb::SubjectType::Person, "Ali Reza KARIMI", &[]),
            subject(pb::SubjectType::Person, "Hans Schmidt", &[]),
        ]);
        let hits = screen_report(&index(), &r, 0.9);
        let found: Vec<_> = hits
            .iter()
            .map(|h| (h.subject.as_str(), h.entry_id.as_str()))
            .collect();
        assert_eq!(found.len(), 2, "{hits:#?}");
        assert!(found.contains(&("Aero Caribbean", "36")));
        assert!(found.contains(&("Ali Reza KARIMI", "7")));
        let aero = hits.iter().find(|h| h.entry_id == "36").unwrap();
        assert_eq!(aero.screened_name, "Aerocaribbean Airlines");
        assert_eq!(aero.score, 1.0);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn the_threshold_keeps_weaker_hits_out() {
        let r = report(vec![subject(pb::SubjectType::Person, "Ali Karimi", &[])]);
        let loose = screen_report(&index(), &r, 0.5);
        assert!(!loose.is_empty());
        let score = loose[0].score;
        assert!(score < 1.0);
        assert!(screen_report(&index(), &r, score + 0.001).is_empty());
        assert_eq!(screen_report(&index(), &r, score).len(), 1);
    }

    #[test]
    fn one_misspelt_word_of_two_passes_the_default_threshold() {
        let mut index = ScreeningIndex::new();
        index.upsert(
            "US-TREAS/sdn",
            &pb::WatchlistEntry {
                id: "1".into(),
                name: "KHAN, Ahmad".into(),
                ..Default::default()
            },
        );
        let r = report(vec![subject(pb::SubjectType::Person, "Ahmed Khan", &[])]);
        let hits = screen_report(&index, &r, crate::config::DEFAULT_SCREENING_THRESHOLD);
        assert_eq!(hits.len(), 1);
        assert!((0.92..0.94).contains(&hits[0].score), "{}", hits[0].score);
    }

    #[test]
    fn a_subject_is_screened_against_its_own_type_only() {
        let r = report(vec![subject(
            pb::SubjectType::Vessel,
            "Aerocaribbean Airlines",
            &[],
        )]);
        assert!(screen_report(&index(), &r, 0.9).is_empty());
    }
}
