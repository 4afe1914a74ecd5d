//! Screening over a synthetic list of 1,000,000 entries: latency of one query (p50, p99)
//! over 1,000 varied queries; an even sample of the same queries, in the same run, through
//! two brute-force scans of every name: the index's own scorer (token-set Jaro-Winkler)
//! applied to every name, and a plain `strsim::jaro_winkler` of the whole normalised name
//! (tokens sorted) with the query; recall of all three against the entry each query was
//! made from (in the first ten hits); and the process's resident memory (VmRSS, VmHWM)
//! before and after building the index.
//!
//! The list is made by a deterministic generator: persons (given names drawn from a table
//! with a few very common names, surnames from a long table), companies (brand words,
//! generic words and legal forms), vessels and aircraft; half the entries have an alias.
//! Queries are made from random entries: as published, misspelled, reordered, with
//! initials, with accents and other case, and misspelled and reordered at once.
//!
//! Environment: `ENTENTE_SCREEN_ENTRIES` (default 1,000,000) and `ENTENTE_SCREEN_BRUTE`
//! (queries run through the brute-force scans, default 200) make shorter runs possible.
//!
//! Run with `cargo bench --bench screening`; the report is printed before criterion's own
//! measurements.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use entente::pb;
use entente::screen::{Query, ScreeningIndex};

mod common;
use common::{PlainScan, env_usize, hwm_kib, percentile, rss_kib, thread_cpu};

const LIST: &str = "SYNTH/list";
const QUERIES: usize = 1_000;

/// Given names: few and skewed (a handful are very common).
const GIVEN_NAMES: usize = 4_000;
/// Surnames and company brand words: many, mildly skewed.
const SURNAMES: usize = 200_000;
const BRANDS: usize = 150_000;

const ONSETS: &[&str] = &[
    "b", "ch", "d", "f", "g", "h", "j", "k", "kh", "l", "m", "n", "p", "q", "r", "s", "sh", "t",
    "v", "y", "z", "zh", "dr", "tr", "st", "br", "",
];
const VOWELS: &[&str] = &[
    "a", "e", "i", "o", "u", "ai", "ou", "ia", "ee", "oo", "a", "e", "i",
];
const CODAS: &[&str] = &[
    "", "", "", "n", "r", "m", "l", "s", "d", "k", "t", "v", "z", "sh",
];
const GENERIC: &[&str] = &[
    "trading",
    "international",
    "shipping",
    "industrial",
    "group",
    "holding",
    "investment",
    "petroleum",
    "engineering",
    "logistics",
    "electronics",
    "technology",
    "import",
    "export",
    "general",
    "commercial",
    "development",
    "services",
    "energy",
    "maritime",
    "chemical",
    "machinery",
    "aviation",
    "metals",
    "finance",
    "construction",
    "supply",
    "systems",
    "global",
    "enterprises",
    "resources",
    "marine",
    "tools",
    "solutions",
    "foundation",
];
const LEGAL: &[&str] = &[
    "LLC",
    "L.L.C.",
    "Ltd",
    "Ltd.",
    "Co., Ltd.",
    "GmbH",
    "OOO",
    "JSC",
    "PJSC",
    "S.A.",
    "FZE",
    "FZCO",
    "Inc.",
    "Corp",
    "PLC",
    "AG",
    "LLP",
    "Limited",
    "ZAO",
    "OAO",
];
const COUNTRIES: &[&str] = &[
    "IR", "RU", "CN", "KP", "SY", "AE", "TR", "VE", "CU", "BY", "LB", "IQ", "PK", "AF", "MM", "SD",
    "YE", "LY", "HK", "SG", "MY", "IN", "DE", "GB", "FR", "IT", "ES", "NL", "US", "CA",
];
const ACCENTS: &[(char, char)] = &[('a', 'á'), ('e', 'é'), ('i', 'í'), ('o', 'ö'), ('u', 'ü')];

