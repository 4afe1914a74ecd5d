//! How alike a query and one name are: a token-set similarity built on Jaro-Winkler.
//!
//! Each query token is paired with at most one name token, greedily, best pair first, so
//! word order does not matter. A pair scores 1 when the tokens are equal, [`INITIAL`] when
//! one is a single letter that begins the other ("j" and "john"), and the Jaro-Winkler
//! similarity scaled by [`FUZZY`] otherwise, so that no fuzzy pair ever reaches an exact
//! one. Pairs below [`PAIR_MIN`] are not made.
//!
//! Tokens weigh their length. The score is the weighted mean of the pair scores over all
//! tokens, where a query token left unpaired counts fully against the score and a name
//! token left unpaired counts [`UNPAIRED_NAME`] against it: a listed name with a middle
//! name the analyst does not know is still found, while a query word that the name lacks
//! weighs more. A match that needed the word order changed loses [`REORDERED`].

/// Score of a single letter paired with a token it begins.
pub(crate) const INITIAL: f64 = 0.90;

/// Scale of the Jaro-Winkler similarity of two tokens that differ.
pub(crate) const FUZZY: f64 = 0.97;

/// Lowest Jaro-Winkler similarity at which two differing tokens pair.
pub(crate) const PAIR_MIN: f64 = 0.75;

/// Weight, relative to its length, of a name token that no query token paired with.
pub(crate) const UNPAIRED_NAME: f64 = 0.5;

/// Taken off a score whose pairs are not in the order of the query.
pub(crate) const REORDERED: f64 = 0.005;

use super::normalise::MAX_TOKENS;

/// How two tokens were paired.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PairKind {
    /// The tokens are equal.
    Exact,
    /// One token is a single letter that begins the other.
    Initial,
    /// Jaro-Winkler similarity, before scaling.
    Fuzzy(f64),
}

/// One pairing of a query token with a name token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pair {
    /// Index of the query token.
    pub query: usize,
    /// Index of the name token.
    pub name: usize,
    /// How they were paired.
    pub kind: PairKind,
    /// Score of the pair, 0 to 1.
    pub score: f64,
}

/// The outcome of comparing a query with a name.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Outcome {
    /// Score, 0 to 1.
    pub score: f64,
    /// The pairs made, in query order.
    pub pairs: Vec<Pair>,
    /// Whether the pairs are out of query order.
    pub reordered: bool,
}

/// The weight of a token: its length in bytes (tokens are ASCII).
pub(crate) fn weight(token: &str) -> f64 {
    token.len() as f64
}

/// How alike two tokens are, or `None` when they do not pair.
pub(crate) fn pair_tokens(a: &str, b: &str) -> Option<(PairKind, f64)> {
    if a == b {
        return Some((PairKind::Exact, 1.0));
    }
    if a.len() == 1 || b.len() == 1 {
        let same_initial = a.as_bytes().first() == b.as_bytes().first();
        return same_initial.then_some((PairKind::Initial, INITIAL));
    }
    let jw = jaro_winkler(a.as_bytes(), b.as_bytes());
    (jw >= PAIR_MIN).then_some((PairKind::Fuzzy(jw), jw * FUZZY))
}

/// Jaro-Winkler similarity of two byte strings (Winkler's prefix scale 0.1 over at most
/// four bytes, applied above 0.7), as `strsim::jaro_winkler` computes it for ASCII text,
/// without allocating. Only the first 64 bytes of each side count; tokens are shorter.
pub(crate) fn jaro_winkler(a: &[u8], b: &[u8]) -> f64 {
    let a = &a[..a.len().min(64)];
    let b = &b[..b.len().min(64)];
    let sim = jaro(a, b);
    if sim > 0.7 {
        let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
        sim + 0.1 * prefix as f64 * (1.0 - sim)
    } else {
        sim
    }
}

