//! Search over 1,000,000 stored items, through the path a query takes on a node: the
//! request is checked, the search index finds the page, each item on the page is read
//! from sled and decrypted with the data key to make its summary, and the query is
//! written to the audit log.
//!
//! The items are synthetic reports (five senders, three kinds, five TLP levels, two
//! subjects each with names from a syllable generator, about thirty countries, forty
//! control-list entries, two hundred HS headings, a narrative of twenty words from a
//! vocabulary of two thousand), stored as received items in a real store in a scratch
//! directory. The report gives the time to build the index from the store (what a node
//! does at start-up), the resident memory before and after, and for each kind of filtered
//! query the p50 and p99 over 300 queries with random values, pages of 50.
//!
//! Environment: `ENTENTE_SEARCH_ITEMS` (default 1,000,000) for shorter runs.
//!
//! Run with `cargo bench --bench search`.

use std::time::{Duration, Instant};

use entente::{control, identity::DataKey, node, pb, store};

mod common;
use common::{env_usize, percentile, rss_kib};

const SENDERS: [&str; 5] = ["US-BIS", "JP-METI", "FR-DGDDI", "UK-ECJU", "NL-FIOD"];
const COUNTRIES: [&str; 30] = [
    "IR", "RU", "CN", "AE", "TR", "KP", "SY", "BY", "KZ", "AM", "GE", "IN", "PK", "MY", "SG", "HK",
    "TH", "VN", "ID", "EG", "SA", "QA", "OM", "IQ", "LB", "VE", "CU", "MM", "RS", "UZ",
];
const ONSETS: [&str; 16] = [
    "b", "ch", "d", "f", "g", "h", "k", "kh", "l", "m", "n", "p", "r", "s", "sh", "t",
];
const VOWELS: [&str; 8] = ["a", "e", "i", "o", "u", "ai", "ou", "ia"];
const CODAS: [&str; 8] = ["", "", "n", "r", "m", "l", "s", "d"];
const QUERIES: usize = 300;

/// A small deterministic generator (SplitMix64), so every run stores the same items.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
    fn word(&mut self, syllables: usize) -> String {
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(self.pick(&ONSETS));
            w.push_str(self.pick(&VOWELS));
            w.push_str(self.pick(&CODAS));
        }
        w
    }
}

struct Vocabulary {
    names: Vec<String>,
    words: Vec<String>,
    entries: Vec<String>,
    headings: Vec<String>,
}

fn vocabulary(rng: &mut Rng) -> Vocabulary {
    Vocabulary {
        names: (0..60_000).map(|_| rng.word(3)).collect(),
        words: (0..2_000).map(|_| rng.word(2)).collect(),
        entries: (0..40)
            .map(|i| {
                format!(
                    "{}{}{:03}.{}",
                    1 + i % 9,
                    ["A", "B", "C", "D", "E"][i % 5],
                    i * 7 % 999,
                    ["a", "b", "c"][i % 3]
                )
            })
            .collect(),
        headings: (0..200)
            .map(|i| format!("{:04}", 2800 + i * 31 % 7000))
            .collect(),
    }
}

