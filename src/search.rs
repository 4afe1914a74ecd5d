//! Search over the items a node holds: the index behind `entente report search`.
//!
//! [`SearchIndex`] keeps, in memory, what a search filters on for every stored report:
//! a set of terms (sender, kind, TLP level, subject and route countries, control-list
//! entries and their prefixes, HS code prefixes, free-text words) each naming the
//! documents that carry it as a compressed bitmap, and the subjects' names in a
//! [`ScreeningIndex`] per sender, so that a subject is found the way screening finds a
//! watchlist entry (accents, word order, legal forms and small misspellings do not
//! matter), and a new item's subjects are compared with other agencies' only. It is
//! built from the store when the node starts and follows every item stored after that.
//! Nothing of it is written to disk: the store's items stay sealed with the data key.
//!
//! # Order and cursors
//!
//! Results come newest first by item key (item id, a ULID that starts with its creation
//! time, then sender). A page ends with a cursor: the key of its last item. The next page
//! holds the items whose key sorts below the cursor, so a page never repeats an item of an
//! earlier one, and an item stored while an analyst pages through is either on a later
//! page or (when it sorts above the cursor) not at all. Keys never change, so a cursor
//! stays valid across a restart of the node.
//!
//! The module is pure: no I/O, no logging, no panics on any input.

use std::collections::BTreeMap;

use base64::Engine as _;
use foldhash::HashMap;
use roaring::RoaringBitmap;

use crate::{
    pb,
    screen::{self, ScreeningIndex},
};

/// Default number of items on a page.
pub const DEFAULT_PAGE: usize = 50;

/// Most items on a page.
pub const MAX_PAGE: usize = 1000;

/// How many of the best-matching subject names a subject search considers.
pub const SUBJECT_CANDIDATES: usize = 1000;

/// The pseudo-list under which subjects' names are held in the name index.
const SUBJECTS: &str = "items";

/// Longest word kept for free-text search, in bytes; longer words are cut.
const MAX_WORD: usize = 40;

/// Below this many candidates a page is found by sorting them; above it, by walking the
/// keys in order until the page is full.
const SORT_LIMIT: u64 = 20_000;

/// A bad search request: which parameter, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The cursor was not issued by this node's search.
    #[error("cursor: expected the `next_cursor` of an earlier page of this node's search")]
    BadCursor,
    /// A parameter has a value the search cannot use.
    #[error("{parameter}: expected {expected}")]
    Invalid {
        /// The parameter.
        parameter: &'static str,
        /// What an acceptable value looks like.
        expected: &'static str,
    },
}

/// What to look for. Every condition set must hold (they are combined with AND); an empty
/// query lists every item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// A subject's name, matched as screening matches names.
    pub subject: Option<String>,
    /// Lowest name score for `subject`, 0 to 1; 0 means the screening default.
    pub min_score: f64,
    /// The agency that sent the item (the node's own agency for its own items).
    pub sender: Option<String>,
    /// `pb::ItemKind` number.
    pub kind: Option<i32>,
    /// `pb::TlpLevel` number.
    pub tlp: Option<i32>,
    /// ISO 3166-1 alpha-2 country of a subject (its countries or an address).
    pub subject_country: Option<String>,
    /// A control-list entry, or its beginning up to a dot ("3A001" finds "3A001.b.2").
    pub control_entry: Option<String>,
    /// The first digits of an HS code.
    pub hs_prefix: Option<String>,
    /// A country of the route: origin, transit, destination or end user.
    pub route_country: Option<String>,
    /// Stored at or after, ms since the epoch.
    pub received_after_ms: Option<i64>,
    /// Stored before, ms since the epoch.
    pub received_before_ms: Option<i64>,
    /// Words that must all occur in the title, narrative, red flags or goods descriptions.
    pub text: Option<String>,
    /// Items on the page; 0 means [`DEFAULT_PAGE`].
    pub limit: usize,
    /// Where the previous page ended (its `next_cursor`).
    pub cursor: Option<String>,
}