/// Jaro similarity of two byte strings of at most 64 bytes, match flags kept in bit sets.
fn jaro(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return if a.len() == b.len() { 1.0 } else { 0.0 };
    }
    let range = (a.len().max(b.len()) / 2).saturating_sub(1);
    let (mut a_flags, mut b_flags) = (0u64, 0u64);
    let mut matches = 0u32;
    for (i, &x) in a.iter().enumerate() {
        let window = b
            .iter()
            .enumerate()
            .take(i + range + 1)
            .skip(i.saturating_sub(range));
        for (j, &y) in window {
            if b_flags & (1 << j) == 0 && y == x {
                a_flags |= 1 << i;
                b_flags |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    // Matched bytes of each side, taken in order, disagree in twice the transpositions.
    let mut half_transpositions = 0u32;
    while a_flags != 0 {
        let (i, j) = (a_flags.trailing_zeros(), b_flags.trailing_zeros());
        a_flags &= a_flags - 1;
        b_flags &= b_flags - 1;
        half_transpositions += u32::from(a[i as usize] != b[j as usize]);
    }
    let m = f64::from(matches);
    let t = f64::from(half_transpositions / 2);
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

/// Compares query tokens with name tokens and says how (see the module documentation).
pub(crate) fn compare<Q: AsRef<str>, N: AsRef<str>>(query: &[Q], name: &[N]) -> Outcome {
    let mut pairs = Vec::new();
    let (score, reordered) = pair_up(query, name, |p| pairs.push(p));
    pairs.sort_by_key(|p| p.query);
    Outcome {
        score,
        pairs,
        reordered,
    }
}

/// The score [`compare`] gives, without the pairs.
pub(crate) fn similarity<Q: AsRef<str>, N: AsRef<str>>(query: &[Q], name: &[N]) -> f64 {
    pair_up(query, name, |_| {}).0
}

/// A candidate pair while pairing: its score (0 for none) and kind.
#[derive(Clone, Copy)]
struct Cell {
    score: f64,
    kind: PairKind,
}

const NO_CELL: Cell = Cell {
    score: 0.0,
    kind: PairKind::Exact,
};

/// Pairs tokens greedily, best pair first (among equals, the one nearer the diagonal, then
/// the earlier), hands each pair to `emit`, and returns the score and whether the pairs are
/// out of query order. At most [`MAX_TOKENS`] tokens of each side count.
fn pair_up<Q: AsRef<str>, N: AsRef<str>>(
    query: &[Q],
    name: &[N],
    mut emit: impl FnMut(Pair),
) -> (f64, bool) {
    let query = &query[..query.len().min(MAX_TOKENS)];
    let name = &name[..name.len().min(MAX_TOKENS)];
    let (m, n) = (query.len(), name.len());
    let mut small = [NO_CELL; 64];
    let mut large = Vec::new();
    let cells: &mut [Cell] = if m * n <= small.len() {
        &mut small[..m * n]
    } else {
        large.resize(m * n, NO_CELL);
        &mut large
    };
    for (i, q) in query.iter().enumerate() {
        for (j, t) in name.iter().enumerate() {
            if let Some((kind, score)) = pair_tokens(q.as_ref(), t.as_ref()) {
                cells[i * n + j] = Cell { score, kind };
            }
        }
    }

    let (mut query_used, mut name_used) = (0u32, 0u32);
    let mut name_of = [usize::MAX; MAX_TOKENS];
    let (mut matched, mut total) = (0.0, 0.0);
    loop {
        let mut best: Option<(usize, usize)> = None;
        for i in (0..m).filter(|i| query_used & (1 << i) == 0) {
            for j in (0..n).filter(|j| name_used & (1 << j) == 0) {
                let c = cells[i * n + j].score;
                let better = match best {
                    None => c > 0.0,
                    Some((bi, bj)) => {
                        let b = cells[bi * n + bj].score;
                        c > b || (c == b && i.abs_diff(j) < bi.abs_diff(bj))
                    }
                };
                if better {
                    best = Some((i, j));
                }
            }
        }
        let Some((i, j)) = best else { break };
        query_used |= 1 << i;
        name_used |= 1 << j;
        name_of[i] = j;
        let cell = cells[i * n + j];
        let w = weight(query[i].as_ref()) + weight(name[j].as_ref());
        matched += cell.score * w;
        total += w;
        emit(Pair {
            query: i,
            name: j,
            kind: cell.kind,
            score: cell.score,
        });
    }
    for (i, q) in query.iter().enumerate() {
        if query_used & (1 << i) == 0 {
            total += weight(q.as_ref());
        }
    }
    for (j, t) in name.iter().enumerate() {
        if name_used & (1 << j) == 0 {
            total += UNPAIRED_NAME * weight(t.as_ref());
        }
    }
    let mut paired = name_of[..m].iter().filter(|&&j| j != usize::MAX);
    let mut last = paired.next().copied().unwrap_or(0);
    let reordered = paired.any(|&j| {
        let out_of_order = j < last;
        last = j;
        out_of_order
    });
    let mut score = if total > 0.0 { matched / total } else { 0.0 };
    if reordered {
        score = (score - REORDERED).max(0.0);
    }
    (score, reordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(q: &[&str], n: &[&str]) -> f64 {
        compare(q, n).score
    }

    #[test]
    fn equal_tokens_in_order_score_one() {
        assert_eq!(score(&["john", "smith"], &["john", "smith"]), 1.0);
    }

    #[test]
    fn word_order_costs_only_a_little() {
        let o = compare(&["smith", "john"], &["john", "smith"]);
        assert!(o.reordered);
        assert_eq!(o.score, 1.0 - REORDERED);
    }

    #[test]
    fn a_fuzzy_match_stays_below_an_exact_one() {
        let s = score(&["ahmad", "hassan"], &["ahmed", "hassan"]);
        assert!(s > 0.9 && s < 0.99, "{s}");
        assert_eq!(score(&["zzzz"], &["john"]), 0.0);
    }

    #[test]
    fn an_initial_pairs_with_a_name_it_begins() {
        let o = compare(&["j", "smith"], &["john", "smith"]);
        assert_eq!(o.pairs[0].kind, PairKind::Initial);
        assert!(o.score > 0.95, "{}", o.score);
        assert!(pair_tokens("k", "john").is_none());
    }

    #[test]
    fn unpaired_query_tokens_cost_more_than_unpaired_name_tokens() {
        let extra_in_name = score(&["john", "smith"], &["john", "paul", "smith"]);
        let extra_in_query = score(&["john", "paul", "smith"], &["john", "smith"]);
        assert!(extra_in_name > extra_in_query);
        assert!(extra_in_name > 0.8, "{extra_in_name}");
    }

    #[test]
    fn jaro_winkler_agrees_with_strsim() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "john",
            "jon",
            "jonathan",
            "smith",
            "smythe",
            "ahmed",
            "ahmad",
            "mohammed",
            "muhammad",
            "mohamad",
            "dixon",
            "dicksonx",
            "martha",
            "marhta",
            "crate",
            "trace",
            "aaaa",
            "aaab",
            "abcdefghijklmnopqrstuvwxyz0123456789abcdefghij",
        ];
        for a in words {
            for b in words {
                let ours = jaro_winkler(a.as_bytes(), b.as_bytes());
                let theirs = strsim::jaro_winkler(a, b);
                assert!(
                    (ours - theirs).abs() < 1e-12,
                    "{a:?} {b:?}: {ours} vs {theirs}"
                );
            }
        }
    }

    #[test]
    fn similarity_is_the_score_of_compare() {
        let q = ["ahmad", "hasan", "al", "rashid", "j"];
        let n = ["rashid", "al", "ahmed", "hassan", "john", "x"];
        assert_eq!(similarity(&q, &n), compare(&q, &n).score);
        let long: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        assert_eq!(similarity(&long, &long), 1.0);
    }

    #[test]
    fn empty_sides_score_zero() {
        assert_eq!(score(&[], &["john"]), 0.0);
        assert_eq!(score(&["john"], &[]), 0.0);
        assert_eq!(score(&[], &[]), 0.0);
    }
}