fn main_bench(c: &mut Criterion) {
    let entries = env_usize("ENTENTE_SCREEN_ENTRIES", 1_000_000);
    let brute = env_usize("ENTENTE_SCREEN_BRUTE", 200);
    let generator = Generator::new();

    let rss_before = rss_kib();
    let started = Instant::now();
    let mut index = ScreeningIndex::new();
    for i in 0..entries {
        index.upsert(LIST, &generator.entry(i));
    }
    let build = started.elapsed();
    let rss_after = rss_kib();
    let hwm_after = hwm_kib();
    println!(
        "index: {} entries, {} names, built in {:.1?}; RSS {} MiB before, {} MiB after, \
         peak {} MiB (index {} MiB); arrays and lists {} MiB",
        index.len(),
        index.name_count(),
        build,
        rss_before / 1024,
        rss_after / 1024,
        hwm_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024,
        index.approximate_bytes() >> 20,
    );

    let queries = generator.queries(entries, QUERIES);
    let index_runs = run_all(&queries, |q| ids(index.search(q)));
    report_latency("index", &index_runs);
    println!(
        "  after the queries: RSS {} MiB, peak {} MiB",
        rss_kib() / 1024,
        hwm_kib() / 1024
    );
    let mut slowest: Vec<(Duration, &str)> = index_runs
        .iter()
        .zip(&queries)
        .map(|(r, q)| (r.time, q.query.name.as_str()))
        .collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(t, q)| format!("{q:?} {t:.1?}"))
        .collect();
    println!("  slowest: {}", slowest.join(", "));
    for kind in Kind::ALL {
        let of_kind: Vec<&Run> = index_runs.iter().filter(|r| r.kind == kind).collect();
        let times: Vec<Duration> = of_kind.iter().map(|r| r.time).collect();
        let cpu: Vec<Duration> = of_kind.iter().map(|r| r.cpu).collect();
        let found = of_kind.iter().filter(|r| r.found).count();
        println!(
            "    {:<22} wall p50 {:>9.3?} p99 {:>9.3?}  CPU p50 {:>9.3?} p99 {:>9.3?}  recall {:.3}",
            kind.label(),
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            percentile(&cpu, 0.50),
            percentile(&cpu, 0.99),
            found as f64 / of_kind.len().max(1) as f64
        );
    }

    // The two brute-force scans, on an even sample of the same queries, in this run.
    let step = (queries.len() / brute.max(1)).max(1);
    let sample: Vec<Sample> = queries.iter().step_by(step).take(brute).cloned().collect();
    let sampled_index: Vec<Run> = index_runs
        .iter()
        .step_by(step)
        .take(brute)
        .cloned()
        .collect();
    let scorer_runs = run_all(&sample, |q| ids(index.search_exhaustive(q)));
    let started = Instant::now();
    let mut plain = PlainScan::default();
    for i in 0..entries {
        plain.add(entry_id(i), &generator.entry(i));
    }
    println!(
        "plain Jaro-Winkler scan: {} names prepared in {:.1?} (not timed below)",
        plain.name_count(),
        started.elapsed()
    );
    let plain_runs = run_all(&sample, |q| plain.search(&q.name, q.limit));
    drop(plain);
    report_latency("index, the sample", &sampled_index);
    report_latency(
        "brute force: the index's scorer on every name",
        &scorer_runs,
    );
    report_latency(
        "brute force: plain Jaro-Winkler of whole names",
        &plain_runs,
    );
    let mut speedups = Vec::new();
    for (label, runs) in [
        ("scorer on every name", &scorer_runs),
        ("plain Jaro-Winkler", &plain_runs),
    ] {
        let ratio = |of: fn(&Run) -> Duration| {
            median(runs, of).as_secs_f64() / median(&sampled_index, of).as_secs_f64()
        };
        let total = |runs: &[Run]| runs.iter().map(|r| r.time).sum::<Duration>().as_secs_f64();
        let agree = runs
            .iter()
            .zip(&sampled_index)
            .filter(|(b, i)| b.found == i.found)
            .count();
        println!(
            "  {label} / index on the sample: median latency {:.0}x wall clock, {:.0}x thread \
             CPU, total time {:.0}x; recall: index {:.3}, {label} {:.3} ({} of {} agree)",
            ratio(|r| r.time),
            ratio(|r| r.cpu),
            total(runs) / total(&sampled_index),
            recall(&sampled_index),
            recall(runs),
            agree,
            sample.len()
        );
        speedups.push((label, ratio(|r| r.time), recall(runs)));
    }

    // The issue's targets, from this run.
    let times: Vec<Duration> = index_runs.iter().map(|r| r.time).collect();
    let p99 = percentile(&times, 0.99);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!("targets ({entries} entries):");
    println!(
        "  p99 under 5 ms: {:.3?} over {} queries, {}",
        p99,
        times.len(),
        verdict(p99 < Duration::from_millis(5))
    );
    for (label, speedup, brute_recall) in &speedups {
        let index_recall = recall(&sampled_index);
        println!(
            "  against the {label} scan: {speedup:.0}x faster (median, >= 20x {}); recall {:.3} \
             against {brute_recall:.3} (within 1 point or above: {})",
            verdict(*speedup >= 20.0),
            index_recall,
            verdict(index_recall >= brute_recall - 0.01)
        );
    }
    println!(
        "  resident memory with the index built: {} MiB (peak during the build {} MiB), \
         under 1 GiB: {}",
        rss_after / 1024,
        hwm_after / 1024,
        verdict(rss_after < 1 << 20)
    );

    // The queries the index missed, through the brute-force scan as well.
    let missed: Vec<Sample> = index_runs
        .iter()
        .zip(&queries)
        .filter(|(r, _)| !r.found)
        .map(|(_, q)| q.clone())
        .collect();
    let missed_runs = run_all(&missed, |q| ids(index.search_exhaustive(q)));
    for (run, sample) in missed_runs.iter().zip(&missed) {
        println!(
            "  index missed {:?} ({}, source {}); the scorer on every name {}",
            sample.query.name,
            sample.kind.label(),
            sample.source,
            if run.found {
                "finds it"
            } else {
                "misses it too"
            }
        );
    }

    let misspelled = queries
        .iter()
        .find(|q| q.kind == Kind::Misspelled)
        .map(|q| q.query.clone());
    let exact = queries
        .iter()
        .find(|q| q.kind == Kind::Exact)
        .map(|q| q.query.clone());
    let mut group = c.benchmark_group("screen");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    for (label, query) in [("exact", exact), ("misspelled", misspelled)] {
        if let Some(query) = query {
            group.bench_function(format!("{label} query, {entries} entries"), |b| {
                b.iter(|| index.search(black_box(&query)))
            });
        }
    }
    group.finish();
}

