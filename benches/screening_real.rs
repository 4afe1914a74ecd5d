//! Import and screening on the real published lists in `../shared/data/watchlists/` (or
//! the directory named by `ENTENTE_WATCHLIST_DATA`); read that directory's README.
//!
//! 1. Import: `watchlist::import` of each real file set, timed over several runs (median,
//!    best, worst): the full OFAC SDN files of July 2021; the December 2025 partial SDN
//!    set (its add.csv, alt.csv and sdn_comments.csv beside the 2021 sdn.csv, since its own
//!    sdn.csv is not in the data: most of its rows then name entries the 2021 file lacks
//!    and are reported as row errors); OFAC's consolidated list of December 2025; the
//!    Consolidated Screening List and the BIS Denied Persons List of November 2023; the UN
//!    Security Council list of February 2026.
//! 2. Index: building the screening index from the SDN list alone, and from the five
//!    lists together (SDN 2021, OFAC consolidated, CSL, DPL, UN), with the process's
//!    resident memory before and after.
//! 3. Screening over the five lists together: names taken evenly from every list (primary
//!    names and aliases) are searched (a) with their accents stripped and (b) with their
//!    word order reversed; latency p50/p99 of the index, and recall (the name's own entry
//!    in the first 3 and the first 10 hits). An even sample of the same queries goes, in
//!    the same run, through two brute-force scans: the index's own scorer applied to every
//!    name, and a plain `strsim::jaro_winkler` of the whole normalised names (tokens
//!    sorted).
//!
//! Without the data, it says so and does nothing. Run with
//! `cargo bench --bench screening_real`. Environment: `ENTENTE_IMPORT_RUNS` (runs of each
//! import and build, default 5), `ENTENTE_REAL_NAMES` (names searched, default 1,000, two
//! queries each), `ENTENTE_REAL_BRUTE` (queries through the scans, default 500).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use entente::pb;
use entente::screen::{Query, ScreeningIndex};
use entente::watchlist::{self, Format, Imported};
use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

mod common;
use common::{PlainScan, env_usize, hwm_kib, percentile, rss_kib, thread_cpu};

/// One real file set, and the list it is imported as.
struct Source {
    list: &'static str,
    format: Format,
    path: &'static str,
}

/// The lists screened together.
const SOURCES: [Source; 5] = [
    Source {
        list: "US-TREAS/sdn",
        format: Format::OfacSdn,
        path: "ofac_sdn_2021-07",
    },
    Source {
        list: "US-TREAS/cons",
        format: Format::OfacCons,
        path: "ofac_cons_2025-12",
    },
    Source {
        list: "US-ITA/csl",
        format: Format::Csl,
        path: "us_csl_2023-11/csl.csv",
    },
    Source {
        list: "US-BIS/dpl",
        format: Format::BisDpl,
        path: "bis_dpl_2023-11/dpl.txt",
    },
    Source {
        list: "UN/sc-consolidated",
        format: Format::UnXml,
        path: "un_sc_2026-02/UN_consolidated.xml",
    },
];

fn main() {
    let root = data_dir();
    let missing: Vec<&str> = SOURCES
        .iter()
        .map(|s| s.path)
        .filter(|p| !root.join(p).exists())
        .collect();
    if !missing.is_empty() {
        println!(
            "skipped: real watchlist data not found at {} (missing {}); set \
             ENTENTE_WATCHLIST_DATA to the directory that holds it",
            root.display(),
            missing.join(", ")
        );
        return;
    }
    let runs = env_usize("ENTENTE_IMPORT_RUNS", 5).max(1);

    println!("import (watchlist::import, not strict; {runs} runs each):");
    let mut lists: Vec<(&str, Vec<pb::WatchlistEntry>)> = Vec::new();
    for source in &SOURCES {
        let imported = time_import(source.path, source.format, &root.join(source.path), runs);
        lists.push((source.list, imported.entries));
    }
    let partial = root.join("ofac_sdn_2025-12_partial");
    if partial.is_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            root.join("ofac_sdn_2021-07/sdn.csv"),
            dir.path().join("sdn.csv"),
        )
        .unwrap();
        for name in ["add.csv", "alt.csv", "sdn_comments.csv"] {
            std::fs::copy(partial.join(name), dir.path().join(name)).unwrap();
        }
        time_import(
            "ofac_sdn_2025-12_partial (beside the 2021 sdn.csv)",
            Format::OfacSdn,
            dir.path(),
            runs,
        );
    } else {
        println!("  ofac_sdn_2025-12_partial: not found, skipped");
    }

    println!("index build ({runs} runs each):");
    let rss_before = rss_kib();
    let started = Instant::now();
    let index = build(&lists);
    let first = started.elapsed();
    let rss_after = rss_kib();
    let mut times = time_build(&lists, runs.saturating_sub(1));
    times.push(first);
    let entries: usize = lists.iter().map(|(_, e)| e.len()).sum();
    report_times(
        &format!(
            "  five lists together ({entries} entries, {} names)",
            index.name_count()
        ),
        &times,
    );
    report_times("  SDN 2021 alone", &time_build(&lists[..1], runs));
    println!(
        "  resident memory: {} MiB before the first build, {} MiB after (index {} MiB), peak \
         so far {} MiB",
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024,
        hwm_kib() / 1024
    );

    screen(&index, &lists);
}

