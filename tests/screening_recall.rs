//! Screening quality on the real OFAC SDN list of July 2021.
//!
//! Every SDN entry is indexed with its primary name and its aliases. Then every alias in
//! `alt.csv` is searched twice, (a) with its accents stripped and (b) with its word order
//! reversed, and its own entry must be among the first three hits. The same queries are run
//! on a sample through two scans of every name, so that the figures can be compared: the
//! index's own scorer applied to every name (what the index would find if it read
//! everything), and a plain Jaro-Winkler similarity of the whole lower-cased names.
//!
//! The files are read from `$ENTENTE_WATCHLIST_DATA/ofac_sdn_2021-07/`, by default from
//! `../shared/data/watchlists/` beside the crate; without them the test says so and passes.
//! They are parsed here, in the simplest way, rather than by the importers.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use entente::pb;
use entente::screen::{Query, ScreeningIndex, normalise};
use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

const LIST: &str = "US-TREAS/sdn";

/// Hits examined: the alias's own entry must be among them.
const TOP: usize = 3;

/// Recall required of the index for both kinds of query.
const MIN_RECALL: f64 = 0.95;

/// Aliases in the sample compared with the scans (fewer in unoptimised builds, where the
/// scans are slow).
const SAMPLE: usize = if cfg!(debug_assertions) { 40 } else { 500 };

/// One alias and the entry it belongs to.
struct Alias {
    entry: String,
    name: String,
}

#[test]
fn every_alias_finds_its_entry_in_the_top_three() {
    let Some((entries, aliases)) = load() else {
        return;
    };
    let started = Instant::now();
    let index = build(&entries);
    println!(
        "indexed {} SDN entries ({} names) in {:?}",
        index.len(),
        index.name_count(),
        started.elapsed()
    );
    assert_eq!(index.len(), entries.len());

    let stripped: Vec<String> = aliases.iter().map(|a| strip_accents(&a.name)).collect();
    let reversed: Vec<String> = aliases.iter().map(|a| reverse_words(&a.name)).collect();
    let (recall_a, times_a, crowded_a, misses_a) = run_index(&index, &aliases, &stripped);
    let (recall_b, times_b, crowded_b, misses_b) = run_index(&index, &aliases, &reversed);
    let times: Vec<Duration> = times_a.into_iter().chain(times_b).collect();
    println!("{} aliases, own entry in the top {TOP}:", aliases.len());
    for (kind, recall, crowded, misses) in [
        ("(a) accents stripped", recall_a, crowded_a, &misses_a),
        ("(b) word order reversed", recall_b, crowded_b, &misses_b),
    ] {
        println!(
            "  {kind}: index recall {recall:.4}; of the misses, {crowded} are names that at \
             least {TOP} other entries bear as well (the first {TOP} hits bear it), {} are not",
            misses.len()
        );
    }
    println!(
        "  index latency over {} queries: p50 {:?}, p99 {:?}",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99)
    );
    report_misses("a", &misses_a);
    report_misses("b", &misses_b);

    compare_with_scans(&index, &entries, &aliases, &stripped, &reversed);

    assert!(
        recall_a >= MIN_RECALL,
        "recall (a) {recall_a:.4} below {MIN_RECALL}"
    );
    assert!(
        recall_b >= MIN_RECALL,
        "recall (b) {recall_b:.4} below {MIN_RECALL}"
    );
}

/// Each alias searched as published in an index where its entry lacks that alias, so that
/// only the entry's other names (the primary name, the other aliases) can find it: how
/// well real spelling variants match. Measured against the scorer applied to every name on
/// a sample, which shows what the index's candidate generation loses.
#[test]
fn aliases_find_their_entry_through_its_other_names() {
    let Some((entries, aliases)) = load() else {
        return;
    };
    let mut index = build(&entries);
    let by_id: HashMap<&str, &pb::WatchlistEntry> =
        entries.iter().map(|e| (e.id.as_str(), e)).collect();
    let step = (aliases.len() / SAMPLE).max(1);
    let (mut found_index, mut sample_index, mut sample_all, mut sampled) = (0, 0, 0, 0);
    for (i, alias) in aliases.iter().enumerate() {
        let entry = by_id[alias.entry.as_str()];
        let mut without = entry.clone();
        let at = without
            .aliases
            .iter()
            .position(|a| *a == alias.name)
            .unwrap();
        without.aliases.remove(at);
        index.upsert(LIST, &without);
        let query = Query {
            limit: TOP,
            ..Query::new(alias.name.as_str())
        };
        let ids = |hits: Vec<entente::screen::Hit>| -> Vec<String> {
            hits.into_iter().map(|h| h.entry_id).collect()
        };
        let hit = found(&ids(index.search(&query)), &alias.entry);
        found_index += usize::from(hit);
        if i % step == 0 && sampled < SAMPLE {
            sampled += 1;
            sample_index += usize::from(hit);
            let all = found(&ids(index.search_exhaustive(&query)), &alias.entry);
            sample_all += usize::from(all);
            if all && !hit {
                let best = index.search_exhaustive(&query);
                let own = best.iter().find(|h| h.entry_id == alias.entry).unwrap();
                println!(
                    "  only the scan finds {:?} -> {:?} {:.3} {:?}",
                    alias.name, own.matched_name, own.score, own.why
                );
            }
        }
        index.upsert(LIST, entry);
    }
    let n = aliases.len() as f64;
    let (index_recall, all_recall) = (
        sample_index as f64 / sampled as f64,
        sample_all as f64 / sampled as f64,
    );
    println!(
        "each alias, its entry holding only its other names, own entry in the top {TOP}: index \
         {:.4} over {} aliases; on a sample of {sampled}: index {index_recall:.4}, scorer on \
         every name {all_recall:.4}",
        found_index as f64 / n,
        aliases.len(),
    );
    assert!(
        index_recall >= all_recall - 0.01,
        "the index ({index_recall:.4}) loses more than a point to the scan ({all_recall:.4})"
    );
}

