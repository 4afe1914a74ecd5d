//! Screening: finding the watchlist entries whose names match a name an analyst gives.
//!
//! [`ScreeningIndex`] holds the names of every entry of every list the node has, in memory,
//! and follows the lists as deltas apply: [`ScreeningIndex::upsert`] and
//! [`ScreeningIndex::remove`] change one entry without rebuilding anything. The module is
//! pure: no I/O, no logging, no panics on any name.
//!
//! # Matching
//!
//! Names are compared in their normalised token form ([`normalise`]): case, accents and
//! other scripts (transliterated to ASCII), punctuation and legal-form words ("LLC",
//! "GmbH", "OOO" ...) do not matter. A query and a name are scored by a token-set
//! similarity: each query token is paired with the most similar name token by
//! Jaro-Winkler, so word order does not matter, a single letter matches a token it begins
//! (an initial), and tokens left unpaired lower the score. Exact tokens score above any
//! fuzzy pair, and a match on an alias scores a little below the same match on a primary
//! name. Every [`Hit`] says why it matched.
//!
//! # Searching without scanning
//!
//! A search does not compare the query with every name. Each query token is looked up in
//! the vocabulary of distinct tokens, with its spelling variants: the tokens at edit
//! distance 1 of a short token, and the tokens of a similar length that share enough of
//! its trigrams (the rarest trigrams are counted first, up to a budget), kept when
//! Jaro-Winkler similar. The postings of those spellings credit the names that hold them;
//! the rarest query tokens are read first, up to a budget of postings, and a token too
//! common to read is checked on the best candidates instead. Each credited name's score is
//! estimated from its credit and its length, and only the best two hundred are scored in
//! full. So the work of a search is bounded, whatever the size of the lists.
//! [`ScreeningIndex::search_exhaustive`] scores every name instead: it is the reference
//! the indexed search is measured against.
//!
//! What the index cannot find, the reference can: a name whose only link to the query is a
//! spelling too far from every query token (more than one edit in a short token, or too
//! few shared trigrams), or a name that shares only very common tokens with the query when
//! more than a few hundred names share them as well. A single letter in a query (an
//! initial) is matched when names are scored, but does not find names on its own.
//!
//! # Filters
//!
//! A type or country filter keeps the entries that match it and the entries that state no
//! type, or no country: an entry is left out only on what its list says.
//!
//! # Memory
//!
//! Tokens are kept once, in an arena, and named by `u32` ids; a name is its token ids plus,
//! for an alias, its published text; an entry keeps its id, primary name, countries and
//! names. A posting (a token held by a name) takes 8 bytes: the name, its length and its
//! entry's type, so that estimating a candidate reads nothing else.

mod normalise;
mod request;
mod score;
mod search;
mod vocab;

use std::sync::Arc;

use foldhash::HashMap;
use serde::Serialize;

pub use normalise::{MAX_TOKEN_LEN, MAX_TOKENS, normalise};
pub use request::{
    MAX_LIMIT, MAX_REPORT_HITS, RequestError, TYPE_NAMES, hit_to_pb, parse_subject_type, query,
    screen_report, subject_type_name,
};

use crate::pb;
use vocab::{Posting, Vocab};

/// Default for [`Query::limit`].
pub const DEFAULT_LIMIT: usize = 10;

/// Default for [`Query::min_score`].
pub const DEFAULT_MIN_SCORE: f64 = 0.80;

/// What to screen, and how many hits to return.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The name to screen, as the analyst typed it.
    pub name: String,
    /// Only entries of this type, or of no stated type. `None` (or unspecified): any type.
    pub subject_type: Option<pb::SubjectType>,
    /// Only entries connected to this ISO 3166-1 alpha-2 country, or with no country.
    /// `None`: any country.
    pub country: Option<String>,
    /// Most hits returned; default [`DEFAULT_LIMIT`].
    pub limit: usize,
    /// Lowest score returned, 0 to 1; default [`DEFAULT_MIN_SCORE`].
    pub min_score: f64,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            name: String::new(),
            subject_type: None,
            country: None,
            limit: DEFAULT_LIMIT,
            min_score: DEFAULT_MIN_SCORE,
        }
    }
}

