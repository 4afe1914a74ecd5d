//! Properties of the canonical form, the digest and the diff, on random lists.

use std::collections::BTreeMap;

use proptest::{collection::vec, prelude::*};

use super::*;

const COUNTRIES: [&str; 5] = ["IR", "ru", "AE", " CN", "DE"];
const PROGRAMS: [&str; 4] = ["SDGT", "IRAN", "IRGC", "IFSR"];

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 ]{{0,{max}}}")).expect("a valid regex")
}

fn entry(id: u32) -> impl Strategy<Value = pb::WatchlistEntry> {
    let identifier =
        (text(8), proptest::sample::select(COUNTRIES.to_vec())).prop_map(|(value, country)| {
            pb::Identifier {
                scheme: "passport".into(),
                value,
                country: country.into(),
            }
        });
    let address = (vec(text(12), 0..3), text(8)).prop_map(|(lines, city)| pb::Address {
        lines,
        city,
        ..Default::default()
    });
    (
        text(20),
        vec(text(12), 0..4),
        vec(proptest::sample::select(COUNTRIES.to_vec()), 0..4),
        vec(proptest::sample::select(PROGRAMS.to_vec()), 0..3),
        vec(identifier, 0..3),
        vec(address, 0..3),
        0..5i32,
    )
        .prop_map(
            move |(name, aliases, countries, programs, identifiers, addresses, kind)| {
                pb::WatchlistEntry {
                    id: id.to_string(),
                    r#type: kind,
                    name,
                    aliases,
                    countries: countries.into_iter().map(str::to_owned).collect(),
                    programs: programs.into_iter().map(str::to_owned).collect(),
                    identifiers,
                    addresses,
                    ..Default::default()
                }
            },
        )
}

/// A list of entries with distinct ids drawn from 0..40.
fn list() -> impl Strategy<Value = Vec<pb::WatchlistEntry>> {
    proptest::sample::subsequence((0..40u32).collect::<Vec<_>>(), 0..20)
        .prop_flat_map(|ids| ids.into_iter().map(entry).collect::<Vec<_>>())
}

proptest! {
    #[test]
    fn digest_does_not_depend_on_order(list in list(), rotate in 0usize..20) {
        let mut other = list.clone();
        other.reverse();
        if !other.is_empty() {
            let by = rotate % other.len();
            other.rotate_left(by);
        }
        prop_assert_eq!(Digest::of(&list), Digest::of(&other));
    }

    #[test]
    fn add_then_remove_returns_to_the_start(list in list(), extra in entry(99)) {
        let start = Digest::of(&list);
        let mut digest = start;
        digest.add(&extra);
        prop_assert_ne!(digest, start);
        digest.remove(&extra);
        prop_assert_eq!(digest, start);
    }

    #[test]
    fn diff_of_a_list_with_itself_is_empty(list in list()) {
        prop_assert!(diff(&list, &list).is_empty());
    }

    #[test]
    fn applying_the_diff_gives_the_new_digest(old in list(), new in list()) {
        let delta = diff(&old, &new);
        let mut entries: BTreeMap<String, pb::WatchlistEntry> =
            old.iter().map(|e| (e.id.clone(), canonical(e.clone()))).collect();
        let mut digest = Digest::of(&old);
        delta.apply(&mut entries, &mut digest);
        prop_assert_eq!(digest, Digest::of(&new));
        let expected: BTreeMap<String, pb::WatchlistEntry> =
            new.iter().map(|e| (e.id.clone(), canonical(e.clone()))).collect();
        prop_assert_eq!(entries, expected);
    }

    #[test]
    fn canonical_is_idempotent_and_ignores_repeated_field_order(e in entry(1)) {
        let once = canonical(e.clone());
        prop_assert_eq!(&canonical(once.clone()), &once);
        let mut shuffled = e;
        shuffled.aliases.reverse();
        shuffled.countries.reverse();
        shuffled.programs.reverse();
        shuffled.identifiers.reverse();
        shuffled.addresses.reverse();
        prop_assert_eq!(canonical(shuffled).encode_to_vec(), once.encode_to_vec());
    }
}

#[test]
fn canonical_trims_sorts_and_dedups() {
    let entry = pb::WatchlistEntry {
        id: " 7 ".into(),
        name: "ACME LTD ".into(),
        aliases: vec![
            "B".into(),
            " A".into(),
            "B".into(),
            "".into(),
            "ACME LTD".into(),
        ],
        countries: vec!["ir".into(), "AE".into(), "IR".into()],
        programs: vec!["SDGT ".into(), "IRAN".into()],
        ..Default::default()
    };
    let c = canonical(entry);
    assert_eq!(c.id, "7");
    assert_eq!(c.name, "ACME LTD");
    assert_eq!(c.aliases, ["A", "B"]);
    assert_eq!(c.countries, ["AE", "IR"]);
    assert_eq!(c.programs, ["IRAN", "SDGT"]);
}

#[test]
fn empty_list_digest_is_zero_and_hex_round_trips() {
    assert_eq!(Digest::of(&[]).hex(), "0".repeat(64));
    let e = pb::WatchlistEntry {
        id: "1".into(),
        name: "X".into(),
        ..Default::default()
    };
    let d = Digest::of([&e]);
    assert_eq!(Digest::from_hex(&d.hex()), Some(d));
    assert_eq!(Digest::from_hex("abc"), None);
}

#[test]
fn removal_borrows_across_bytes() {
    // Removing from zero wraps: 0 - h + h == 0 in either order.
    let e = pb::WatchlistEntry {
        id: "1".into(),
        name: "X".into(),
        ..Default::default()
    };
    let mut d = Digest::default();
    d.remove(&e);
    assert_ne!(d, Digest::default());
    d.add(&e);
    assert_eq!(d, Digest::default());
}

#[test]
fn diff_reports_changes_additions_and_removals() {
    let entry = |id: &str, name: &str| pb::WatchlistEntry {
        id: id.into(),
        name: name.into(),
        ..Default::default()
    };
    let old = [entry("1", "A"), entry("2", "B"), entry("3", "C")];
    let new = [entry("3", "C "), entry("2", "B2"), entry("4", "D")];
    let delta = diff(&old, &new);
    let upserts: Vec<(&str, &str)> = delta
        .upserts
        .iter()
        .map(|e| (e.id.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(upserts, [("2", "B2"), ("4", "D")]);
    assert_eq!(delta.removals, ["1"]);
}