impl Search {
    /// The search a `SearchItems` request asks for, checked.
    pub fn from_request(request: &pb::SearchItemsRequest) -> Result<Self, SearchError> {
        let text = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        };
        let country = |parameter, s: &str| -> Result<Option<String>, SearchError> {
            match text(s) {
                None => Ok(None),
                Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
                    Ok(Some(c.to_ascii_uppercase()))
                }
                Some(_) => Err(SearchError::Invalid {
                    parameter,
                    expected: "an ISO 3166-1 alpha-2 country code such as \"IR\"",
                }),
            }
        };
        if !(0.0..=1.0).contains(&request.min_score) {
            return Err(SearchError::Invalid {
                parameter: "min_score",
                expected: "a score from 0 to 1",
            });
        }
        let hs_prefix = text(&request.hs_prefix);
        if hs_prefix
            .as_deref()
            .is_some_and(|h| !h.chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            return Err(SearchError::Invalid {
                parameter: "hs_prefix",
                expected: "the first digits of an HS code, such as \"8542\"",
            });
        }
        if request.limit as usize > MAX_PAGE {
            return Err(SearchError::Invalid {
                parameter: "limit",
                expected: "at most 1000 items on a page",
            });
        }
        if request.received_after_ms > 0
            && request.received_before_ms > 0
            && request.received_before_ms <= request.received_after_ms
        {
            return Err(SearchError::Invalid {
                parameter: "received_before",
                expected: "a time after `received_after`",
            });
        }
        let free_text = text(&request.text);
        if free_text
            .as_deref()
            .is_some_and(|t| words(t).next().is_none())
        {
            return Err(SearchError::Invalid {
                parameter: "text",
                expected: "at least one word of two or more letters or digits",
            });
        }
        let positive = |v: i64| (v > 0).then_some(v);
        Ok(Self {
            subject: text(&request.subject),
            min_score: request.min_score,
            sender: text(&request.sender).map(|s| s.to_ascii_uppercase()),
            kind: (request.kind != 0).then_some(request.kind),
            tlp: (request.tlp != 0).then_some(request.tlp),
            subject_country: country("subject_country", &request.subject_country)?,
            control_entry: text(&request.control_entry),
            hs_prefix,
            route_country: country("route_country", &request.route_country)?,
            received_after_ms: positive(request.received_after_ms),
            received_before_ms: positive(request.received_before_ms),
            text: free_text,
            limit: request.limit as usize,
            cursor: text(&request.cursor),
        })
    }
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Store keys of the items (item id ‖ sender), newest first.
    pub keys: Vec<Vec<u8>>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One indexed item.
struct Doc {
    key: Box<[u8]>,
    stored_at_ms: i64,
    sender: Box<str>,
    /// Number of subjects whose names are in `names` under "doc/n".
    subjects: usize,
}

/// The search index (see the module documentation).
#[derive(Default)]
pub struct SearchIndex {
    docs: Vec<Doc>,
    by_key: BTreeMap<Box<[u8]>, u32>,
    terms: HashMap<Box<str>, RoaringBitmap>,
    all: RoaringBitmap,
    /// Subjects' names, by the agency that sent their item.
    names: BTreeMap<Box<str>, ScreeningIndex>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("items", &self.docs.len())
            .field("terms", &self.terms.len())
            .finish_non_exhaustive()
    }
}

/// A subject of an indexed item that matched a name.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectMatch {
    /// Store key of the item.
    pub key: Vec<u8>,
    /// The agency that sent the item.
    pub sender: String,
    /// Position of the subject in the report.
    pub subject: usize,
    /// The match, as screening reports it.
    pub hit: screen::Hit,
}