impl Query {
    /// A query for `name` with the default limit and threshold and no filter.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// One watchlist entry that matched a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// How well the entry matched, 0 to 1 (1: the same tokens in the same order).
    pub score: f64,
    /// The list holding the entry ("US-TREAS/sdn").
    pub list: String,
    /// The entry's id within its list.
    pub entry_id: String,
    /// The name or alias that matched, as published.
    pub matched_name: String,
    /// The entry's primary name, as published.
    pub primary_name: String,
    /// Why it matched, one reason per item ("alias", "word order ignored",
    /// "token match: 'ahmad'~'ahmed' 0.93", "legal form 'LLC' ignored" ...).
    pub why: Vec<String>,
}

/// The names of every entry of every list, indexed for screening (see the module
/// documentation).
#[derive(Default)]
pub struct ScreeningIndex {
    lists: Vec<ListRec>,
    list_ids: HashMap<String, u32>,
    countries: Vec<Box<str>>,
    country_ids: HashMap<Box<str>, u32>,
    entries: Vec<Option<EntryRec>>,
    free_entries: Vec<u32>,
    live_entries: usize,
    names: Vec<NameRec>,
    name_meta: Vec<NameMeta>,
    free_names: Vec<u32>,
    live_names: usize,
    vocab: Vocab,
}

impl std::fmt::Debug for ScreeningIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreeningIndex")
            .field("lists", &self.lists.len())
            .field("entries", &self.live_entries)
            .field("names", &self.live_names)
            .finish_non_exhaustive()
    }
}

/// One list: its name and its entries by id.
#[derive(Debug)]
struct ListRec {
    name: String,
    entries: HashMap<Arc<str>, u32>,
}

/// One entry.
#[derive(Debug)]
struct EntryRec {
    list: u32,
    id: Arc<str>,
    primary: Box<str>,
    countries: Box<[u32]>,
    /// Slots in `names`; the primary name first when it has tokens.
    names: Box<[u32]>,
}

/// One indexed name: its tokens, and its text when it is an alias (a primary name's text
/// is the entry's).
#[derive(Debug, Default)]
struct NameRec {
    /// Slot of the entry in `entries`.
    entry: u32,
    alias: Option<Box<str>>,
    tokens: Box<[u32]>,
}

/// What the exhaustive search reads for every name before scoring it (2 bytes a name).
#[derive(Debug, Clone, Copy, Default)]
struct NameMeta {
    /// The entry's `pb::SubjectType` as a number.
    kind: u8,
    /// Whether the slot holds a name.
    live: bool,
}

