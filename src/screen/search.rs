//! Searching the index: candidate names from the postings, full scoring of the best few,
//! one hit per entry, and the reasons each hit gives.

use std::cell::RefCell;

use foldhash::HashMap;

use super::normalise::{Analysis, MAX_TOKENS, analyse};
use super::score::{self, PairKind};
use super::vocab::{Expansion, Posting, TrigramScratch};
use super::{DEFAULT_MIN_SCORE, Hit, Query, ScreeningIndex};
use crate::pb;

/// Most postings read by one search. The rarest query token is always read (up to this
/// many postings); a more common one is read only while the budget lasts, and is checked
/// on the short-listed names instead.
const POSTINGS_BUDGET: usize = 60_000;

/// Most names scored in full for one search.
const SHORTLIST: usize = 200;

/// How far below the threshold a name's estimate may be and still be short-listed. The
/// estimate counts only the query tokens whose spellings found the name, and takes each
/// matched name token to be as long as the query token: a name found through one token may
/// still pair its other tokens with the query's when scored in full.
const ESTIMATE_SLACK: f64 = 0.30;

/// Taken off the score of a match on an alias, so that the same match on a primary name
/// ranks first.
const ALIAS_PENALTY: f64 = 0.01;

/// Query tokens beyond this many only take part in full scoring.
const GENERATING_TOKENS: usize = 32;

