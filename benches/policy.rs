//! Benchmark of the policy hot path: one outbound decision, with redaction, for the same
//! report of about 2 KiB that `entente bench` sends, under a realistic ten-rule policy in
//! which only the last rule matches (the worst case for first-match evaluation).

use std::{hint::black_box, path::Path};

use criterion::{Criterion, criterion_main};
use entente::policy::{Decision, ItemFacts, PolicySet};

const POLICY: &str = r#"version = 1

[[partner]]
agency = "DE-BAFA"
accept = ["suspicious-transaction", "denial-notification", "enforcement-alert"]

  [[partner.rule]]
  id = "no-persons"
  kinds = ["suspicious-transaction"]
  subject_types = ["person"]
  action = "deny"

  [[partner.rule]]
  id = "no-sanctioned-subjects"
  kinds = ["suspicious-transaction", "enforcement-alert"]
  subject_countries = ["KP", "IR", "SY"]
  action = "deny"

  [[partner.rule]]
  id = "denials"
  kinds = ["denial-notification"]
  tlp_max = "AMBER"
  action = "share"
  redact = ["reference"]

  [[partner.rule]]
  id = "green-alerts"
  kinds = ["enforcement-alert"]
  tlp_max = "GREEN"
  action = "share"

  [[partner.rule]]
  id = "crypto"
  kinds = ["suspicious-transaction"]
  control_entries = ["5A002*", "5D002*"]
  action = "share"
  redact = ["subjects[].identifiers"]

  [[partner.rule]]
  id = "computers"
  kinds = ["suspicious-transaction"]
  hs_codes = ["8471*", "8473*"]
  action = "share"
  redact = ["subjects[].identifiers", "narrative"]

  [[partner.rule]]
  id = "green-strs"
  kinds = ["suspicious-transaction"]
  tlp_max = "GREEN"
  action = "share"

  [[partner.rule]]
  id = "released"
  kinds = ["suspicious-transaction"]
  releasable_to = "partner"
  action = "share"

  [[partner.rule]]
  id = "no-vessels-via-russia"
  kinds = ["suspicious-transaction"]
  subject_types = ["vessel", "aircraft"]
  route_countries = ["RU", "BY"]
  action = "deny"

  [[partner.rule]]
  id = "electronics-via-hubs"
  kinds = ["suspicious-transaction"]
  tlp_max = "AMBER"
  control_entries = ["3A*", "5A002*"]
  route_countries = ["AE", "MY", "SG"]
  max_age_days = 90
  action = "share"
  redact = ["subjects[].identifiers", "subjects[].aliases", "reference", "red_flags"]
  generalise = ["subjects[].addresses", "goods[].value"]
"#;

fn decide(c: &mut Criterion) {
    let (set, _) = PolicySet::parse(Path::new("bench.toml"), POLICY).expect("the policy parses");
    let report = entente::bench::sample_report();
    let now_ms = 1_780_000_000_000;
    let item = ItemFacts {
        report: &report,
        origin: "US-BIS",
        created_at_ms: now_ms - 86_400_000,
        now_ms,
        consented_to: &[],
    };
    match set.decide("US-BIS", "DE-BAFA", &item) {
        Decision::Share { rule, .. } => assert_eq!(rule, "electronics-via-hubs"),
        Decision::Deny { reason, .. } => panic!("the benchmark report is refused: {reason}"),
    }
    c.bench_function("policy decide + redact 2 KiB report, 10 rules", |b| {
        b.iter(|| set.decide("US-BIS", black_box("DE-BAFA"), black_box(&item)))
    });
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::decide);
}
criterion_main!(group::benches);