impl ScreeningIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries, over all lists.
    pub fn len(&self) -> usize {
        self.live_entries
    }

    /// Whether the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.live_entries == 0
    }

    /// Number of indexed names (primary names and distinct aliases) over all lists.
    pub fn name_count(&self) -> usize {
        self.live_names
    }

    /// Adds `entry` to `list`, or replaces the entry of `list` with the same id. Names that
    /// normalise to no token, or to the tokens of an earlier name of the entry, are not
    /// indexed.
    pub fn upsert(&mut self, list: &str, entry: &pb::WatchlistEntry) {
        let list_id = self.list_id(list);
        self.remove_from(list_id, &entry.id);
        let kind = pb::SubjectType::try_from(entry.r#type).unwrap_or(pb::SubjectType::Unspecified);
        let slot = self.free_entries.pop().unwrap_or_else(|| {
            self.entries.push(None);
            (self.entries.len() - 1) as u32
        });
        let countries = entry
            .countries
            .iter()
            .filter_map(|c| self.country_id(c))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let names = self.add_names(slot, kind, entry);
        let id: Arc<str> = Arc::from(entry.id.as_str());
        self.entries[slot as usize] = Some(EntryRec {
            list: list_id,
            id: id.clone(),
            primary: entry.name.as_str().into(),
            countries,
            names,
        });
        self.lists[list_id as usize].entries.insert(id, slot);
        self.live_entries += 1;
    }

    /// Removes the entry `entry_id` of `list`, if there is one.
    pub fn remove(&mut self, list: &str, entry_id: &str) {
        if let Some(&list_id) = self.list_ids.get(list) {
            self.remove_from(list_id, entry_id);
        }
    }

    /// Removes every entry of `list`.
    pub fn remove_list(&mut self, list: &str) {
        let Some(&list_id) = self.list_ids.get(list) else {
            return;
        };
        let entries = std::mem::take(&mut self.lists[list_id as usize].entries);
        for slot in entries.into_values() {
            self.remove_slot(slot);
        }
    }

    /// Bytes held by the index's main arrays and lists, by their capacity. It leaves out
    /// the strings and the allocator's own overhead, so the process's resident memory is
    /// the better measure; this one is for comparing layouts.
    pub fn approximate_bytes(&self) -> usize {
        let names: usize = self.names.iter().map(|n| n.tokens.len() * 4).sum();
        self.entries.capacity() * size_of::<Option<EntryRec>>()
            + self.names.capacity() * size_of::<NameRec>()
            + self.name_meta.capacity() * size_of::<NameMeta>()
            + names
            + self.vocab.list_bytes()
    }

    /// The id of list `name`, added if new.
    fn list_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.list_ids.get(name) {
            return id;
        }
        let id = self.lists.len() as u32;
        self.lists.push(ListRec {
            name: name.to_string(),
            entries: HashMap::default(),
        });
        self.list_ids.insert(name.to_string(), id);
        id
    }

    /// The id of country `code` (trimmed, upper case), added if new; `None` when blank.
    fn country_id(&mut self, code: &str) -> Option<u32> {
        let code = code.trim().to_ascii_uppercase();
        if code.is_empty() {
            return None;
        }
        if let Some(&id) = self.country_ids.get(code.as_str()) {
            return Some(id);
        }
        let id = self.countries.len() as u32;
        self.countries.push(code.as_str().into());
        self.country_ids.insert(code.into(), id);
        Some(id)
    }

    /// Indexes the primary name and aliases of `entry`, held in entry slot `slot`.
    fn add_names(
        &mut self,
        slot: u32,
        kind: pb::SubjectType,
        entry: &pb::WatchlistEntry,
    ) -> Box<[u32]> {
        let mut seen: Vec<Box<[u32]>> = Vec::new();
        let mut names = Vec::new();
        let published =
            std::iter::once((&entry.name, false)).chain(entry.aliases.iter().map(|a| (a, true)));
        for (text, is_alias) in published {
            let tokens: Box<[u32]> = normalise(text)
                .iter()
                .map(|t| self.vocab.intern(t))
                .collect();
            if tokens.is_empty() || seen.contains(&tokens) {
                continue;
            }
            seen.push(tokens.clone());
            let weight: usize = tokens.iter().map(|&t| self.vocab.text(t).len()).sum();
            let name_slot = self.free_names.pop().unwrap_or_else(|| {
                self.names.push(NameRec::default());
                self.name_meta.push(NameMeta::default());
                (self.names.len() - 1) as u32
            });
            let weight = u16::try_from(weight).unwrap_or(u16::MAX);
            for &t in tokens.iter() {
                let posting = Posting {
                    name: name_slot,
                    weight,
                    kind: kind as u8,
                };
                self.vocab.add_posting(t, posting);
            }
            self.names[name_slot as usize] = NameRec {
                entry: slot,
                alias: is_alias.then(|| text.as_str().into()),
                tokens,
            };
            self.name_meta[name_slot as usize] = NameMeta {
                kind: kind as u8,
                live: true,
            };
            names.push(name_slot);
            self.live_names += 1;
        }
        names.into_boxed_slice()
    }

    /// Removes entry `entry_id` of list `list_id`, if there is one.
    fn remove_from(&mut self, list_id: u32, entry_id: &str) {
        if let Some(slot) = self.lists[list_id as usize].entries.remove(entry_id) {
            self.remove_slot(slot);
        }
    }

    /// Frees entry slot `slot` and its names (already gone from its list's map).
    fn remove_slot(&mut self, slot: u32) {
        let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        for &name in entry.names.iter() {
            let rec = std::mem::take(&mut self.names[name as usize]);
            for &t in rec.tokens.iter() {
                self.vocab.remove_posting(t, name);
            }
            self.name_meta[name as usize] = NameMeta::default();
            self.free_names.push(name);
            self.live_names -= 1;
        }
        self.free_entries.push(slot);
        self.live_entries -= 1;
    }
}

#[cfg(test)]
mod tests;
