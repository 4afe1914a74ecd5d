//! The vocabulary: every distinct normalised token, its postings (the names that hold it),
//! and a trigram index that finds the tokens spelt like a query token.
//!
//! A token is named by a `u32`; its text is kept in an arena (and once more as the key of
//! the table that finds its id). Tokens are never forgotten: when the last name holding
//! one is removed its postings become empty, and a later name that uses it again reuses
//! its id. Vocabularies of names grow slowly, so this costs little.

use foldhash::HashMap;

use super::score::{self, PairKind};

/// Lowest Jaro-Winkler similarity at which a vocabulary token is tried for a query token.
const EXPAND_MIN: f64 = 0.80;

/// Most spellings of one query token whose postings are read.
const MAX_EXPANSIONS: usize = 16;

/// Most trigram candidates verified with Jaro-Winkler for one query token.
const MAX_VERIFIED: usize = 250;

/// Most token ids counted from trigram lists for one query token.
const TRIGRAM_BUDGET: usize = 10_000;

/// Tokens up to this length are also looked up at edit distance 1, where trigrams share
/// too little to find them.
const EDIT_LOOKUP_MAX_LEN: usize = 6;

/// The characters tokens are made of (see `normalise`), after the padding mark.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A spelling of a query token found in the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Expansion {
    /// The vocabulary token.
    pub token: u32,
    /// Its similarity to the query token (1 when equal).
    pub similarity: f64,
}

/// One name that holds a token, with what a search needs to know of it before reading the
/// name itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Posting {
    /// The name's slot.
    pub name: u32,
    /// The name's weight (the sum of its token weights), saturated.
    pub weight: u16,
    /// The entry's `pb::SubjectType` as a number.
    pub kind: u8,
}

/// Distinct tokens, their postings and their trigrams.
#[derive(Debug, Default)]
pub(crate) struct Vocab {
    ids: HashMap<Box<str>, u32>,
    /// Every token's text, one after the other, so that comparing many tokens reads
    /// little memory; token `i` starts at `starts[i]` and ends where the next one starts.
    arena: String,
    starts: Vec<u32>,
    postings: Vec<Vec<Posting>>,
    /// Tokens by trigram and length: the key is `trigram << 6 | length`.
    trigrams: HashMap<u32, Vec<u32>>,
}

/// Per-search working memory for [`Vocab::expand`], reused across searches.
#[derive(Debug, Default)]
pub(crate) struct TrigramScratch {
    /// Per token: the search stamp in the high 24 bits, the trigram count in the low 8.
    counts: Vec<u32>,
    touched: Vec<u32>,
    stamp: u32,
}

impl Vocab {
    /// The id of `token`, added if new.
    pub fn intern(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        let id = u32::try_from(self.starts.len()).unwrap_or(u32::MAX);
        self.ids.insert(token.into(), id);
        self.starts
            .push(u32::try_from(self.arena.len()).unwrap_or(u32::MAX));
        self.arena.push_str(token);
        self.postings.push(Vec::new());
        if token.len() >= 2 {
            let mut codes = trigram_codes(token);
            codes.sort_unstable();
            codes.dedup();
            for code in codes {
                self.trigrams
                    .entry(trigram_key(code, token.len()))
                    .or_default()
                    .push(id);
            }
        }
        id
    }

