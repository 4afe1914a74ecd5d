//! Any text read as a policy file: a policy set or a list of errors, never a panic.
//!
//! A set that parses is asked for a decision on each example report for each of its
//! partners; a report shared under it, redacted and generalised, still validates, since the
//! partner's node validates it again on receipt.

#![no_main]

use std::{path::Path, sync::OnceLock};

use entente::{
    pb,
    policy::{Decision, ItemFacts, PolicySet},
    report,
};
use libfuzzer_sys::fuzz_target;

const NODE: &str = "US-BIS";
const CREATED_AT_MS: i64 = 1_750_000_000_000;
const NOW_MS: i64 = CREATED_AT_MS + 86_400_000;

fn reports() -> &'static [pb::Report] {
    static REPORTS: OnceLock<Vec<pb::Report>> = OnceLock::new();
    REPORTS.get_or_init(|| {
        [
            include_str!("../../examples/reports/alert-vessel.json"),
            include_str!("../../examples/reports/denial-dual-use.json"),
            include_str!("../../examples/reports/str-front-company.json"),
        ]
        .iter()
        .map(|text| report::parse_report_json(text, "example").expect("an example report"))
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let set = match PolicySet::parse(Path::new("fuzz.toml"), text) {
        Ok((set, _warnings)) => set,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refused policy with no error");
            return;
        }
    };
    for partner in set.partners() {
        for kind in [
            pb::ItemKind::SuspiciousTransaction,
            pb::ItemKind::DenialNotification,
            pb::ItemKind::EnforcementAlert,
            pb::ItemKind::WatchlistDelta,
        ] {
            set.accepts(&partner, kind);
        }
        set.decide_list(NODE, &partner, "US-BIS/dpl");
        set.accepts_list(&partner, "US-TREAS/sdn");
        for report in reports() {
            decide(&set, &partner, report);
        }
    }
});

fn decide(set: &PolicySet, partner: &str, report: &pb::Report) {
    let facts = ItemFacts {
        report,
        origin: NODE,
        created_at_ms: CREATED_AT_MS,
        now_ms: NOW_MS,
        consented_to: &[],
    };
    if let Decision::Share { report: shared, .. } = set.decide(NODE, partner, &facts) {
        report::validate(&shared, "shared copy").expect("a shared copy validates");
    }
}
