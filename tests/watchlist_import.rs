//! Imports the real published list files in `../shared/data/watchlists/` (or the directory
//! named by `ENTENTE_WATCHLIST_DATA`) and checks the record counts that its README gives.
//! The files are not part of the repository: when the directory is absent, each test says
//! so and passes.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Instant,
};

use entente::{
    pb,
    watchlist::{self, Digest, Format, Imported},
};

/// The data directory's subdirectory `sub`, or `None` (with a note) when it is absent.
fn data(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("ENTENTE_WATCHLIST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/watchlists"));
    let dir = root.join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: real watchlist data not found at {}",
            dir.display()
        );
        None
    }
}

fn count_types(imported: &Imported) -> HashMap<pb::SubjectType, usize> {
    let mut counts = HashMap::new();
    for entry in &imported.entries {
        let kind = pb::SubjectType::try_from(entry.r#type).unwrap();
        *counts.entry(kind).or_default() += 1;
    }
    counts
}

fn aliases(imported: &Imported) -> usize {
    imported.entries.iter().map(|e| e.aliases.len()).sum()
}

/// Every country code in an entry is two upper-case letters.
fn assert_country_codes(imported: &Imported) {
    for entry in &imported.entries {
        let codes = entry
            .countries
            .iter()
            .chain(entry.addresses.iter().map(|a| &a.country))
            .chain(entry.identifiers.iter().map(|i| &i.country))
            .filter(|c| !c.is_empty());
        for code in codes {
            let ok = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
            assert!(ok, "entry {}: country {code:?}", entry.id);
        }
    }
}

#[test]
fn sdn_2021_has_every_entry_and_alias() {
    let Some(dir) = data("ofac_sdn_2021-07") else {
        return;
    };
    let got = watchlist::import(Format::OfacSdn, &dir, true).unwrap();
    assert_eq!(got.entries.len(), 8_976);
    let types = count_types(&got);
    assert_eq!(types[&pb::SubjectType::Person], 4_620);
    assert_eq!(types[&pb::SubjectType::Organisation], 3_673);
    assert_eq!(types[&pb::SubjectType::Vessel], 406);
    assert_eq!(types[&pb::SubjectType::Aircraft], 277);
    // All 11,910 alt.csv rows joined (the import is strict); the canonical form drops two
    // repeats and four aliases equal to the primary name.
    assert_eq!(aliases(&got), 11_904);
    assert_eq!(
        got.entries.iter().filter(|e| !e.aliases.is_empty()).count(),
        4_138
    );
    // 13,837 add.csv rows, of which 2,397 are entirely null.
    let addresses: usize = got.entries.iter().map(|e| e.addresses.len()).sum();
    assert_eq!(addresses, 11_440);
    let multi = got.entries.iter().find(|e| e.programs.len() > 1).unwrap();
    assert!(
        multi.programs.iter().all(|p| !p.contains(']')),
        "{:?}",
        multi.programs
    );
    assert_country_codes(&got);
}

#[test]
fn sdn_comments_continue_the_remarks() {
    let Some(dir) = data("ofac_sdn_2021-07") else {
        return;
    };
    let got = watchlist::import(Format::OfacSdn, &dir, true).unwrap();
    let entry = got.entries.iter().find(|e| e.id == "12300").unwrap();
    assert!(
        entry.remarks.contains("PROMO RAIZ S.A.S."),
        "{}",
        entry.remarks
    );
}

#[test]
fn aliases_for_entities_missing_from_sdn_csv_are_row_errors() {
    let (Some(old), Some(new)) = (data("ofac_sdn_2021-07"), data("ofac_sdn_2025-12_partial"))
    else {
        return;
    };
    // The 2025 add/alt/comments files beside the 2021 sdn.csv: most of their ent_nums are
    // unknown, which must be reported, not panic.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(old.join("sdn.csv"), dir.path().join("sdn.csv")).unwrap();
    for name in ["add.csv", "alt.csv", "sdn_comments.csv"] {
        std::fs::copy(new.join(name), dir.path().join(name)).unwrap();
    }
    let got = watchlist::import(Format::OfacSdn, dir.path(), false).unwrap();
    assert_eq!(got.entries.len(), 8_976);
    assert!(!got.rejected.is_empty());
    let first = &got.rejected[0];
    assert!(first.reason.contains("is not in the main file"), "{first}");
    assert!(watchlist::import(Format::OfacSdn, dir.path(), true).is_err());
}

#[test]
fn ofac_consolidated_2025_has_442_entries() {
    let Some(dir) = data("ofac_cons_2025-12") else {
        return;
    };
    let got = watchlist::import(Format::OfacCons, &dir, true).unwrap();
    assert_eq!(got.entries.len(), 442);
    assert_eq!(count_types(&got)[&pb::SubjectType::Person], 79);
    // 1,073 cons_alt.csv rows; two repeat the primary name or another alias.
    assert_eq!(aliases(&got), 1_071);
    assert_country_codes(&got);
}

#[test]
fn csl_2023_reports_the_short_row_and_imports_the_rest() {
    let Some(dir) = data("us_csl_2023-11") else {
        return;
    };
    let path = dir.join("csl.csv");
    let got = watchlist::import(Format::Csl, &path, false).unwrap();
    // 4,227 records: the last is cut short at 8 fields.
    assert_eq!(got.entries.len(), 4_226);
    assert_eq!(got.rejected.len(), 1);
    let short = &got.rejected[0];
    assert_eq!(short.line, 4_233);
    assert!(short.reason.contains("found 8"), "{short}");
    assert!(short.file.ends_with("csl.csv"));
    assert!(watchlist::import(Format::Csl, &path, true).is_err());
    assert_country_codes(&got);
}

#[test]
fn csl_2025_sample_has_13_records() {
    let Some(dir) = data("us_csl_2023-11") else {
        return;
    };
    let path = dir.join("csl_2025_format_sample.csv");
    let got = watchlist::import(Format::Csl, &path, true).unwrap();
    assert_eq!(got.entries.len(), 13);
}

#[test]
fn dpl_2023_has_665_rows_two_of_them_repeats() {
    let Some(dir) = data("bis_dpl_2023-11") else {
        return;
    };
    let got = watchlist::import(Format::BisDpl, &dir.join("dpl.txt"), true).unwrap();
    // 665 rows; two rows repeat the row before them exactly and are one entry each.
    assert_eq!(got.entries.len(), 663);
    let odd = got
        .entries
        .iter()
        .find(|e| e.remarks.contains("3033-09-30"))
        .unwrap();
    assert_eq!(odd.name, "JOSE ERNESTO GARCIA");
    assert_eq!(odd.listed_on, "2022-09-26");
    assert_country_codes(&got);
}

#[test]
fn un_2026_has_730_individuals_and_273_entities() {
    let Some(dir) = data("un_sc_2026-02") else {
        return;
    };
    let got = watchlist::import(Format::UnXml, &dir.join("UN_consolidated.xml"), true).unwrap();
    let types = count_types(&got);
    assert_eq!(types[&pb::SubjectType::Person], 730);
    assert_eq!(types[&pb::SubjectType::Organisation], 273);
    let with_countries = got
        .entries
        .iter()
        .filter(|e| !e.countries.is_empty())
        .count();
    assert!(with_countries > 600, "{with_countries}");
    assert_country_codes(&got);
}

#[test]
fn reimporting_the_same_files_gives_the_same_digest() {
    let Some(dir) = data("ofac_sdn_2021-07") else {
        return;
    };
    let a = watchlist::import(Format::OfacSdn, &dir, false).unwrap();
    let b = watchlist::import(Format::OfacSdn, &dir, false).unwrap();
    assert_eq!(Digest::of(&a.entries), Digest::of(&b.entries));
    assert!(watchlist::diff(&a.entries, &b.entries).is_empty());
}

/// Prints the time to import the full 2021 SDN files, and to compute the list digest of
/// the result. Run it in release mode:
/// `cargo test --release --test watchlist_import -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run in release mode with --ignored --nocapture"]
fn measure_sdn_import_time() {
    let Some(dir) = data("ofac_sdn_2021-07") else {
        return;
    };
    let runs = 10;
    let (mut import_ms, mut digest_ms) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let start = Instant::now();
        let got = watchlist::import(Format::OfacSdn, &dir, true).unwrap();
        import_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let digest = Digest::of(&got.entries);
        digest_ms.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(got.entries.len(), 8_976, "{digest}");
    }
    let summary = |ms: &mut Vec<f64>| {
        ms.sort_by(f64::total_cmp);
        format!("best {:.1} ms, median {:.1} ms", ms[0], ms[ms.len() / 2])
    };
    println!(
        "SDN 2021 (8,976 entries, 4 files, {runs} runs): import {}; digest {}",
        summary(&mut import_ms),
        summary(&mut digest_ms)
    );
}