/// One query, what it was made from, and how.
#[derive(Debug, Clone)]
struct Sample {
    query: Query,
    source: String,
    kind: Kind,
}

/// How a query was made from a name.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Exact,
    Misspelled,
    Reordered,
    Initials,
    AccentsAndCase,
    MisspelledReordered,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Exact,
        Kind::Misspelled,
        Kind::Reordered,
        Kind::Initials,
        Kind::AccentsAndCase,
        Kind::MisspelledReordered,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Exact => "as published",
            Kind::Misspelled => "misspelled",
            Kind::Reordered => "reordered",
            Kind::Initials => "initials / legal form",
            Kind::AccentsAndCase => "accents and case",
            Kind::MisspelledReordered => "misspelled+reordered",
        }
    }
}

/// One query's outcome.
#[derive(Debug, Clone)]
struct Run {
    kind: Kind,
    /// Wall-clock time.
    time: Duration,
    /// Processor time of this thread: what the query cost, whatever else the machine ran.
    cpu: Duration,
    found: bool,
}

/// Runs every query once (after a warm-up of the first few), timing each.
fn run_all(samples: &[Sample], search: impl Fn(&Query) -> Vec<String>) -> Vec<Run> {
    for s in samples.iter().take(20.min(samples.len() / 10)) {
        black_box(search(&s.query));
    }
    samples
        .iter()
        .map(|s| {
            let cpu_started = thread_cpu();
            let started = Instant::now();
            let hits = search(&s.query);
            let time = started.elapsed();
            let cpu = thread_cpu().saturating_sub(cpu_started);
            Run {
                kind: s.kind,
                time,
                cpu,
                found: hits.contains(&s.source),
            }
        })
        .collect()
}