    /// The id of `token`, if known.
    pub fn get(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The text of token `id`.
    pub fn text(&self, id: u32) -> &str {
        let id = id as usize;
        let Some(&start) = self.starts.get(id) else {
            return "";
        };
        let end = self
            .starts
            .get(id + 1)
            .map_or(self.arena.len(), |&e| e as usize);
        self.arena.get(start as usize..end).unwrap_or("")
    }

    /// The names that hold token `id`.
    pub fn postings(&self, id: u32) -> &[Posting] {
        self.postings.get(id as usize).map_or(&[], |p| p)
    }

    /// Records that a name holds token `id`.
    pub fn add_posting(&mut self, id: u32, posting: Posting) {
        if let Some(p) = self.postings.get_mut(id as usize) {
            p.push(posting);
        }
    }

    /// Records that name `name` no longer holds token `id`.
    pub fn remove_posting(&mut self, id: u32, name: u32) {
        if let Some(p) = self.postings.get_mut(id as usize) {
            if let Some(at) = p.iter().position(|n| n.name == name) {
                p.swap_remove(at);
            }
            if p.is_empty() {
                p.shrink_to_fit();
            }
        }
    }

    /// Bytes held by postings and trigram lists (capacity), for memory reports.
    pub fn list_bytes(&self) -> usize {
        let postings: usize = self.postings.iter().map(|l| l.capacity() * 8 + 24).sum();
        let trigrams: usize = self.trigrams.values().map(|l| l.capacity() * 4 + 32).sum();
        postings + trigrams + self.arena.capacity() + self.starts.capacity() * 4
    }

    /// The vocabulary tokens spelt like `token`, best first: the token itself, its
    /// initial, its edit-distance-1 neighbours when short, and tokens sharing trigrams with
    /// it whose Jaro-Winkler similarity is at least [`EXPAND_MIN`]. A single letter (an
    /// initial) expands to itself only.
    pub fn expand(&self, token: &str, scratch: &mut TrigramScratch) -> Vec<Expansion> {
        let mut found = Vec::new();
        if let Some(id) = self.get(token) {
            found.push(Expansion {
                token: id,
                similarity: 1.0,
            });
        }
        if token.len() < 2 {
            return found;
        }
        // A name may give only the initial of this token.
        if let Some(id) = token.get(..1).and_then(|initial| self.get(initial)) {
            found.push(Expansion {
                token: id,
                similarity: score::INITIAL,
            });
        }
        if token.len() <= EDIT_LOOKUP_MAX_LEN {
            self.edit_neighbours(token, &mut found);
        }
        self.trigram_neighbours(token, scratch, &mut found);
        found.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.token.cmp(&b.token))
        });
        found.dedup_by_key(|e| e.token);
        found.truncate(MAX_EXPANSIONS);
        found
    }

    /// Adds the known tokens at edit distance 1 from `token` (deletion, transposition,
    /// substitution, insertion) to `found`.
    fn edit_neighbours(&self, token: &str, found: &mut Vec<Expansion>) {
        let bytes = token.as_bytes();
        let mut candidate = Vec::with_capacity(bytes.len() + 1);
        let check = |candidate: &[u8], found: &mut Vec<Expansion>| {
            // Only ASCII bytes are ever put in `candidate`.
            let Ok(text) = std::str::from_utf8(candidate) else {
                return;
            };
            if let Some(id) = self.get(text) {
                if let Some(similarity) = similarity(token, text) {
                    found.push(Expansion {
                        token: id,
                        similarity,
                    });
                }
            }
        };
        for i in 0..bytes.len() {
            candidate.clear();
            candidate.extend_from_slice(&bytes[..i]);
            candidate.extend_from_slice(&bytes[i + 1..]);
            check(&candidate, found);
            if i + 1 < bytes.len() {
                candidate.clear();
                candidate.extend_from_slice(bytes);
                candidate.swap(i, i + 1);
                check(&candidate, found);
            }
            for &c in ALPHABET {
                if c != bytes[i] {
                    candidate.clear();
                    candidate.extend_from_slice(bytes);
                    candidate[i] = c;
                    check(&candidate, found);
                }
            }
        }
        for i in 0..=bytes.len() {
            for &c in ALPHABET {
                candidate.clear();
                candidate.extend_from_slice(&bytes[..i]);
                candidate.push(c);
                candidate.extend_from_slice(&bytes[i..]);
                check(&candidate, found);
            }
        }
    }

    /// Adds the tokens sharing enough trigrams with `token` and similar enough to it.
    fn trigram_neighbours(
        &self,
        token: &str,
        scratch: &mut TrigramScratch,
        found: &mut Vec<Expansion>,
    ) {
        let mut codes = trigram_codes(token);
        codes.sort_unstable();
        codes.dedup();
        let len = token.len();
        let slack = (len / 3).max(2);
        // Each trigram's lists of tokens of a similar length, rarest trigram first.
        let mut lists: Vec<Vec<&[u32]>> = codes
            .iter()
            .map(|&code| {
                (len.saturating_sub(slack).max(2)..=len + slack)
                    .filter_map(|other| self.trigrams.get(&trigram_key(code, other)))
                    .map(Vec::as_slice)
                    .collect()
            })
            .collect();
        lists.sort_by_key(|l| l.iter().map(|ids| ids.len()).sum::<usize>());
        // The most common trigrams are left out once enough tokens were counted. A token
        // this similar shares about a third of the trigrams counted, or more (the closest
        // spellings of a short token are found by `edit_neighbours`).
        let mut used = 0usize;
        let mut counted = 0;
        let stamp = scratch.begin(self.starts.len());
        for trigram in &lists {
            let volume: usize = trigram.iter().map(|ids| ids.len()).sum();
            if used > 0 && counted + volume > TRIGRAM_BUDGET {
                break;
            }
            used += 1;
            counted += volume;
            for &id in trigram.iter().flat_map(|ids| ids.iter()) {
                scratch.bump(id, stamp);
            }
        }
        let need = (used * 3).div_ceil(10).max(1);
        let mut shortlist: Vec<(u32, u32)> = scratch
            .touched
            .iter()
            .filter_map(|&id| {
                let count = scratch.counts[id as usize] & 0xFF;
                (count as usize >= need).then_some((count, id))
            })
            .collect();
        if shortlist.len() > MAX_VERIFIED {
            shortlist.select_nth_unstable_by(MAX_VERIFIED, |a, b| b.0.cmp(&a.0));
            shortlist.truncate(MAX_VERIFIED);
        }
        for (_, id) in shortlist {
            if let Some(similarity) = similarity(token, self.text(id)) {
                found.push(Expansion {
                    token: id,
                    similarity,
                });
            }
        }
    }
}