/// Imports `path` `runs` times and prints the times; the last import.
fn time_import(label: &str, format: Format, path: &Path, runs: usize) -> Imported {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let imported = watchlist::import(format, path, false).unwrap();
        times.push(started.elapsed());
        last = Some(imported);
    }
    let imported = last.unwrap();
    let aliases: usize = imported.entries.iter().map(|e| e.aliases.len()).sum();
    report_times(
        &format!(
            "  {label}: {} entries, {aliases} aliases, {} rows rejected",
            imported.entries.len(),
            imported.rejected.len()
        ),
        &times,
    );
    imported
}

/// Builds the index of `lists` `runs` times; the times.
fn time_build(lists: &[(&str, Vec<pb::WatchlistEntry>)], runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            let index = build(lists);
            let time = started.elapsed();
            drop(index);
            time
        })
        .collect()
}

/// The index of every entry of `lists`.
fn build(lists: &[(&str, Vec<pb::WatchlistEntry>)]) -> ScreeningIndex {
    let mut index = ScreeningIndex::new();
    for (list, entries) in lists {
        for entry in entries {
            index.upsert(list, entry);
        }
    }
    index
}

fn report_times(label: &str, times: &[Duration]) {
    println!(
        "{label}: median {:.1?} (best {:.1?}, worst {:.1?})",
        percentile(times, 0.5),
        percentile(times, 0.0),
        percentile(times, 1.0)
    );
}

/// How a query was made from a published name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    AccentsStripped,
    Reversed,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::AccentsStripped => "(a) accents stripped",
            Kind::Reversed => "(b) word order reversed",
        }
    }
}

/// One query and the entry (`list\0id`) whose name it was made from.
#[derive(Debug, Clone)]
struct Sample {
    text: String,
    own: String,
    kind: Kind,
}

/// One query's outcome.
#[derive(Debug, Clone, Copy)]
struct Run {
    time: Duration,
    cpu: Duration,
    /// Rank of the own entry among the hits (0: first), if it is there.
    rank: Option<usize>,
}