/// The SDN entries with their aliases, and the aliases; `None` (said) without the files.
fn load() -> Option<(Vec<pb::WatchlistEntry>, Vec<Alias>)> {
    let dir = data_dir().join("ofac_sdn_2021-07");
    if !dir.join("sdn.csv").exists() || !dir.join("alt.csv").exists() {
        println!(
            "skipped: real watchlist data not found at {}",
            dir.display()
        );
        return None;
    }
    let mut entries = read_sdn(&dir.join("sdn.csv"));
    let aliases = read_aliases(&dir.join("alt.csv"), &entries);
    for alias in &aliases {
        let entry = entries.get_mut(&alias.entry).unwrap();
        entry.aliases.push(alias.name.clone());
    }
    let mut entries: Vec<pb::WatchlistEntry> = entries.into_values().collect();
    entries.sort_by_key(|e| e.id.parse::<u64>().unwrap_or(0));
    Some((entries, aliases))
}

/// An index of `entries`, in list `LIST`.
fn build(entries: &[pb::WatchlistEntry]) -> ScreeningIndex {
    let mut index = ScreeningIndex::new();
    for entry in entries {
        index.upsert(LIST, entry);
    }
    index
}

/// The base directory of the real watchlist files.
fn data_dir() -> PathBuf {
    std::env::var_os("ENTENTE_WATCHLIST_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/watchlists"),
        PathBuf::from,
    )
}

/// The rows of a headerless OFAC CSV file, skipping the trailing Ctrl-Z line.
fn rows(path: &Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r.get(0).is_some_and(|id| id.trim().parse::<u64>().is_ok()))
        .map(|r| r.iter().map(|f| f.trim().to_string()).collect())
        .collect()
}

/// An OFAC field, or `None` for the null `-0-`.
fn field(row: &[String], at: usize) -> Option<&str> {
    row.get(at)
        .map(String::as_str)
        .filter(|f| *f != "-0-" && !f.is_empty())
}

/// The SDN entries by ent_num.
fn read_sdn(path: &Path) -> HashMap<String, pb::WatchlistEntry> {
    rows(path)
        .iter()
        .map(|row| {
            let kind = match field(row, 2) {
                Some("individual") => pb::SubjectType::Person,
                Some("vessel") => pb::SubjectType::Vessel,
                Some("aircraft") => pb::SubjectType::Aircraft,
                _ => pb::SubjectType::Organisation,
            };
            let entry = pb::WatchlistEntry {
                id: row[0].clone(),
                r#type: kind as i32,
                name: field(row, 1).unwrap_or_default().to_string(),
                ..Default::default()
            };
            (entry.id.clone(), entry)
        })
        .collect()
}

/// The aliases of `alt.csv` whose entry is in the SDN file.
fn read_aliases(path: &Path, entries: &HashMap<String, pb::WatchlistEntry>) -> Vec<Alias> {
    let aliases: Vec<Alias> = rows(path)
        .iter()
        .filter_map(|row| {
            Some(Alias {
                entry: row[0].clone(),
                name: field(row, 3)?.to_string(),
            })
        })
        .collect();
    let total = aliases.len();
    let known: Vec<Alias> = aliases
        .into_iter()
        .filter(|a| entries.contains_key(&a.entry))
        .collect();
    assert!(
        known.len() * 100 >= total * 99,
        "most aliases belong to SDN entries"
    );
    known
}

/// `name` without its combining marks (accents).
fn strip_accents(name: &str) -> String {
    name.nfd().filter(|c| !is_combining_mark(*c)).collect()
}

/// `name` with its words in reverse order, commas dropped ("AL-RASHID, Ahmed Hassan"
/// becomes "Hassan Ahmed AL-RASHID").
fn reverse_words(name: &str) -> String {
    let words: Vec<&str> = name
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .rev()
        .collect();
    words.join(" ")
}

/// Whether `hits` (entry ids, best first) hold `entry` in the first [`TOP`].
fn found(hits: &[String], entry: &str) -> bool {
    hits.iter().take(TOP).any(|h| h == entry)
}