thread_local! {
    /// Working memory of the searches run on this thread.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Per-thread working memory, reused across searches and indexes.
#[derive(Debug, Default)]
struct Scratch {
    /// Where each name credited by this search is in `credits`. A hash table rather than
    /// an array over all names: it stays small enough for the processor's caches.
    at: HashMap<u32, u32>,
    /// The names credited by this search.
    credits: Vec<Credit>,
    trigrams: TrigramScratch,
}

/// What the postings credited to one name.
#[derive(Debug, Clone, Copy, Default)]
struct Credit {
    name: u32,
    /// Sum over matched query tokens of similarity × twice the token's weight.
    matched: f32,
    /// Sum of the weights of the matched query tokens.
    weight: u16,
    /// Which query tokens matched.
    tokens: u32,
    /// The name's own weight, from its posting.
    name_weight: u16,
    /// The entry's type, from the posting.
    kind: u8,
}

/// One query token's part in generating candidates.
#[derive(Debug)]
struct Plan {
    bit: u32,
    weight: f64,
    expansions: Vec<Expansion>,
    postings: usize,
    /// For an initial (a single letter among longer tokens), its letter: it is not looked
    /// up, but checked on the candidates against the first letter of their tokens.
    initial: Option<u8>,
}

/// The entries a query allows.
#[derive(Debug)]
struct Filter {
    kind: Option<u8>,
    /// `Some(None)`: a country no entry has, so only entries without countries pass.
    country: Option<Option<u32>>,
}

impl ScreeningIndex {
    /// The entries whose names match `query`, best first, at most `query.limit`, each at
    /// least `query.min_score`. Reads a bounded part of the index (see the module
    /// documentation).
    pub fn search(&self, query: &Query) -> Vec<Hit> {
        let analysis = analyse(&query.name);
        if analysis.tokens.is_empty() || query.limit == 0 {
            return Vec::new();
        }
        let filter = self.filter(query);
        let min_score = min_score(query);
        let shortlist = SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.shortlist(&analysis.tokens, &filter, min_score, &mut scratch),
            Err(_) => {
                let mut scratch = Scratch::default();
                self.shortlist(&analysis.tokens, &filter, min_score, &mut scratch)
            }
        });
        self.rank(&analysis, shortlist.into_iter(), query, &filter)
    }

    /// The same result as [`search`](Self::search) would give if it scored every name: the
    /// reference for measuring the indexed search. It reads the whole index, so it is far
    /// too slow for screening large lists.
    pub fn search_exhaustive(&self, query: &Query) -> Vec<Hit> {
        let analysis = analyse(&query.name);
        if analysis.tokens.is_empty() || query.limit == 0 {
            return Vec::new();
        }
        let filter = self.filter(query);
        let live = (0..self.name_meta.len() as u32).filter(|&n| self.name_meta[n as usize].live);
        self.rank(&analysis, live, query, &filter)
    }

    /// The filter `query` asks for.
    fn filter(&self, query: &Query) -> Filter {
        let kind = query
            .subject_type
            .filter(|t| *t != pb::SubjectType::Unspecified)
            .map(|t| t as u8);
        let country = query.country.as_deref().map(|c| {
            let code = c.trim().to_ascii_uppercase();
            self.country_ids.get(code.as_str()).copied()
        });
        Filter { kind, country }
    }

    /// Whether name slot `name` holds a name of an entry that `filter` allows.
    fn passes(&self, filter: &Filter, name: u32) -> bool {
        self.name_meta
            .get(name as usize)
            .is_some_and(|m| m.live && filter.allows_kind(m.kind))
            && self.allows_country(filter, name)
    }

    /// Whether the entry of name slot `name` is connected to the country `filter` asks
    /// for, or to none.
    fn allows_country(&self, filter: &Filter, name: u32) -> bool {
        let Some(country) = filter.country else {
            return true;
        };
        let entry_slot = self.names.get(name as usize).map_or(u32::MAX, |n| n.entry);
        let Some(Some(entry)) = self.entries.get(entry_slot as usize) else {
            return false;
        };
        entry.countries.is_empty() || country.is_some_and(|c| entry.countries.contains(&c))
    }

    /// The names worth scoring in full for query tokens `tokens`.
    fn shortlist(
        &self,
        tokens: &[String],
        filter: &Filter,
        min_score: f64,
        scratch: &mut Scratch,
    ) -> Vec<u32> {
        let (read, skipped) = self.plans(tokens, scratch);
        scratch.begin();
        let mut budget = POSTINGS_BUDGET;
        for plan in &read {
            for e in &plan.expansions {
                let postings = self.vocab.postings(e.token);
                let take = postings.len().min(budget);
                let credit = (2.0 * plan.weight * e.similarity) as f32;
                for posting in &postings[..take] {
                    scratch.credit(posting, plan.bit, credit, plan.weight as u16);
                }
                budget -= take;
            }
        }
        let total: f64 = tokens.iter().map(|t| score::weight(t)).sum();
        let unread: f64 = skipped.iter().map(|p| p.weight).sum();
        let floor = min_score - ESTIMATE_SLACK;
        let mut estimates: Vec<(f64, u32)> = scratch
            .credits
            .iter()
            .filter(|c| bound(c, total, unread) >= floor)
            .filter(|c| filter.allows_kind(c.kind) && self.allows_country(filter, c.name))
            .map(|c| (estimate(c, total), c.name))
            .collect();
        if !skipped.is_empty() {
            // Check the tokens whose postings were not read on the best candidates.
            keep_best(&mut estimates, SHORTLIST * 4);
            for (estimate_of, name) in &mut estimates {
                let credit = self.check_unread(*name, &skipped, scratch);
                *estimate_of = estimate(&credit, total);
            }
        }
        keep_best(&mut estimates, SHORTLIST);
        estimates.into_iter().map(|(_, name)| name).collect()
    }

    /// The query tokens in the order their postings are read (rarest first, while the
    /// budget lasts), and those left to be checked on candidates: tokens too common to
    /// read, and initials (unless the query is made only of initials).
    fn plans(&self, tokens: &[String], scratch: &mut Scratch) -> (Vec<Plan>, Vec<Plan>) {
        let all_initials = tokens.iter().all(|t| t.len() == 1);
        let mut plans = Vec::new();
        let mut skipped = Vec::new();
        for (i, t) in tokens.iter().take(GENERATING_TOKENS).enumerate() {
            let mut plan = Plan {
                bit: 1 << i,
                weight: score::weight(t),
                expansions: Vec::new(),
                postings: 0,
                initial: None,
            };
            if t.len() == 1 && !all_initials {
                plan.initial = t.bytes().next();
                skipped.push(plan);
                continue;
            }
            plan.expansions = self.vocab.expand(t, &mut scratch.trigrams);
            plan.postings = plan
                .expansions
                .iter()
                .map(|e| self.vocab.postings(e.token).len())
                .sum();
            plans.push(plan);
        }
        plans.sort_by_key(|p| p.postings);
        let mut budget = POSTINGS_BUDGET;
        let mut read = Vec::new();
        for plan in plans {
            if read.is_empty() || plan.postings <= budget {
                budget = budget.saturating_sub(plan.postings);
                read.push(plan);
            } else {
                skipped.push(plan);
            }
        }
        (read, skipped)
    }

    /// The credit of `name` with the tokens of `skipped` checked against its own tokens.
    fn check_unread(&self, name: u32, skipped: &[Plan], scratch: &Scratch) -> Credit {
        let Some(mut credit) = scratch.credit_of(name) else {
            return Credit::default();
        };
        let Some(rec) = self.names.get(name as usize) else {
            return credit;
        };
        for plan in skipped {
            let best = match plan.initial {
                Some(letter) => rec
                    .tokens
                    .iter()
                    .any(|&t| self.vocab.text(t).as_bytes().first() == Some(&letter))
                    .then_some(score::INITIAL),
                None => plan
                    .expansions
                    .iter()
                    .find(|e| rec.tokens.contains(&e.token))
                    .map(|e| e.similarity),
            };
            if let Some(similarity) = best {
                credit.matched += (2.0 * plan.weight * similarity) as f32;
                credit.weight = credit.weight.saturating_add(plan.weight as u16);
                credit.tokens |= plan.bit;
            }
        }
        credit
    }

    /// Scores the names `names` in full, keeps each entry's best, and returns the best
    /// entries as hits.
    fn rank(
        &self,
        analysis: &Analysis,
        names: impl Iterator<Item = u32>,
        query: &Query,
        filter: &Filter,
    ) -> Vec<Hit> {
        let min_score = min_score(query);
        let mut scored: Vec<(f64, u32, u32)> = Vec::new();
        for name in names {
            if !self.passes(filter, name) {
                continue;
            }
            let score = self.score_name(&analysis.tokens, name);
            if score >= min_score {
                scored.push((score, self.names[name as usize].entry, name));
            }
        }
        // One hit per entry, its best name; then best first, ties by list and entry id.
        scored.sort_by(|a, b| a.1.cmp(&b.1).then(b.0.total_cmp(&a.0)).then(a.2.cmp(&b.2)));
        scored.dedup_by_key(|s| s.1);
        scored.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.entry_key_cmp(a.1, b.1))
        });
        scored.truncate(query.limit);
        scored
            .into_iter()
            .filter_map(|(score, _, name)| self.hit(analysis, score, name))
            .collect()
    }

    /// The full score of name slot `name` for query tokens `tokens`.
    fn score_name(&self, tokens: &[String], name: u32) -> f64 {
        let Some(rec) = self.names.get(name as usize) else {
            return 0.0;
        };
        let mut texts = [""; MAX_TOKENS];
        let count = rec.tokens.len().min(MAX_TOKENS);
        for (text, &t) in texts.iter_mut().zip(rec.tokens.iter()) {
            *text = self.vocab.text(t);
        }
        let score = score::similarity(tokens, &texts[..count]);
        if rec.alias.is_some() {
            (score - ALIAS_PENALTY).max(0.0)
        } else {
            score
        }
    }

    /// Orders entry slots by list name, then entry id.
    fn entry_key_cmp(&self, a: u32, b: u32) -> std::cmp::Ordering {
        let key = |slot: u32| {
            self.entries
                .get(slot as usize)
                .and_then(Option::as_ref)
                .map(|e| (self.lists[e.list as usize].name.as_str(), &*e.id))
        };
        key(a).cmp(&key(b))
    }

    /// The hit for name slot `name`, scored `score`, with its reasons.
    fn hit(&self, analysis: &Analysis, score: f64, name: u32) -> Option<Hit> {
        let rec = self.names.get(name as usize)?;
        let entry = self.entries.get(rec.entry as usize)?.as_ref()?;
        let matched = rec.alias.as_deref().unwrap_or(&entry.primary);
        Some(Hit {
            score,
            list: self.lists[entry.list as usize].name.clone(),
            entry_id: entry.id.to_string(),
            matched_name: matched.to_string(),
            primary_name: entry.primary.to_string(),
            why: explain(analysis, matched, rec.alias.is_some()),
        })
    }
}