fn report_latency(label: &str, runs: &[Run]) {
    let times: Vec<Duration> = runs.iter().map(|r| r.time).collect();
    let cpu: Vec<Duration> = runs.iter().map(|r| r.cpu).collect();
    println!(
        "{label}: {} queries, recall (source entry in the top 10) {:.3}\n  wall clock: p50 \
         {:.3?}, p90 {:.3?}, p99 {:.3?}, max {:.3?}\n  thread CPU: p50 {:.3?}, p90 {:.3?}, \
         p99 {:.3?}, max {:.3?}",
        runs.len(),
        recall(runs),
        percentile(&times, 0.50),
        percentile(&times, 0.90),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        percentile(&cpu, 0.50),
        percentile(&cpu, 0.90),
        percentile(&cpu, 0.99),
        percentile(&cpu, 1.0),
    );
}

/// The entry ids of `hits`, best first.
fn ids(hits: Vec<entente::screen::Hit>) -> Vec<String> {
    hits.into_iter().map(|h| h.entry_id).collect()
}

fn recall(runs: &[Run]) -> f64 {
    runs.iter().filter(|r| r.found).count() as f64 / runs.len().max(1) as f64
}

fn median(runs: &[Run], of: impl Fn(&Run) -> Duration) -> Duration {
    let times: Vec<Duration> = runs.iter().map(of).collect();
    percentile(&times, 0.5)
}

/// SplitMix64: small, fast and good enough to make names.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Draws ranks from a Zipf-like distribution by inverting its cumulative weights.
#[derive(Debug)]
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect::<Vec<_>>();
        Zipf(cumulative.into_iter().map(|c| c / total).collect())
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

/// The deterministic list and query generator.
#[derive(Debug)]
struct Generator {
    given: Vec<String>,
    surnames: Vec<String>,
    brands: Vec<String>,
    given_rank: Zipf,
    surname_rank: Zipf,
    brand_rank: Zipf,
}

impl Generator {
    fn new() -> Self {
        let mut rng = Rng::new(7);
        let given = (0..GIVEN_NAMES).map(|_| word(&mut rng, 2, 3)).collect();
        let surnames = (0..SURNAMES).map(|_| word(&mut rng, 2, 4)).collect();
        let brands = (0..BRANDS).map(|_| word(&mut rng, 2, 4)).collect();
        Generator {
            given,
            surnames,
            brands,
            given_rank: Zipf::new(GIVEN_NAMES, 1.0),
            surname_rank: Zipf::new(SURNAMES, 0.5),
            brand_rank: Zipf::new(BRANDS, 0.5),
        }
    }

    /// Entry `i`, the same on every call.
    fn entry(&self, i: usize) -> pb::WatchlistEntry {
        let mut rng = Rng::new(1_000 + i as u64);
        let roll = rng.below(100);
        let (kind, name, alias) = if roll < 60 {
            self.person(&mut rng)
        } else if roll < 95 {
            self.company(&mut rng)
        } else if roll < 99 {
            self.vessel(&mut rng)
        } else {
            self.aircraft(&mut rng)
        };
        let countries = (0..1 + rng.below(2))
            .map(|_| rng.pick(COUNTRIES).to_string())
            .collect();
        pb::WatchlistEntry {
            id: entry_id(i),
            r#type: kind as i32,
            name,
            aliases: alias.into_iter().collect(),
            countries,
            ..Default::default()
        }
    }

    fn person(&self, rng: &mut Rng) -> (pb::SubjectType, String, Option<String>) {
        let mut given = vec![self.given_name(rng)];
        if rng.chance(50) {
            given.push(self.given_name(rng));
        }
        let mut surname = vec![self.surname(rng)];
        if rng.chance(15) {
            surname.push(self.surname(rng));
        }
        let name = person_name(&given, &surname, rng.chance(50));
        let alias = rng.chance(50).then(|| match rng.below(3) {
            0 => {
                let varied: Vec<String> = surname.iter().map(|s| vary(s, rng)).collect();
                person_name(&given, &varied, true)
            }
            1 => {
                let other = vec![given[0].clone(), self.given_name(rng)];
                person_name(&other, &surname, false)
            }
            _ => {
                let varied: Vec<String> = given.iter().map(|g| vary(g, rng)).collect();
                person_name(&varied, &surname, rng.chance(50))
            }
        });
        (pb::SubjectType::Person, name, alias)
    }