/// Runs `queries` (one per alias) through the index: recall, latencies, the number of
/// misses where other entries bearing the same name fill the first hits, other misses.
fn run_index(
    index: &ScreeningIndex,
    aliases: &[Alias],
    queries: &[String],
) -> (f64, Vec<Duration>, usize, Vec<String>) {
    let mut times = Vec::with_capacity(queries.len());
    let mut misses = Vec::new();
    let mut crowded_out = 0;
    let mut hits_found = 0;
    for (alias, text) in aliases.iter().zip(queries) {
        let query = Query {
            limit: TOP,
            ..Query::new(text.as_str())
        };
        let started = Instant::now();
        let hits = index.search(&query);
        times.push(started.elapsed());
        let ids: Vec<String> = hits.iter().map(|h| h.entry_id.clone()).collect();
        if found(&ids, &alias.entry) {
            hits_found += 1;
        } else if crowded(&hits, text) {
            crowded_out += 1;
        } else {
            let got: Vec<String> = hits
                .iter()
                .map(|h| format!("{}:{} {:.3}", h.entry_id, h.matched_name, h.score))
                .collect();
            misses.push(format!("{} {:?} -> {:?}", alias.entry, text, got));
        }
    }
    (
        hits_found as f64 / queries.len() as f64,
        times,
        crowded_out,
        misses,
    )
}

/// Whether the first [`TOP`] hits all bear the very name searched for (`text`), in
/// normalised form: more entries than are shown bear that name.
fn crowded(hits: &[entente::screen::Hit], text: &str) -> bool {
    let tokens = |name: &str| {
        let mut t = normalise(name);
        t.sort();
        t
    };
    let wanted = tokens(text);
    hits.len() == TOP && hits.iter().all(|h| tokens(&h.matched_name) == wanted)
}

/// Prints the first few misses of query kind `kind`.
fn report_misses(kind: &str, misses: &[String]) {
    for miss in misses.iter().take(12) {
        println!("  miss ({kind}): {miss}");
    }
}

/// Runs a sample of the queries through the index, through the index's scorer applied to
/// every name, and through a plain whole-name Jaro-Winkler scan, and prints the recalls.
fn compare_with_scans(
    index: &ScreeningIndex,
    entries: &[pb::WatchlistEntry],
    aliases: &[Alias],
    stripped: &[String],
    reversed: &[String],
) {
    let names: Vec<(String, &str)> = entries
        .iter()
        .flat_map(|e| {
            std::iter::once(&e.name)
                .chain(&e.aliases)
                .map(|n| (n.to_lowercase(), e.id.as_str()))
        })
        .collect();
    let step = (aliases.len() / SAMPLE).max(1);
    let sample: Vec<usize> = (0..aliases.len()).step_by(step).take(SAMPLE).collect();
    println!(
        "sample of {} aliases (every {step}th), own entry in the top {TOP}:",
        sample.len()
    );
    for (kind, queries) in [
        ("(a) accents stripped", stripped),
        ("(b) word order reversed", reversed),
    ] {
        let mut counts = [0usize; 3];
        let mut times = [Duration::ZERO; 3];
        for &i in &sample {
            let entry = aliases[i].entry.as_str();
            let query = Query {
                limit: TOP,
                ..Query::new(queries[i].as_str())
            };
            let runs: [&dyn Fn() -> Vec<String>; 3] = [
                &|| {
                    index
                        .search(&query)
                        .into_iter()
                        .map(|h| h.entry_id)
                        .collect()
                },
                &|| {
                    index
                        .search_exhaustive(&query)
                        .into_iter()
                        .map(|h| h.entry_id)
                        .collect()
                },
                &|| plain_scan(&names, &queries[i]),
            ];
            for (k, run) in runs.iter().enumerate() {
                let started = Instant::now();
                let hits = run();
                times[k] += started.elapsed();
                counts[k] += usize::from(found(&hits, entry));
            }
        }
        let n = sample.len() as f64;
        println!(
            "  {kind}: index {:.4} ({:?}/query), scorer on every name {:.4} ({:?}/query), \
             plain Jaro-Winkler scan {:.4} ({:?}/query)",
            counts[0] as f64 / n,
            times[0] / sample.len() as u32,
            counts[1] as f64 / n,
            times[1] / sample.len() as u32,
            counts[2] as f64 / n,
            times[2] / sample.len() as u32,
        );
    }
}

/// The entries of the [`TOP`] names most similar to `query` by Jaro-Winkler over the whole
/// lower-cased text, one per entry.
fn plain_scan(names: &[(String, &str)], query: &str) -> Vec<String> {
    let query = query.to_lowercase();
    let mut best: HashMap<&str, f64> = HashMap::new();
    for (name, entry) in names {
        let score = strsim::jaro_winkler(&query, name);
        let slot = best.entry(entry).or_insert(0.0);
        *slot = slot.max(score);
    }
    let mut ranked: Vec<(&str, f64)> = best.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(TOP)
        .map(|(e, _)| e.to_string())
        .collect()
}

/// The `p` quantile of `times`.
fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}