/// The similarity of two different tokens when at least [`EXPAND_MIN`].
fn similarity(a: &str, b: &str) -> Option<f64> {
    match score::pair_tokens(a, b)? {
        (PairKind::Exact, _) => Some(1.0),
        (PairKind::Fuzzy(jw), _) if jw >= EXPAND_MIN => Some(jw),
        _ => None,
    }
}

impl TrigramScratch {
    /// Starts a lookup over a vocabulary of `len` tokens; returns its stamp.
    fn begin(&mut self, len: usize) -> u32 {
        if self.counts.len() < len {
            self.counts.resize(len, 0);
        }
        self.touched.clear();
        self.stamp += 1;
        if self.stamp >= 1 << 24 {
            self.counts.iter_mut().for_each(|c| *c = 0);
            self.stamp = 1;
        }
        self.stamp
    }

    /// Counts one more shared trigram for token `id`.
    fn bump(&mut self, id: u32, stamp: u32) {
        let Some(c) = self.counts.get_mut(id as usize) else {
            return;
        };
        if *c >> 8 != stamp {
            *c = stamp << 8;
            self.touched.push(id);
        }
        if *c & 0xFF < 0xFF {
            *c += 1;
        }
    }
}

/// The key of the tokens of length `len` that hold trigram `code` (lengths above 63 share
/// one key; tokens are shorter).
fn trigram_key(code: usize, len: usize) -> u32 {
    (code as u32) << 6 | len.min(63) as u32
}

/// The trigram codes of `token` padded with one mark on each side.
fn trigram_codes(token: &str) -> Vec<usize> {
    let padded: Vec<usize> = std::iter::once(0)
        .chain(token.bytes().map(char_code))
        .chain(std::iter::once(0))
        .collect();
    padded
        .windows(3)
        .map(|w| (w[0] * 37 + w[1]) * 37 + w[2])
        .collect()
}

/// 1 to 36 for a token character; 0 is the padding mark.
fn char_code(b: u8) -> usize {
    match b {
        b'a'..=b'z' => (b - b'a') as usize + 1,
        b'0'..=b'9' => (b - b'0') as usize + 27,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(words: &[&str]) -> Vocab {
        let mut v = Vocab::default();
        for w in words {
            v.intern(w);
        }
        v
    }

    fn expanded(v: &Vocab, token: &str) -> Vec<String> {
        let mut scratch = TrigramScratch::default();
        v.expand(token, &mut scratch)
            .into_iter()
            .map(|e| v.text(e.token).to_string())
            .collect()
    }

    #[test]
    fn interning_is_stable() {
        let mut v = vocab(&["john", "smith"]);
        assert_eq!(v.intern("john"), 0);
        assert_eq!(v.intern("jon"), 2);
        assert_eq!(v.get("smith"), Some(1));
        assert_eq!(v.text(1), "smith");
    }

    #[test]
    fn expansion_finds_spelling_variants_best_first() {
        let v = vocab(&[
            "ahmed", "ahmad", "mohammed", "muhammad", "john", "jon", "zebra",
        ]);
        assert_eq!(expanded(&v, "ahmed"), ["ahmed", "ahmad"]);
        assert_eq!(expanded(&v, "mohammad"), ["mohammed", "muhammad"]);
        let jonh = expanded(&v, "jonh");
        assert!(jonh.contains(&"john".to_string()) && jonh.contains(&"jon".to_string()));
        assert!(expanded(&v, "x").is_empty());
        assert!(expanded(&v, "qqqqqq").is_empty());
    }

    #[test]
    fn postings_follow_adds_and_removals() {
        let mut v = vocab(&["john"]);
        let posting = |name| Posting {
            name,
            weight: 4,
            kind: 1,
        };
        v.add_posting(0, posting(7));
        v.add_posting(0, posting(9));
        v.remove_posting(0, 7);
        assert_eq!(v.postings(0), [posting(9)]);
        v.remove_posting(0, 42);
        assert_eq!(v.postings(0), [posting(9)]);
    }
}