    fn company(&self, rng: &mut Rng) -> (pb::SubjectType, String, Option<String>) {
        let brand = self.brand(rng);
        let mut words = vec![brand.clone()];
        if rng.chance(30) {
            words.push(self.brand(rng));
        }
        for _ in 0..rng.below(3) {
            words.push(rng.pick(GENERIC).to_string());
        }
        let body = words.join(" ").to_uppercase();
        let name = if rng.chance(70) {
            format!("{body} {}", rng.pick(LEGAL))
        } else {
            body.clone()
        };
        let alias = rng.chance(50).then(|| match rng.below(3) {
            0 => format!("{body} {}", rng.pick(LEGAL)),
            1 => format!(
                "{} {}",
                brand.to_uppercase(),
                rng.pick(GENERIC).to_uppercase()
            ),
            _ => format!("{} {}", self.brand(rng).to_uppercase(), rng.pick(LEGAL)),
        });
        (pb::SubjectType::Organisation, name, alias)
    }

    fn vessel(&self, rng: &mut Rng) -> (pb::SubjectType, String, Option<String>) {
        let name = match rng.below(3) {
            0 => format!("{} {}", self.brand(rng), 1 + rng.below(30)),
            1 => format!("{} {}", self.given_name(rng), self.brand(rng)),
            _ => self.brand(rng),
        };
        let alias = rng.chance(50).then(|| self.brand(rng).to_uppercase());
        (pb::SubjectType::Vessel, name.to_uppercase(), alias)
    }

    fn aircraft(&self, rng: &mut Rng) -> (pb::SubjectType, String, Option<String>) {
        let letters: String = (0..3)
            .map(|_| (b'A' + rng.below(26) as u8) as char)
            .collect();
        let name = format!("EP-{letters} {}", self.brand(rng).to_uppercase());
        (pb::SubjectType::Aircraft, name, None)
    }

    fn given_name(&self, rng: &mut Rng) -> String {
        title(&self.given[self.given_rank.draw(rng)])
    }

    fn surname(&self, rng: &mut Rng) -> String {
        self.surnames[self.surname_rank.draw(rng)].to_uppercase()
    }

    fn brand(&self, rng: &mut Rng) -> String {
        self.brands[self.brand_rank.draw(rng)].clone()
    }

    /// `n` queries made from random entries, the kinds in turn.
    fn queries(&self, entries: usize, n: usize) -> Vec<Sample> {
        let mut rng = Rng::new(99);
        (0..n)
            .map(|k| {
                let i = rng.below(entries);
                let entry = self.entry(i);
                let name = match entry.aliases.first() {
                    Some(alias) if rng.chance(25) => alias.clone(),
                    _ => entry.name.clone(),
                };
                let kind = Kind::ALL[k % Kind::ALL.len()];
                let person = entry.r#type == pb::SubjectType::Person as i32;
                Sample {
                    query: Query::new(perturb(&name, kind, person, &mut rng)),
                    source: entry.id,
                    kind,
                }
            })
            .collect()
    }
}

fn entry_id(i: usize) -> String {
    format!("SYN-{i:07}")
}

/// A word of `min` to `max` syllables.
fn word(rng: &mut Rng, min: usize, max: usize) -> String {
    let syllables = min + rng.below(max - min + 1);
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(rng.pick(ONSETS));
        w.push_str(rng.pick(VOWELS));
        w.push_str(rng.pick(CODAS));
    }
    w
}