/// Searches names of every list, through the index and the two scans, and prints what
/// was found and how fast.
fn screen(index: &ScreeningIndex, lists: &[(&str, Vec<pb::WatchlistEntry>)]) {
    let names: Vec<(String, &str)> = lists
        .iter()
        .flat_map(|(list, entries)| {
            entries.iter().flat_map(move |e| {
                std::iter::once(&e.name)
                    .chain(&e.aliases)
                    .map(move |n| (key(list, &e.id), n.as_str()))
            })
        })
        .filter(|(_, n)| !n.trim().is_empty())
        .collect();
    let wanted = env_usize("ENTENTE_REAL_NAMES", 1_000).clamp(1, names.len());
    let step = names.len() / wanted;
    let samples: Vec<Sample> = names
        .iter()
        .step_by(step.max(1))
        .take(wanted)
        .flat_map(|(own, name)| {
            [
                Sample {
                    text: strip_accents(name),
                    own: own.clone(),
                    kind: Kind::AccentsStripped,
                },
                Sample {
                    text: reverse_words(name),
                    own: own.clone(),
                    kind: Kind::Reversed,
                },
            ]
        })
        .collect();
    println!(
        "screening over the five lists together: {} names (every {step}th of {}), {} queries, \
         own entry among the hits (default limit 10, threshold 0.80):",
        wanted,
        names.len(),
        samples.len()
    );
    let index_runs = run_all(&samples, |q| ids(index.search(q)));
    report("index", &index_runs);
    for kind in [Kind::AccentsStripped, Kind::Reversed] {
        let of_kind: Vec<Run> = index_runs
            .iter()
            .zip(&samples)
            .filter(|(_, s)| s.kind == kind)
            .map(|(r, _)| *r)
            .collect();
        report(&format!("  {}", kind.label()), &of_kind);
    }
    let misses: Vec<String> = index_runs
        .iter()
        .zip(&samples)
        .filter(|(r, _)| r.rank.is_none_or(|r| r >= 3))
        .take(10)
        .map(|(r, s)| {
            format!(
                "{:?} ({}, rank {:?})",
                s.text,
                s.own.replace('\0', " "),
                r.rank
            )
        })
        .collect();
    for miss in misses {
        println!("    not in the first 3: {miss}");
    }

    let brute = env_usize("ENTENTE_REAL_BRUTE", 500).clamp(1, samples.len());
    let step = (samples.len() / brute).max(1);
    let sample: Vec<Sample> = samples.iter().step_by(step).take(brute).cloned().collect();
    let sampled_index: Vec<Run> = index_runs
        .iter()
        .step_by(step)
        .take(brute)
        .copied()
        .collect();
    let scorer_runs = run_all(&sample, |q| ids(index.search_exhaustive(q)));
    let mut plain = PlainScan::default();
    for (list, entries) in lists {
        for entry in entries {
            plain.add(key(list, &entry.id), entry);
        }
    }
    let plain_runs = run_all(&sample, |q| plain.search(&q.name, q.limit));
    println!(
        "even sample of {} of the same queries, same run:",
        sample.len()
    );
    report("  index", &sampled_index);
    report(
        "  brute force: the index's scorer on every name",
        &scorer_runs,
    );
    report(
        &format!(
            "  brute force: plain Jaro-Winkler of whole names ({} names)",
            plain.name_count()
        ),
        &plain_runs,
    );
    for (label, runs) in [
        ("scorer on every name", &scorer_runs),
        ("plain Jaro-Winkler", &plain_runs),
    ] {
        let median = |runs: &[Run], of: fn(&Run) -> Duration| {
            let times: Vec<Duration> = runs.iter().map(of).collect();
            percentile(&times, 0.5).as_secs_f64()
        };
        println!(
            "  {label} / index: median latency {:.0}x wall clock, {:.0}x thread CPU",
            median(runs, |r| r.time) / median(&sampled_index, |r| r.time),
            median(runs, |r| r.cpu) / median(&sampled_index, |r| r.cpu),
        );
    }
}

/// Runs every query once (after a warm-up of the first few), timing each.
fn run_all(samples: &[Sample], search: impl Fn(&Query) -> Vec<String>) -> Vec<Run> {
    for s in samples.iter().take(20.min(samples.len() / 10)) {
        std::hint::black_box(search(&Query::new(s.text.as_str())));
    }
    samples
        .iter()
        .map(|s| {
            let query = Query::new(s.text.as_str());
            let cpu_started = thread_cpu();
            let started = Instant::now();
            let hits = search(&query);
            let time = started.elapsed();
            let cpu = thread_cpu().saturating_sub(cpu_started);
            Run {
                time,
                cpu,
                rank: hits.iter().position(|h| *h == s.own),
            }
        })
        .collect()
}

fn report(label: &str, runs: &[Run]) {
    let times: Vec<Duration> = runs.iter().map(|r| r.time).collect();
    let cpu: Vec<Duration> = runs.iter().map(|r| r.cpu).collect();
    let within = |n: usize| {
        runs.iter()
            .filter(|r| r.rank.is_some_and(|r| r < n))
            .count() as f64
            / runs.len().max(1) as f64
    };
    println!(
        "{label}: {} queries; recall top 3 {:.4}, top 10 {:.4}; wall p50 {:.3?} p99 {:.3?} \
         max {:.3?}; thread CPU p50 {:.3?} p99 {:.3?}",
        runs.len(),
        within(3),
        within(10),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        percentile(&cpu, 0.5),
        percentile(&cpu, 0.99),
    );
}

/// An entry's key across lists.
fn key(list: &str, id: &str) -> String {
    format!("{list}\0{id}")
}

/// The keys of `hits`, best first.
fn ids(hits: Vec<entente::screen::Hit>) -> Vec<String> {
    hits.into_iter()
        .map(|h| key(&h.list, &h.entry_id))
        .collect()
}

/// The base directory of the real watchlist files.
fn data_dir() -> PathBuf {
    std::env::var_os("ENTENTE_WATCHLIST_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/watchlists"),
        PathBuf::from,
    )
}

/// `name` without its combining marks (accents).
fn strip_accents(name: &str) -> String {
    name.nfd().filter(|c| !is_combining_mark(*c)).collect()
}

/// `name` with its words in reverse order, commas dropped.
fn reverse_words(name: &str) -> String {
    let words: Vec<&str> = name
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .rev()
        .collect();
    words.join(" ")
}