/// The reasons a query (analysed) matched the published name `matched`.
fn explain(query: &Analysis, matched: &str, is_alias: bool) -> Vec<String> {
    let name = analyse(matched);
    let outcome = score::compare(&query.tokens, &name.tokens);
    let mut why = Vec::new();
    if is_alias {
        why.push("alias".to_string());
    }
    let all_exact = outcome.pairs.iter().all(|p| p.kind == PairKind::Exact);
    if all_exact
        && outcome.pairs.len() == query.tokens.len()
        && outcome.pairs.len() == name.tokens.len()
    {
        why.push("all tokens equal".to_string());
    }
    if outcome.reordered {
        why.push("word order ignored".to_string());
    }
    for p in &outcome.pairs {
        let (q, n) = (&query.tokens[p.query], &name.tokens[p.name]);
        match p.kind {
            PairKind::Exact => {}
            PairKind::Initial if q.len() == 1 => why.push(format!(
                "initial '{}' matched '{}'",
                q.to_ascii_uppercase(),
                n.to_ascii_uppercase()
            )),
            PairKind::Initial => why.push(format!(
                "'{}' matched initial '{}'",
                q.to_ascii_uppercase(),
                n.to_ascii_uppercase()
            )),
            PairKind::Fuzzy(jw) => why.push(format!("token match: '{q}'~'{n}' {jw:.2}")),
        }
    }
    for (i, q) in query.tokens.iter().enumerate() {
        if !outcome.pairs.iter().any(|p| p.query == i) {
            why.push(format!("query token '{q}' not matched"));
        }
    }
    for (j, n) in name.tokens.iter().enumerate() {
        if !outcome.pairs.iter().any(|p| p.name == j) {
            why.push(format!("name token '{n}' not in query"));
        }
    }
    let mut legal: Vec<&String> = query.legal_forms.iter().chain(&name.legal_forms).collect();
    legal.sort();
    legal.dedup();
    for form in legal {
        why.push(format!(
            "legal form '{}' ignored",
            form.to_ascii_uppercase()
        ));
    }
    if query.transliterated || name.transliterated {
        why.push("accents or script transliterated".to_string());
    }
    why
}