fn title(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// "SURNAME, Given Names" (OFAC's form) or "Given Names SURNAME".
fn person_name(given: &[String], surname: &[String], surname_first: bool) -> String {
    if surname_first {
        format!("{}, {}", surname.join(" "), given.join(" "))
    } else {
        format!("{} {}", given.join(" "), surname.join(" "))
    }
}

/// A spelling variant, as transliteration gives them: one vowel changed, or a letter
/// doubled.
fn vary(word: &str, rng: &mut Rng) -> String {
    let bytes = word.as_bytes();
    let vowels: Vec<usize> = (0..bytes.len())
        .filter(|&i| b"aeiouAEIOU".contains(&bytes[i]))
        .collect();
    let mut out = bytes.to_vec();
    if !vowels.is_empty() && rng.chance(70) {
        let at = vowels[rng.below(vowels.len())];
        let swap = [b'a', b'e', b'i', b'o', b'u'][rng.below(5)];
        out[at] = if bytes[at].is_ascii_uppercase() {
            swap.to_ascii_uppercase()
        } else {
            swap
        };
    } else {
        let at = 1 + rng.below(bytes.len().saturating_sub(1).max(1));
        let at = at.min(out.len() - 1);
        out.insert(at, out[at]);
    }
    String::from_utf8(out).unwrap_or_else(|_| word.to_string())
}

/// The query an analyst might type for `name`, by `kind`.
fn perturb(name: &str, kind: Kind, person: bool, rng: &mut Rng) -> String {
    match kind {
        Kind::Exact => name.to_string(),
        Kind::Misspelled => misspell(name, rng),
        Kind::Reordered => reorder(name),
        Kind::Initials if person => initials(name),
        Kind::Initials => swap_legal_form(name, rng),
        Kind::AccentsAndCase => accents_and_case(name, rng),
        Kind::MisspelledReordered => reorder(&misspell(name, rng)),
    }
}

/// One typing error (substitution, deletion, insertion or transposition) in one word of at
/// least four letters that is not a legal form.
fn misspell(name: &str, rng: &mut Rng) -> String {
    let mut words: Vec<String> = name.split(' ').map(str::to_string).collect();
    let long: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].len() >= 4 && !LEGAL.contains(&words[i].as_str()))
        .collect();
    if long.is_empty() {
        return name.to_string();
    }
    let w = &mut words[long[rng.below(long.len())]];
    let mut bytes = w.as_bytes().to_vec();
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let at = rng.below(letters.saturating_sub(1).max(1));
    let letter = b'a' + rng.below(26) as u8;
    match rng.below(4) {
        0 => bytes[at] = letter,
        1 => {
            bytes.remove(at);
        }
        2 => bytes.insert(at, letter),
        _ => bytes.swap(at, at + 1),
    }
    *w = String::from_utf8(bytes).unwrap_or_default();
    words.join(" ")
}

/// The words in reverse order, commas dropped.
fn reorder(name: &str) -> String {
    let words: Vec<&str> = name
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .rev()
        .collect();
    words.join(" ")
}

/// A person's given names reduced to initials ("J. SMITH").
fn initials(name: &str) -> String {
    let (surname, given) = match name.split_once(", ") {
        Some((surname, given)) => (surname.to_string(), given.to_string()),
        None => {
            let words: Vec<&str> = name.split(' ').collect();
            let surname = words.iter().skip_while(|w| !is_upper(w)).copied();
            let given = words.iter().take_while(|w| !is_upper(w)).copied();
            (
                surname.collect::<Vec<_>>().join(" "),
                given.collect::<Vec<_>>().join(" "),
            )
        }
    };
    let given: Vec<String> = given
        .split(' ')
        .filter_map(|g| g.get(..1))
        .map(|i| format!("{i}."))
        .collect();
    format!("{} {surname}", given.join(" "))
}

fn is_upper(word: &str) -> bool {
    word.len() > 1 && word.bytes().all(|b| !b.is_ascii_lowercase())
}

/// A company name with its legal form replaced by another (or added).
fn swap_legal_form(name: &str, rng: &mut Rng) -> String {
    let body = LEGAL
        .iter()
        .find_map(|l| name.strip_suffix(l).map(str::trim_end))
        .unwrap_or(name);
    format!("{body} {}", rng.pick(LEGAL)).to_lowercase()
}

/// Other case, some vowels accented, and a hyphen between two words.
fn accents_and_case(name: &str, rng: &mut Rng) -> String {
    let upper = rng.chance(50);
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            match ACCENTS
                .iter()
                .find(|(plain, _)| *plain == c.to_ascii_lowercase())
            {
                Some(&(_, accented)) if rng.chance(30) => {
                    if upper {
                        accented.to_uppercase().next().unwrap_or(accented)
                    } else {
                        accented
                    }
                }
                _ => c,
            }
        })
        .collect();
    if let Some(at) = out.find(' ') {
        out.replace_range(at..at + 1, "-");
    }
    out
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::main_bench);
}
criterion_main!(group::benches);