impl SearchIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of items indexed.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Adds a stored item under its store `key`. An item already indexed under that key is
    /// left as it is (items are never changed in place); an item that is not a report is
    /// not indexed.
    pub fn insert(&mut self, key: &[u8], sender: &str, stored_at_ms: i64, report: &pb::Report) {
        if self.by_key.contains_key(key) {
            return;
        }
        let Ok(doc) = u32::try_from(self.docs.len()) else {
            return;
        };
        self.docs.push(Doc {
            key: key.into(),
            stored_at_ms,
            sender: sender.into(),
            subjects: report.subjects.len(),
        });
        self.by_key.insert(key.into(), doc);
        self.all.insert(doc);
        for term in terms(sender, report) {
            match self.terms.get_mut(term.as_str()) {
                Some(set) => {
                    set.insert(doc);
                }
                None => {
                    self.terms
                        .insert(term.into(), RoaringBitmap::from_iter([doc]));
                }
            }
        }
        for (n, subject) in report.subjects.iter().enumerate() {
            let entry = pb::WatchlistEntry {
                id: format!("{doc}/{n}"),
                r#type: subject.r#type,
                name: subject.name.clone(),
                aliases: subject.aliases.clone(),
                countries: subject.countries.clone(),
                ..Default::default()
            };
            self.names
                .entry(sender.into())
                .or_default()
                .upsert(SUBJECTS, &entry);
        }
    }

    /// Takes the item under store `key` out of the index (its content was corrected or
    /// withdrawn). Every term's set is visited, so this costs in proportion to the number
    /// of distinct terms; it is done once per correction or retraction.
    pub fn remove(&mut self, key: &[u8]) {
        let Some(doc) = self.by_key.remove(key) else {
            return;
        };
        self.all.remove(doc);
        self.terms.retain(|_, set| {
            set.remove(doc);
            !set.is_empty()
        });
        let Some(d) = self.docs.get(doc as usize) else {
            return;
        };
        if let Some(names) = self.names.get_mut(&d.sender) {
            for n in 0..d.subjects {
                names.remove(SUBJECTS, &format!("{doc}/{n}"));
            }
        }
    }

    /// The name matches of `query` among the subjects of items sent by `senders` (every
    /// sender when `None`), best first, at most `query.limit`.
    fn name_hits(
        &self,
        query: &screen::Query,
        senders: Option<&dyn Fn(&str) -> bool>,
    ) -> Vec<screen::Hit> {
        let mut hits: Vec<screen::Hit> = self
            .names
            .iter()
            .filter(|(sender, _)| senders.is_none_or(|wanted| wanted(sender)))
            .flat_map(|(_, names)| names.search(query))
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(query.limit);
        hits
    }

    /// The subjects of indexed items sent by any agency but `except` whose names match
    /// `query`, best first.
    pub fn subjects(&self, query: &screen::Query, except: &str) -> Vec<SubjectMatch> {
        self.name_hits(query, Some(&|sender: &str| sender != except))
            .into_iter()
            .filter_map(|hit| {
                let (doc, n) = hit.entry_id.split_once('/')?;
                let doc = self.docs.get(doc.parse::<usize>().ok()?)?;
                Some(SubjectMatch {
                    key: doc.key.to_vec(),
                    sender: doc.sender.to_string(),
                    subject: n.parse().ok()?,
                    hit,
                })
            })
            .collect()
    }

    /// One page of the items that match `search`.
    pub fn search(&self, search: &Search) -> Result<Page, SearchError> {
        let before = match &search.cursor {
            Some(cursor) => Some(decode_cursor(cursor)?),
            None => None,
        };
        let limit = match search.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let candidates = self.candidates(search);
        let in_time = |doc: u32| {
            let Some(d) = self.docs.get(doc as usize) else {
                return false;
            };
            search.received_after_ms.is_none_or(|t| d.stored_at_ms >= t)
                && search.received_before_ms.is_none_or(|t| d.stored_at_ms < t)
        };
        let below = |key: &[u8]| before.as_deref().is_none_or(|b| key < b);
        // One more than the page, to know whether another page follows.
        let mut found: Vec<(&[u8], u32)> = Vec::with_capacity(limit + 1);
        match &candidates {
            Some(set) if set.len() <= SORT_LIMIT => {
                let mut all: Vec<(&[u8], u32)> = set
                    .iter()
                    .filter_map(|doc| Some((&*self.docs.get(doc as usize)?.key, doc)))
                    .filter(|(key, doc)| below(key) && in_time(*doc))
                    .collect();
                all.sort_unstable_by(|a, b| b.0.cmp(a.0));
                all.truncate(limit + 1);
                found = all;
            }
            _ => {
                use std::ops::Bound;
                let upper = match &before {
                    Some(b) => Bound::Excluded(b.as_slice()),
                    None => Bound::Unbounded,
                };
                let range = self.by_key.range::<[u8], _>((Bound::Unbounded, upper));
                for (key, &doc) in range.rev() {
                    let wanted = candidates.as_ref().is_none_or(|set| set.contains(doc));
                    if wanted && in_time(doc) {
                        found.push((key, doc));
                        if found.len() > limit {
                            break;
                        }
                    }
                }
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let next_cursor = match found.last() {
            Some((key, _)) if more => Some(encode_cursor(key)),
            _ => None,
        };
        Ok(Page {
            keys: found.into_iter().map(|(key, _)| key.to_vec()).collect(),
            next_cursor,
        })
    }

    /// The documents every term condition of `search` allows; `None` when there is no
    /// such condition (every document).
    fn candidates(&self, search: &Search) -> Option<RoaringBitmap> {
        let mut wanted: Vec<String> = Vec::new();
        if let Some(s) = &search.sender {
            wanted.push(format!("sender:{s}"));
        }
        if let Some(k) = search.kind {
            wanted.push(format!("kind:{k}"));
        }
        if let Some(t) = search.tlp {
            wanted.push(format!("tlp:{t}"));
        }
        if let Some(c) = &search.subject_country {
            wanted.push(format!("country:{c}"));
        }
        if let Some(c) = &search.route_country {
            wanted.push(format!("route:{c}"));
        }
        if let Some(e) = &search.control_entry {
            wanted.push(format!("entry:{}", control_entry(e)));
        }
        if let Some(h) = &search.hs_prefix {
            wanted.push(format!("hs:{}", digits(h)));
        }
        if let Some(text) = &search.text {
            wanted.extend(words(text).map(|w| format!("word:{w}")));
        }
        let mut sets: Vec<&RoaringBitmap> = Vec::with_capacity(wanted.len());
        let empty = RoaringBitmap::new();
        for term in &wanted {
            sets.push(self.terms.get(term.as_str()).unwrap_or(&empty));
        }
        // The smallest set first: each intersection is then at most that small.
        sets.sort_by_key(|s| s.len());
        let mut result: Option<RoaringBitmap> = sets.first().map(|s| (*s).clone());
        for set in sets.iter().skip(1) {
            if let Some(r) = result.as_mut() {
                *r &= *set;
            }
        }
        if let Some(name) = &search.subject {
            let mut query = screen::Query::new(name.clone());
            query.limit = SUBJECT_CANDIDATES;
            if search.min_score > 0.0 {
                query.min_score = search.min_score;
            }
            let mut by_name = RoaringBitmap::new();
            let sender = search.sender.as_deref();
            let hits = match sender {
                Some(s) => self.name_hits(&query, Some(&|sender: &str| sender == s)),
                None => self.name_hits(&query, None),
            };
            for hit in hits {
                if let Some(doc) = hit
                    .entry_id
                    .split_once('/')
                    .and_then(|(d, _)| d.parse::<u32>().ok())
                {
                    by_name.insert(doc);
                }
            }
            result = Some(match result {
                Some(r) => r & by_name,
                None => by_name,
            });
        }
        result
    }
}

/// The terms a report is found by.
fn terms(sender: &str, report: &pb::Report) -> Vec<String> {
    let mut out = vec![format!("sender:{sender}"), format!("kind:{}", report.kind)];
    if let Some(h) = &report.handling {
        out.push(format!("tlp:{}", h.tlp));
    }
    for s in &report.subjects {
        let countries = s
            .countries
            .iter()
            .chain(s.addresses.iter().map(|a| &a.country));
        out.extend(
            countries
                .filter(|c| !c.is_empty())
                .map(|c| format!("country:{}", c.to_ascii_uppercase())),
        );
    }
    if let Some(r) = &report.route {
        let countries = [&r.origin, &r.destination, &r.end_user_country]
            .into_iter()
            .chain(&r.transit);
        out.extend(
            countries
                .filter(|c| !c.is_empty())
                .map(|c| format!("route:{}", c.to_ascii_uppercase())),
        );
    }
    for g in &report.goods {
        let entry = control_entry(&g.control_entry);
        // "3A001.B.2" is found by "3A001", "3A001.B" and itself.
        for (i, c) in entry.char_indices() {
            if c == '.' {
                out.push(format!("entry:{}", &entry[..i]));
            }
        }
        if !entry.is_empty() {
            out.push(format!("entry:{entry}"));
        }
        let hs = digits(&g.hs_code);
        out.extend((2..=hs.len()).map(|n| format!("hs:{}", &hs[..n])));
        out.extend(words(&g.description).map(|w| format!("word:{w}")));
    }
    let text = [&report.title, &report.narrative]
        .into_iter()
        .chain(&report.red_flags);
    for t in text {
        out.extend(words(t).map(|w| format!("word:{w}")));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A control-list entry in the form it is indexed in: upper case, without spaces.
fn control_entry(entry: &str) -> String {
    entry
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect::<String>()
        .trim_end_matches('.')
        .to_owned()
}

/// The digits of an HS code ("8542.31" → "854231").
fn digits(code: &str) -> String {
    code.chars().filter(char::is_ascii_digit).collect()
}

/// The words of free text, as they are indexed: ASCII (transliterated), lower case, at
/// least two characters, cut at [`MAX_WORD`] bytes.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut w = deunicode::deunicode(w).to_ascii_lowercase();
            w.retain(|c| c.is_ascii_alphanumeric());
            w.truncate(MAX_WORD);
            w
        })
        .filter(|w| w.len() >= 2)
}

fn encode_cursor(key: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_cursor(cursor: &str) -> Result<Vec<u8>, SearchError> {
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| SearchError::BadCursor)?;
    // A store key is a 16-byte item id followed by the sender's agency id.
    if key.len() <= 16 {
        return Err(SearchError::BadCursor);
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