/// The threshold `query` asks for, in 0..=1 (the default when it is not a number).
fn min_score(query: &Query) -> f64 {
    if query.min_score.is_nan() {
        DEFAULT_MIN_SCORE
    } else {
        query.min_score.clamp(0.0, 1.0)
    }
}

/// An estimate of the score of a name from its credit: each matched name token is taken to
/// weigh what the query token it matched weighs.
fn estimate(credit: &Credit, total: f64) -> f64 {
    let matched_weight = f64::from(credit.weight);
    let unpaired_name = (f64::from(credit.name_weight) - matched_weight).max(0.0);
    let den = matched_weight + total + score::UNPAIRED_NAME * unpaired_name;
    if den > 0.0 {
        f64::from(credit.matched) / den
    } else {
        0.0
    }
}

/// The best score a credited name could reach if every unread token matched it exactly.
fn bound(credit: &Credit, total: f64, unread: f64) -> f64 {
    let matched = f64::from(credit.weight);
    let den = matched + unread + total;
    if den > 0.0 {
        (f64::from(credit.matched) + 2.0 * unread) / den
    } else {
        0.0
    }
}

/// Keeps the `n` best estimates (in no order).
fn keep_best(estimates: &mut Vec<(f64, u32)>, n: usize) {
    if estimates.len() > n {
        estimates.select_nth_unstable_by(n, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        estimates.truncate(n);
    }
}

impl Filter {
    /// Whether an entry of type `kind` (a `pb::SubjectType` number) passes: it is of the
    /// type asked for, or of no stated type.
    fn allows_kind(&self, kind: u8) -> bool {
        self.kind
            .is_none_or(|k| kind == k || kind == pb::SubjectType::Unspecified as u8)
    }
}

impl Scratch {
    /// Starts a search.
    fn begin(&mut self) {
        self.at.clear();
        self.credits.clear();
    }

    /// Credits the name of `posting` for query token `bit`, unless that token already
    /// credited it (through a more similar spelling, read earlier).
    fn credit(&mut self, posting: &Posting, bit: u32, matched: f32, weight: u16) {
        let next = self.credits.len() as u32;
        let at = *self.at.entry(posting.name).or_insert(next);
        if at == next {
            self.credits.push(Credit {
                name: posting.name,
                matched: 0.0,
                weight: 0,
                tokens: 0,
                name_weight: posting.weight,
                kind: posting.kind,
            });
        }
        let c = &mut self.credits[at as usize];
        if c.tokens & bit == 0 {
            c.tokens |= bit;
            c.matched += matched;
            c.weight = c.weight.saturating_add(weight);
        }
    }

    /// What this search credited to `name` so far (a credited name).
    fn credit_of(&self, name: u32) -> Option<Credit> {
        self.at.get(&name).map(|&at| self.credits[at as usize])
    }
}