fn make_report(rng: &mut Rng, v: &Vocabulary, n: usize) -> pb::Report {
    let mut name = || {
        format!(
            "{} {} {}",
            v.names[rng.below(v.names.len())],
            v.names[rng.below(v.names.len())],
            ["Trading", "Industries", "LLC", "Group", "Shipping"][rng.below(5)]
        )
    };
    let (first, second) = (name(), name());
    let narrative: Vec<&str> = (0..20)
        .map(|_| v.words[rng.below(v.words.len())].as_str())
        .collect();
    pb::Report {
        kind: 1 + rng.below(3) as i32,
        title: format!("Report {n}"),
        subjects: [first, second]
            .into_iter()
            .map(|name| pb::Subject {
                r#type: pb::SubjectType::Organisation as i32,
                name,
                countries: vec![rng.pick(&COUNTRIES).to_owned()],
                ..Default::default()
            })
            .collect(),
        goods: vec![pb::Goods {
            description: format!(
                "{} {}",
                v.words[rng.below(v.words.len())],
                v.words[rng.below(v.words.len())]
            ),
            hs_code: format!(
                "{}{:02}",
                v.headings[rng.below(v.headings.len())],
                rng.below(100)
            ),
            control_entry: v.entries[rng.below(v.entries.len())].clone(),
            quantity: 10.0,
            unit: "pcs".into(),
            ..Default::default()
        }],
        route: Some(pb::Route {
            origin: rng.pick(&COUNTRIES).to_owned(),
            transit: vec![rng.pick(&COUNTRIES).to_owned()],
            destination: rng.pick(&COUNTRIES).to_owned(),
            ..Default::default()
        }),
        narrative: narrative.join(" "),
        handling: Some(pb::Handling {
            tlp: 1 + rng.below(5) as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let items = env_usize("ENTENTE_SEARCH_ITEMS", 1_000_000);
    let dir = tempfile::tempdir().expect("scratch directory");
    let store =
        store::Store::open(dir.path(), DataKey::generate().expect("data key")).expect("store");
    let mut rng = Rng(7);
    let v = vocabulary(&mut rng);
    let started = Instant::now();
    // Stored over the last 30 days, evenly.
    let base_ms = entente::now_ms() - 30 * 86_400_000;
    let step_ms = (30 * 86_400_000 / items.max(1)) as i64;
    let mut subjects: Vec<(String, String, String)> = Vec::new();
    for chunk in 0..items.div_ceil(1_000) {
        let sender = SENDERS[chunk % SENDERS.len()];
        let batch: Vec<store::Incoming> = (chunk * 1_000..((chunk + 1) * 1_000).min(items))
            .map(|n| {
                let report = make_report(&mut rng, &v, n);
                if n % 3_000 == 0 {
                    let s = &report.subjects[0];
                    subjects.push((s.name.clone(), sender.to_owned(), s.countries[0].clone()));
                }
                let at = base_ms + n as i64 * step_ms;
                let mut id = ulid::Ulid::from_parts(at as u64, n as u128).to_bytes();
                id[15] = (n % 251) as u8;
                store::Incoming {
                    item: store::StoredItem {
                        origin: sender.into(),
                        item_id: id.to_vec(),
                        kind: report.kind,
                        created_at_ms: at,
                        stored_at_ms: at,
                        item: Some(pb::Item {
                            body: Some(pb::item::Body::Report(report)),
                            originator: String::new(),
                        }),
                        envelope_digest: vec![0; 32],
                        own: false,
                        sender: sender.into(),
                        version: 1,
                        reason: String::new(),
                    },
                    digest: [0; 32],
                }
            })
            .collect();
        store.receive(sender, &batch).expect("store a batch");
    }
    println!(
        "stored {items} items in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let before = rss_kib();
    let started = Instant::now();
    let index = node::build_search_index(&store).expect("build the index");
    let built = started.elapsed();
    let after = rss_kib();
    println!(
        "search index over {} items built from the store in {:.1} s; resident memory {} MiB before, {} MiB after",
        index.len(),
        built.as_secs_f64(),
        before / 1024,
        after / 1024
    );

    type MakeQuery =
        fn(&mut Rng, &Vocabulary, &[(String, String, String)]) -> pb::SearchItemsRequest;
    let kinds: [(&str, MakeQuery); 7] = [
        ("sender + kind + route country", |r, _, _| {
            pb::SearchItemsRequest {
                sender: r.pick(&SENDERS).into(),
                kind: 1 + r.below(3) as i32,
                route_country: r.pick(&COUNTRIES).into(),
                ..Default::default()
            }
        }),
        ("subject country + TLP", |r, _, _| pb::SearchItemsRequest {
            subject_country: r.pick(&COUNTRIES).into(),
            tlp: 1 + r.below(5) as i32,
            ..Default::default()
        }),
        ("control entry prefix", |r, v, _| pb::SearchItemsRequest {
            control_entry: v.entries[r.below(v.entries.len())]
                .split('.')
                .next()
                .unwrap_or_default()
                .into(),
            ..Default::default()
        }),
        ("HS prefix + received in the last 7 days", |r, v, _| {
            pb::SearchItemsRequest {
                hs_prefix: v.headings[r.below(v.headings.len())].clone(),
                received_after_ms: entente::now_ms() - 7 * 86_400_000,
                ..Default::default()
            }
        }),
        ("free text, two words", |r, v, _| pb::SearchItemsRequest {
            text: format!(
                "{} {}",
                v.words[r.below(v.words.len())],
                v.words[r.below(v.words.len())]
            ),
            ..Default::default()
        }),
        ("subject name (fuzzy)", |r, _, s| pb::SearchItemsRequest {
            subject: s[r.below(s.len())].0.clone(),
            ..Default::default()
        }),
        ("subject name + its sender + its country", |r, _, s| {
            let (name, sender, country) = s[r.below(s.len())].clone();
            pb::SearchItemsRequest {
                subject: name,
                sender,
                subject_country: country,
                ..Default::default()
            }
        }),
    ];
    println!("\n| query (pages of 50) | p50 | p99 | items on the page (mean) |");
    println!("| --- | --- | --- | --- |");
    for (name, make) in kinds {
        let mut times: Vec<Duration> = Vec::with_capacity(QUERIES);
        let mut found = 0usize;
        for _ in 0..QUERIES {
            let request = make(&mut rng, &v, &subjects);
            let started = Instant::now();
            let page =
                control::search_items(&store, &request, |s| index.search(s)).expect("search");
            times.push(started.elapsed());
            found += page.items.len();
        }
        times.sort();
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.1} |",
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            found as f64 / QUERIES as f64
        );
    }
}
