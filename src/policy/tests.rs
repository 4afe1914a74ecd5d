use std::path::Path;

use super::{redact::decade_floor, *};
use crate::pb;

const FILE: &str = "/etc/entente/policy.toml";
const NODE: &str = "US-BIS";
const PARTNER: &str = "DE-BAFA";
const NOW: i64 = 1_780_000_000_000;
const DAY: i64 = 86_400_000;

const ALL_REPORT_KINDS: &str =
    r#"kinds = ["suspicious-transaction", "denial-notification", "enforcement-alert"]"#;

fn parse(text: &str) -> Result<(PolicySet, Vec<PolicyWarning>), PolicyErrors> {
    PolicySet::parse(Path::new(FILE), text)
}

/// A policy that must parse without warnings.
fn policy(text: &str) -> PolicySet {
    let (set, warnings) = parse(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    set
}

/// DE-BAFA with one share rule `r` for every report kind, plus `lines` (conditions,
/// redactions).
fn one_rule(lines: &str) -> PolicySet {
    policy(&format!(
        "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\naccept = [\"enforcement-alert\"]\n\
         [[partner.rule]]\nid = \"r\"\n{ALL_REPORT_KINDS}\naction = \"share\"\n{lines}\n"
    ))
}

fn subject(
    kind: pb::SubjectType,
    name: &str,
    countries: &[&str],
    addresses: &[&str],
) -> pb::Subject {
    pb::Subject {
        r#type: kind as i32,
        name: name.into(),
        aliases: vec![format!("{name} Trading")],
        countries: countries.iter().map(|c| c.to_string()).collect(),
        identifiers: vec![pb::Identifier {
            scheme: "registration".into(),
            value: "HRB-448812".into(),
            country: countries.first().map(|c| c.to_string()).unwrap_or_default(),
        }],
        addresses: addresses
            .iter()
            .map(|c| pb::Address {
                lines: vec!["Unit 4, 118 Harbour Road".into()],
                city: "Port Example".into(),
                postal_code: "40213".into(),
                country: c.to_string(),
            })
            .collect(),
        role: "consignee".into(),
    }
}

fn goods(control_entry: &str, hs_code: &str, minor_units: i64) -> pb::Goods {
    pb::Goods {
        description: "Field-programmable gate arrays".into(),
        hs_code: hs_code.into(),
        control_entry: control_entry.into(),
        quantity: 400.0,
        unit: "pcs".into(),
        value: Some(pb::Money {
            minor_units,
            currency: "USD".into(),
        }),
    }
}

/// An AMBER suspicious-transaction report released to DE-BAFA, with every redactable field
/// filled.
fn report() -> pb::Report {
    pb::Report {
        kind: pb::ItemKind::SuspiciousTransaction as i32,
        title: "Front company buying FPGAs".into(),
        reference: "CASE-2026-0417".into(),
        subjects: vec![
            subject(
                pb::SubjectType::Organisation,
                "Northwind",
                &["AE"],
                &["AE", "AE", "MY"],
            ),
            subject(pb::SubjectType::Person, "J. Doe", &["RU"], &["RU"]),
        ],
        goods: vec![
            goods("3A001.a.1", "854239", 18_600_000),
            goods("5A002.a.1", "847150", 99),
        ],
        route: Some(pb::Route {
            origin: "US".into(),
            transit: vec!["AE".into()],
            destination: "MY".into(),
            end_user_country: "CN".into(),
        }),
        red_flags: vec!["payment from a third country".into()],
        narrative: "Eleven orders just below the threshold.".into(),
        handling: Some(pb::Handling {
            tlp: pb::TlpLevel::Amber as i32,
            originator_control: false,
            releasable_to: vec![PARTNER.into()],
            retention_days: 0,
        }),
        denial_date: String::new(),
    }
}

fn facts(report: &pb::Report) -> ItemFacts<'_> {
    ItemFacts {
        report,
        origin: NODE,
        created_at_ms: NOW - 10 * DAY,
        now_ms: NOW,
        consented_to: &[],
    }
}

fn decide(set: &PolicySet, report: &pb::Report) -> Decision {
    set.decide(NODE, PARTNER, &facts(report))
}

fn shares(set: &PolicySet, report: &pb::Report) -> bool {
    matches!(decide(set, report), Decision::Share { .. })
}

/// The copy a share decision sends; panics on a refusal.
fn shared(decision: Decision) -> pb::Report {
    match decision {
        Decision::Share { report, .. } => report,
        Decision::Deny { reason, .. } => panic!("refused: {reason}"),
    }
}

fn denial_reason(decision: Decision) -> (Option<String>, String) {
    match decision {
        Decision::Deny { rule, reason } => (rule, reason),
        Decision::Share { rule, .. } => panic!("shared under rule {rule}"),
    }
}

fn handling(r: &mut pb::Report) -> &mut pb::Handling {
    r.handling.get_or_insert_with(Default::default)
}

/// Whether `path` holds nothing in `r` (the test's own reading of the documented paths).
pub(super) fn is_absent(path: &str, r: &pb::Report) -> bool {
    let subjects = |f: fn(&pb::Subject) -> bool| r.subjects.iter().all(f);
    let goods = |f: fn(&pb::Goods) -> bool| r.goods.iter().all(f);
    let route = |f: fn(&pb::Route) -> bool| r.route.as_ref().is_none_or(f);
    match path {
        "reference" => r.reference.is_empty(),
        "narrative" => r.narrative.is_empty(),
        "red_flags" => r.red_flags.is_empty(),
        "subjects[].aliases" => subjects(|s| s.aliases.is_empty()),
        "subjects[].countries" => subjects(|s| s.countries.is_empty()),
        "subjects[].identifiers" => subjects(|s| s.identifiers.is_empty()),
        "subjects[].addresses" => subjects(|s| s.addresses.is_empty()),
        "subjects[].role" => subjects(|s| s.role.is_empty()),
        "goods" => r.goods.is_empty(),
        "goods[].hs_code" => goods(|g| g.hs_code.is_empty()),
        "goods[].control_entry" => goods(|g| g.control_entry.is_empty()),
        "goods[].quantity" => goods(|g| g.quantity == 0.0 && g.unit.is_empty()),
        "goods[].value" => goods(|g| g.value.is_none()),
        "route" => r.route.is_none(),
        "route.origin" => route(|r| r.origin.is_empty()),
        "route.transit" => route(|r| r.transit.is_empty()),
        "route.destination" => route(|r| r.destination.is_empty()),
        "route.end_user_country" => route(|r| r.end_user_country.is_empty()),
        other => panic!("the test does not know path {other}"),
    }
}

/// Every documented redaction path.
pub(super) const PATHS: [&str; 18] = [
    "reference",
    "narrative",
    "red_flags",
    "subjects[].aliases",
    "subjects[].countries",
    "subjects[].identifiers",
    "subjects[].addresses",
    "subjects[].role",
    "goods",
    "goods[].hs_code",
    "goods[].control_entry",
    "goods[].quantity",
    "goods[].value",
    "route",
    "route.origin",
    "route.transit",
    "route.destination",
    "route.end_user_country",
];

// ---------------------------------------------------------------------------------------------
// Matchers.

#[test]
fn kinds_match_only_the_listed_kinds() {
    let set = policy(
        "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\n[[partner.rule]]\nid = \"denials\"\n\
         kinds = [\"denial-notification\"]\naction = \"share\"\n",
    );
    let mut denial = report();
    denial.kind = pb::ItemKind::DenialNotification as i32;
    denial.denial_date = "2026-03-01".into();
    assert!(shares(&set, &denial));
    assert!(!shares(&set, &report()));
}

#[test]
fn tlp_max_matches_items_at_or_below_the_level() {
    let set = one_rule("tlp_max = \"GREEN\"");
    let mut r = report();
    for (tlp, matches) in [
        (pb::TlpLevel::Clear, true),
        (pb::TlpLevel::Green, true),
        (pb::TlpLevel::Amber, false),
    ] {
        handling(&mut r).tlp = tlp as i32;
        assert_eq!(shares(&set, &r), matches, "{tlp:?}");
    }
    let set = one_rule("tlp_max = \"AMBER+STRICT\"");
    handling(&mut r).tlp = pb::TlpLevel::AmberStrict as i32;
    assert!(shares(&set, &r));
}

#[test]
fn originator_control_matches_only_items_with_that_flag() {
    let with = one_rule("originator_control = true");
    let without = one_rule("originator_control = false");
    let mut r = report();
    assert!(!shares(&with, &r) && shares(&without, &r));
    handling(&mut r).originator_control = true;
    assert!(shares(&with, &r) && !shares(&without, &r));
}

#[test]
fn releasable_to_partner_matches_only_items_released_to_the_partner() {
    let set = one_rule("releasable_to = \"partner\"");
    let mut r = report();
    assert!(shares(&set, &r));
    handling(&mut r).releasable_to = vec!["JP-METI".into()];
    assert!(!shares(&set, &r));
    handling(&mut r).releasable_to.clear();
    assert!(!shares(&set, &r));
}

#[test]
fn subject_types_match_any_subject_of_a_listed_type() {
    assert!(shares(&one_rule("subject_types = [\"person\"]"), &report()));
    assert!(shares(
        &one_rule("subject_types = [\"vessel\", \"organisation\"]"),
        &report()
    ));
    let set = one_rule("subject_types = [\"vessel\", \"aircraft\"]");
    assert!(!shares(&set, &report()));
}

#[test]
fn subject_countries_match_any_subject_with_a_listed_country() {
    assert!(shares(
        &one_rule("subject_countries = [\"IR\", \"RU\"]"),
        &report()
    ));
    // Address and route countries are not subject countries.
    let set = one_rule("subject_countries = [\"MY\", \"CN\"]");
    assert!(!shares(&set, &report()));
}

#[test]
fn subject_type_and_country_must_hold_for_the_same_subject() {
    let set = one_rule("subject_types = [\"organisation\"]\nsubject_countries = [\"RU\"]");
    assert!(!shares(&set, &report()), "the RU subject is a person");
    let set = one_rule("subject_types = [\"person\"]\nsubject_countries = [\"RU\"]");
    assert!(shares(&set, &report()));
}

#[test]
fn control_entries_match_by_prefix_or_exactly_ignoring_case() {
    for (pattern, matches) in [
        ("3A*", true),
        ("3a001*", true),
        ("5A002*", true),
        ("3A001.A.1", true),
        ("5A002", false),
        ("3A001", false),
        ("4A*", false),
        ("*", true),
    ] {
        let set = one_rule(&format!("control_entries = [\"{pattern}\"]"));
        assert_eq!(shares(&set, &report()), matches, "{pattern}");
    }
}

#[test]
fn hs_codes_match_by_prefix_or_exactly() {
    for (pattern, matches) in [
        ("8542*", true),
        ("8542.39", true),
        ("847150", true),
        ("8471.50.00", false),
        ("8543*", false),
        ("85423", false),
    ] {
        let text = format!("hs_codes = [\"{pattern}\"]");
        let result = parse(&format!(
            "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\naccept = [\"enforcement-alert\"]\n\
             [[partner.rule]]\nid = \"r\"\n{ALL_REPORT_KINDS}\naction = \"share\"\n{text}\n"
        ));
        match result {
            Ok((set, _)) => assert_eq!(shares(&set, &report()), matches, "{pattern}"),
            Err(e) => assert!(!matches && pattern == "85423", "{pattern}: {e}"),
        }
    }
}

#[test]
fn a_pattern_never_matches_an_empty_value() {
    let mut r = report();
    for g in &mut r.goods {
        g.control_entry.clear();
    }
    assert!(!shares(&one_rule("control_entries = [\"*\"]"), &r));
}

#[test]
fn goods_conditions_must_hold_for_the_same_goods() {
    let set = one_rule("control_entries = [\"5A002*\"]\nhs_codes = [\"8542*\"]");
    assert!(!shares(&set, &report()), "the 5A002 goods are HS 8471");
    let set = one_rule("control_entries = [\"5A002*\"]\nhs_codes = [\"8471*\"]");
    assert!(shares(&set, &report()));
}

#[test]
fn route_countries_match_any_country_of_the_route() {
    for country in ["US", "AE", "MY", "CN"] {
        let set = one_rule(&format!("route_countries = [\"{country}\"]"));
        assert!(shares(&set, &report()), "{country}");
    }
    let set = one_rule("route_countries = [\"IR\", \"RU\"]");
    assert!(
        !shares(&set, &report()),
        "RU is a subject country, not a route country"
    );
    let mut r = report();
    r.route = None;
    assert!(!shares(&one_rule("route_countries = [\"US\"]"), &r));
}

#[test]
fn watchlists_never_match_a_report() {
    let set = one_rule("watchlists = [\"US-TREAS/*\", \"US-BIS/entity-list\"]");
    assert_eq!(denial_reason(decide(&set, &report())).1, "no rule matched");
}

#[test]
fn max_age_days_matches_items_no_older_than_the_limit() {
    let set = one_rule("max_age_days = 30");
    let r = report();
    let at = |created_at_ms| ItemFacts {
        created_at_ms,
        ..facts(&r)
    };
    let shared_at = |created| {
        matches!(
            set.decide(NODE, PARTNER, &at(created)),
            Decision::Share { .. }
        )
    };
    assert!(shared_at(NOW - 30 * DAY));
    assert!(!shared_at(NOW - 30 * DAY - 1));
    assert!(
        shared_at(NOW + DAY),
        "a clock ahead of ours does not make an item old"
    );
    assert!(!shared_at(i64::MIN), "no overflow on absurd times");
}

// ---------------------------------------------------------------------------------------------
// Actions.

#[test]
fn a_share_rule_sends_the_report_unchanged_when_it_redacts_nothing() {
    let decision = decide(&one_rule(""), &report());
    assert_eq!(
        decision,
        Decision::Share {
            rule: "r".into(),
            report: report(),
            redactions: vec![],
        }
    );
}

#[test]
fn a_deny_rule_refuses_and_names_itself() {
    let set = policy(&format!(
        "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\n[[partner.rule]]\nid = \"keep-home\"\n\
         {ALL_REPORT_KINDS}\nsubject_countries = [\"AE\"]\naction = \"deny\"\n\
         [[partner.rule]]\nid = \"all\"\n\
         {ALL_REPORT_KINDS}\naction = \"share\"\n"
    ));
    let (rule, reason) = denial_reason(decide(&set, &report()));
    assert_eq!(rule.as_deref(), Some("keep-home"));
    assert_eq!(reason, "rule `keep-home` denies");
}

#[test]
fn every_redaction_path_removes_its_field_and_leaves_the_others() {
    let original = report();
    for path in PATHS {
        assert!(
            !is_absent(path, &original),
            "{path} is empty in the test report"
        );
        let set = one_rule(&format!("redact = [\"{path}\"]"));
        let decision = decide(&set, &original);
        let Decision::Share {
            report: copy,
            redactions,
            ..
        } = decision
        else {
            panic!("{path}: refused");
        };
        assert!(is_absent(path, &copy), "{path} is still present");
        assert_eq!(redactions, [path]);
        for other in PATHS {
            let nested =
                other.starts_with(&format!("{path}[].")) || other.starts_with(&format!("{path}."));
            if other != path && !nested {
                assert!(!is_absent(other, &copy), "redacting {path} removed {other}");
            }
        }
        assert_eq!(copy.title, original.title);
        assert_eq!(copy.handling, original.handling, "the marking travels");
        assert_eq!(copy.subjects.len(), original.subjects.len());
        assert!(copy.subjects.iter().all(|s| !s.name.is_empty()));
    }
}

#[test]
fn a_redacted_copy_is_still_a_valid_report() {
    let all = PATHS.map(|p| format!("\"{p}\"")).join(", ");
    let copy = shared(decide(&one_rule(&format!("redact = [{all}]")), &report()));
    crate::report::validate(&copy, "test").unwrap();
    let copy = shared(decide(
        &one_rule("generalise = [\"goods[].value\", \"subjects[].addresses\"]"),
        &report(),
    ));
    crate::report::validate(&copy, "test").unwrap();
}

#[test]
fn generalising_a_value_keeps_the_lower_end_of_its_decade() {
    let set = one_rule("generalise = [\"goods[].value\"]");
    let decision = decide(&set, &report());
    let Decision::Share {
        report: copy,
        redactions,
        ..
    } = decision
    else {
        panic!("refused");
    };
    assert_eq!(redactions, ["goods[].value (generalised)"]);
    let values: Vec<_> = copy
        .goods
        .iter()
        .map(|g| g.value.clone().unwrap())
        .collect();
    assert_eq!(values[0].minor_units, 10_000_000);
    assert_eq!(values[1].minor_units, 10);
    assert!(values.iter().all(|v| v.currency == "USD"));
    assert_eq!(copy.goods[0].description, report().goods[0].description);
}

#[test]
fn decade_floor_handles_every_amount() {
    let cases = [
        (i64::MIN, 0),
        (-5, 0),
        (0, 0),
        (1, 1),
        (9, 1),
        (10, 10),
        (99, 10),
        (18_600_000, 10_000_000),
        (i64::MAX, 1_000_000_000_000_000_000),
    ];
    for (amount, floor) in cases {
        assert_eq!(decade_floor(amount), floor, "{amount}");
    }
}

#[test]
fn generalising_addresses_keeps_one_address_per_country() {
    let set = one_rule("generalise = [\"subjects[].addresses\"]");
    let copy = shared(decide(&set, &report()));
    let country_only = |c: &str| pb::Address {
        country: c.into(),
        ..Default::default()
    };
    assert_eq!(
        copy.subjects[0].addresses,
        [country_only("AE"), country_only("MY")]
    );
    assert_eq!(copy.subjects[1].addresses, [country_only("RU")]);
    assert_eq!(
        copy.subjects[0].identifiers,
        report().subjects[0].identifiers
    );
}

#[test]
fn a_field_generalised_and_redacted_by_parts_is_gone() {
    let set = one_rule("redact = [\"goods\"]\ngeneralise = [\"goods[].value\"]");
    let decision = decide(&set, &report());
    let Decision::Share {
        report: copy,
        redactions,
        ..
    } = decision
    else {
        panic!("refused");
    };
    assert!(copy.goods.is_empty());
    assert_eq!(redactions, ["goods", "goods[].value (generalised)"]);
}

// ---------------------------------------------------------------------------------------------
// Markings.

/// A policy sharing every report kind at every TLP level with DE-BAFA and JP-METI.
fn share_everything() -> PolicySet {
    let partner = |agency: &str| {
        format!(
            "[[partner]]\nagency = \"{agency}\"\n[[partner.rule]]\nid = \"all\"\n\
             {ALL_REPORT_KINDS}\ntlp_max = \"RED\"\naction = \"share\"\n"
        )
    };
    policy(&format!(
        "version = 1\n{}{}",
        partner("DE-BAFA"),
        partner("JP-METI")
    ))
}

#[test]
fn tlp_red_never_leaves_the_node() {
    let mut r = report();
    handling(&mut r).tlp = pb::TlpLevel::Red as i32;
    let (rule, reason) = denial_reason(decide(&share_everything(), &r));
    assert_eq!(rule, None);
    assert_eq!(reason, "TLP:RED never leaves the node");
}

#[test]
fn amber_strict_goes_only_to_agencies_named_in_releasable_to() {
    let set = share_everything();
    let mut r = report();
    handling(&mut r).tlp = pb::TlpLevel::AmberStrict as i32;
    assert!(shares(&set, &r), "DE-BAFA is named");
    let (rule, reason) = denial_reason(set.decide(NODE, "JP-METI", &facts(&r)));
    assert_eq!(rule, None);
    assert!(
        reason.contains("AMBER+STRICT") && reason.contains("JP-METI"),
        "{reason}"
    );
}

#[test]
fn the_third_party_rule_keeps_a_partners_item_from_agencies_it_did_not_release_it_to() {
    let set = share_everything();
    let mut r = report();
    handling(&mut r).originator_control = true;
    handling(&mut r).releasable_to = vec!["JP-METI".into()];
    fn from<'a>(r: &'a pb::Report, origin: &'a str) -> ItemFacts<'a> {
        ItemFacts { origin, ..facts(r) }
    }
    let (rule, reason) = denial_reason(set.decide(NODE, "DE-BAFA", &from(&r, "GB-ECJU")));
    assert_eq!(rule, None);
    assert_eq!(
        reason,
        "third-party rule: originator GB-ECJU did not release it to DE-BAFA"
    );
    let released = set.decide(NODE, "JP-METI", &from(&r, "GB-ECJU"));
    assert!(matches!(released, Decision::Share { .. }));
    let own = set.decide(NODE, "DE-BAFA", &from(&r, NODE));
    assert!(
        matches!(own, Decision::Share { .. }),
        "our own item: our rules decide"
    );
    handling(&mut r).originator_control = false;
    let uncontrolled = set.decide(NODE, "DE-BAFA", &from(&r, "GB-ECJU"));
    assert!(matches!(uncontrolled, Decision::Share { .. }));
}

#[test]
fn an_item_is_never_sent_back_to_its_originator() {
    let r = report();
    let item = ItemFacts {
        origin: PARTNER,
        ..facts(&r)
    };
    let (rule, reason) = denial_reason(share_everything().decide(NODE, PARTNER, &item));
    assert_eq!(rule, None);
    assert_eq!(reason, "the partner is the originator");
}

#[test]
fn an_item_without_a_valid_tlp_level_is_refused() {
    let set = share_everything();
    for tlp in [0, 6, -1, i32::MAX] {
        let mut r = report();
        handling(&mut r).tlp = tlp;
        let (rule, reason) = denial_reason(decide(&set, &r));
        assert!(
            rule.is_none() && reason.contains("no valid TLP level"),
            "{reason}"
        );
    }
    let mut r = report();
    r.handling = None;
    assert!(!shares(&set, &r));
}

#[test]
fn a_report_of_a_kind_that_is_not_a_report_kind_is_refused() {
    let set = share_everything();
    for kind in [0, 4, 5, 6, 99, -3] {
        let mut r = report();
        r.kind = kind;
        assert!(!shares(&set, &r), "{kind}");
    }
}

// ---------------------------------------------------------------------------------------------
// Rules, partners and inbound.

#[test]
fn the_first_matching_rule_wins() {
    let rule = |id: &str, action: &str| {
        format!(
            "[[partner.rule]]\nid = \"{id}\"\n{ALL_REPORT_KINDS}\n\
             subject_countries = [\"AE\"]\naction = \"{action}\"\n"
        )
    };
    let text = |first: String, second: String| {
        format!(
            "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\n{first}[[partner.rule]]\n\
             id = \"later\"\n{ALL_REPORT_KINDS}\nsubject_countries = [\"AE\", \"RU\"]\n\
             action = \"deny\"\n{second}"
        )
    };
    let (set, _) = parse(&text(rule("first", "share"), String::new())).unwrap();
    assert!(matches!(decide(&set, &report()), Decision::Share { rule, .. } if rule == "first"));
    let (set, _) = parse(&text(rule("first", "deny"), rule("last", "share"))).unwrap();
    assert_eq!(
        denial_reason(decide(&set, &report())).0.as_deref(),
        Some("first")
    );
}

#[test]
fn an_item_that_no_rule_matches_is_refused() {
    let set = one_rule("subject_countries = [\"KP\"]");
    let (rule, reason) = denial_reason(decide(&set, &report()));
    assert_eq!((rule, reason.as_str()), (None, "no rule matched"));
}

#[test]
fn a_partner_without_a_policy_gets_nothing() {
    let (rule, reason) =
        denial_reason(share_everything().decide(NODE, "FR-DGDDI", &facts(&report())));
    assert_eq!(rule, None);
    assert_eq!(reason, "no policy for partner FR-DGDDI");
}

#[test]
fn deny_all_denies_everything_and_accepts_nothing() {
    let set = PolicySet::deny_all();
    assert!(set.partners().is_empty());
    assert!(!shares(&set, &report()));
    assert!(!set.accepts(PARTNER, pb::ItemKind::SuspiciousTransaction));
}

#[test]
fn partners_are_listed_in_file_order() {
    assert_eq!(share_everything().partners(), ["DE-BAFA", "JP-METI"]);
}

#[test]
fn inbound_accepts_only_the_listed_kinds_from_that_partner() {
    let set = policy(
        "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\n\
         accept = [\"denial-notification\", \"watchlist-delta\"]\n\
         [[partner]]\nagency = \"JP-METI\"\naccept = []\n[[partner.rule]]\nid = \"r\"\n\
         kinds = [\"denial-notification\"]\naction = \"share\"\n",
    );
    assert!(set.accepts("DE-BAFA", pb::ItemKind::DenialNotification));
    assert!(set.accepts("DE-BAFA", pb::ItemKind::WatchlistDelta));
    assert!(!set.accepts("DE-BAFA", pb::ItemKind::SuspiciousTransaction));
    assert!(!set.accepts("DE-BAFA", pb::ItemKind::Unspecified));
    assert!(!set.accepts("JP-METI", pb::ItemKind::DenialNotification));
    assert!(!set.accepts("FR-DGDDI", pb::ItemKind::DenialNotification));
}

// ---------------------------------------------------------------------------------------------
// Parse errors.

/// A valid policy that the error tests edit.
const BASE: &str = r#"version = 1

[[partner]]
agency = "DE-BAFA"
accept = ["suspicious-transaction", "denial-notification"]

  [[partner.rule]]
  id = "no-dprk"
  kinds = ["suspicious-transaction"]
  subject_countries = ["KP"]
  action = "deny"

  [[partner.rule]]
  id = "strs"
  kinds = ["suspicious-transaction"]
  tlp_max = "AMBER"
  control_entries = ["3A*", "5A002"]
  action = "share"
  redact = ["subjects[].identifiers", "narrative"]
  generalise = ["goods[].value"]

[[partner]]
agency = "JP-METI"
accept = ["denial-notification"]

  [[partner.rule]]
  id = "denials"
  kinds = ["denial-notification"]
  action = "share"
"#;

/// BASE with `old`, which must occur exactly once, replaced by `new`.
fn edit(old: &str, new: &str) -> String {
    assert_eq!(BASE.matches(old).count(), 1, "{old}");
    BASE.replacen(old, new, 1)
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn errors(text: &str) -> Vec<PolicyError> {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(PolicyErrors(errors)) => errors,
    }
}

/// Asserts that `text` has exactly one error, at `key` on the line holding `at`; returns its
/// expectation.
fn assert_error(text: &str, key: &str, at: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert_eq!(error.file, Path::new(FILE));
    assert_eq!(error.key, key, "{error}");
    assert_eq!(error.line, line_of(text, at), "{error}");
    error.expected.clone()
}

#[test]
fn the_base_policy_is_valid() {
    policy(BASE);
}

#[test]
fn a_toml_syntax_error_is_reported_with_its_line() {
    let text = edit("tlp_max = \"AMBER\"", "tlp_max = \"AMBER");
    let found = errors(&text);
    assert_eq!(found[0].line, line_of(&text, "tlp_max"), "{found:?}");
    assert_eq!(found[0].key, "");
    assert!(found[0].expected.starts_with("valid TOML"), "{found:?}");
    let text = edit("action = \"deny\"", "action = = \"deny\"");
    assert_eq!(errors(&text)[0].line, line_of(&text, "= ="));
}

#[test]
fn a_missing_or_unknown_version_is_refused() {
    let expected = assert_error(&edit("version = 1\n", ""), "version", "");
    assert!(expected.contains("version = 1"), "{expected}");
    assert_error(&edit("version = 1", "version = 2"), "version", "version");
    assert_error(
        &edit("version = 1", "version = \"1\""),
        "version",
        "version",
    );
}

#[test]
fn an_unknown_key_is_refused_at_each_level() {
    let expected = assert_error(&format!("colour = 1\n{BASE}"), "colour", "colour");
    assert!(expected.contains("version, partner"), "{expected}");
    assert_error(
        &edit("agency = \"JP-METI\"", "agency = \"JP-METI\"\nshare = []"),
        "partner[1].share",
        "share = []",
    );
    let expected = assert_error(
        &edit("tlp_max = \"AMBER\"", "tlp_max = \"AMBER\"\ntlp = \"RED\""),
        "partner[0].rule[1].tlp",
        "tlp = ",
    );
    assert!(
        expected.contains("one of the keys of a rule: id, kinds"),
        "{expected}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_its_key() {
    let expected = assert_error(
        &edit("tlp_max = \"AMBER\"", "tlp_max = 3"),
        "partner[0].rule[1].tlp_max",
        "tlp_max",
    );
    assert!(expected.contains("(found an integer)"), "{expected}");
    assert_error(
        &edit("\"3A*\", \"5A002\"]", "\"3A*\", 5]"),
        "partner[0].rule[1].control_entries[1]",
        "control_entries",
    );
    assert_error(
        &edit("subject_countries = [\"KP\"]", "subject_countries = \"KP\""),
        "partner[0].rule[0].subject_countries",
        "subject_countries",
    );
    assert_error(
        &edit("tlp_max = \"AMBER\"", "originator_control = \"yes\""),
        "partner[0].rule[1].originator_control",
        "originator_control",
    );
    assert_error(
        &edit("agency = \"DE-BAFA\"", "agency = [\"DE-BAFA\"]"),
        "partner[0].agency",
        "DE-BAFA",
    );
    assert_error(
        &format!("partner = 1\n{}", "version = 1"),
        "partner",
        "partner",
    );
    assert_error(
        &format!("{BASE}[[partner]]\nagency = \"FR-DGDDI\"\nrule = [1]\n"),
        "partner[2].rule[0]",
        "rule = [1]",
    );
}

#[test]
fn unknown_kinds_tlp_levels_subject_types_and_paths_are_refused() {
    let expected = assert_error(
        &edit(
            "accept = [\"denial-notification\"]",
            "accept = [\"denials\"]",
        ),
        "partner[1].accept[0]",
        "denials",
    );
    assert!(expected.contains("\"denial-notification\""), "{expected}");
    assert_error(
        &edit(
            "kinds = [\"denial-notification\"]",
            "kinds = [\"correction\"]",
        ),
        "partner[1].rule[0].kinds[0]",
        "correction",
    );
    let expected = assert_error(
        &edit("tlp_max = \"AMBER\"", "tlp_max = \"amber\""),
        "partner[0].rule[1].tlp_max",
        "amber",
    );
    assert!(expected.contains("\"AMBER+STRICT\""), "{expected}");
    assert_error(
        &edit("tlp_max = \"AMBER\"", "subject_types = [\"company\"]"),
        "partner[0].rule[1].subject_types[0]",
        "company",
    );
    let expected = assert_error(
        &edit("\"narrative\"]", "\"subjects[].name\"]"),
        "partner[0].rule[1].redact[1]",
        "subjects[].name",
    );
    assert!(
        expected.contains("\"subjects[].identifiers\""),
        "{expected}"
    );
}

#[test]
fn a_rule_without_kinds_or_with_empty_kinds_is_refused() {
    let text = edit("  kinds = [\"denial-notification\"]\n", "");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "partner[1].rule[0].kinds");
    assert!(found[0].expected.contains("missing"), "{}", found[0]);
    // A missing key is reported at the rule's header.
    assert_eq!(found[0].line, line_of(&text, "id = \"denials\"") - 1);
    assert_error(
        &edit("kinds = [\"denial-notification\"]", "kinds = []"),
        "partner[1].rule[0].kinds",
        "kinds = []",
    );
}

#[test]
fn an_empty_list_condition_is_refused() {
    let expected = assert_error(
        &edit("subject_countries = [\"KP\"]", "subject_countries = []"),
        "partner[0].rule[0].subject_countries",
        "subject_countries",
    );
    assert!(expected.contains("non-empty"), "{expected}");
}

#[test]
fn missing_rule_id_and_action_are_refused() {
    let text = edit("  id = \"denials\"\n", "");
    assert_eq!(errors(&text)[0].key, "partner[1].rule[0].id");
    let text = edit("  action = \"deny\"\n", "");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "partner[0].rule[0].action");
    assert_eq!(found[0].line, line_of(&text, "id = \"no-dprk\"") - 1);
    assert_error(
        &edit("action = \"deny\"", "action = \"block\""),
        "partner[0].rule[0].action",
        "block",
    );
    assert_error(
        &edit("id = \"denials\"", "id = \"deny all\""),
        "partner[1].rule[0].id",
        "deny all",
    );
}

#[test]
fn a_rule_id_used_twice_in_a_partner_is_refused() {
    let text = edit("id = \"strs\"", "id = \"no-dprk\" # again");
    let expected = assert_error(&text, "partner[0].rule[1].id", "# again");
    assert!(expected.contains("partner[0].rule[0]"), "{expected}");
    // Another partner may use the same id.
    policy(&edit("id = \"denials\"", "id = \"strs\""));
}

#[test]
fn a_partner_given_twice_is_refused() {
    let text = edit("agency = \"JP-METI\"", "agency = \"DE-BAFA\" # again");
    let expected = assert_error(&text, "partner[1].agency", "# again");
    assert!(expected.contains("partner[0]"), "{expected}");
}

#[test]
fn an_invalid_agency_id_is_refused() {
    for bad in ["jp-meti", "JP METI", "J", ""] {
        let text = edit(
            "agency = \"JP-METI\"",
            &format!("agency = \"{bad}\" # here"),
        );
        let expected = assert_error(&text, "partner[1].agency", "# here");
        assert!(expected.contains("agency id"), "{expected}");
    }
    let text = edit("agency = \"JP-METI\"\n", "");
    assert_eq!(errors(&text)[0].key, "partner[1].agency");
}

#[test]
fn redact_or_generalise_on_a_deny_rule_is_refused() {
    let text = edit(
        "action = \"deny\"",
        "action = \"deny\"\nredact = [\"narrative\"]\ngeneralise = [\"goods[].value\"]",
    );
    let found = errors(&text);
    let keys: Vec<_> = found.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert_eq!(
        keys,
        [
            (
                "partner[0].rule[0].redact",
                line_of(&text, "redact = [\"narrative\"]")
            ),
            (
                "partner[0].rule[0].generalise",
                line_of(&text, "generalise = [\"goods[].value\"]")
            ),
        ]
    );
    assert!(found[0].expected.contains("deny rule"), "{found:?}");
}

#[test]
fn a_path_that_cannot_be_generalised_is_refused() {
    let expected = assert_error(
        &edit(
            "generalise = [\"goods[].value\"]",
            "generalise = [\"narrative\"]",
        ),
        "partner[0].rule[1].generalise[0]",
        "generalise",
    );
    assert!(expected.contains("\"subjects[].addresses\""), "{expected}");
}

#[test]
fn a_path_both_redacted_and_generalised_is_refused() {
    let text = edit(
        "generalise = [\"goods[].value\"]",
        "generalise = [\"goods[].value\", \"subjects[].addresses\"]\nredact = [\"goods[].value\"]",
    );
    // `redact` is now given twice: a TOML error.
    assert!(errors(&text)[0].expected.starts_with("valid TOML"));
    let text = edit("\"narrative\"]", "\"narrative\", \"goods[].value\"]");
    assert_error(&text, "partner[0].rule[1].generalise[0]", "generalise");
}

#[test]
fn bad_country_codes_are_refused() {
    for bad in ["kp", "KPR", "K", "K1", ""] {
        let text = edit(
            "subject_countries = [\"KP\"]",
            &format!("subject_countries = [\"IR\", \"{bad}\"]"),
        );
        let expected = assert_error(
            &text,
            "partner[0].rule[0].subject_countries[1]",
            "subject_countries",
        );
        assert!(expected.contains("two upper-case letters"), "{expected}");
    }
    let text = edit("tlp_max = \"AMBER\"", "route_countries = [\"ae\"]");
    assert_error(
        &text,
        "partner[0].rule[1].route_countries[0]",
        "route_countries",
    );
}

#[test]
fn bad_patterns_are_refused() {
    let control = |p: &str| edit("\"5A002\"]", &format!("\"{p}\"]"));
    for bad in ["3A*1", "**", "", "3A 001", "3A001/b"] {
        assert_error(
            &control(bad),
            "partner[0].rule[1].control_entries[1]",
            "control_entries",
        );
    }
    let hs = |p: &str| edit("tlp_max = \"AMBER\"", &format!("hs_codes = [\"{p}\"]"));
    for bad in ["85423", "8542x*", "12345678901", "85..42*", ".8542*"] {
        assert_error(&hs(bad), "partner[0].rule[1].hs_codes[0]", "hs_codes");
    }
    let watch = |p: &str| edit("tlp_max = \"AMBER\"", &format!("watchlists = [\"{p}\"]"));
    assert_error(
        &watch("US TREAS/*"),
        "partner[0].rule[1].watchlists[0]",
        "watchlists",
    );
    assert_error(
        &watch("*/list"),
        "partner[0].rule[1].watchlists[0]",
        "watchlists",
    );
    policy(&watch("US-TREAS/*"));
}

#[test]
fn max_age_days_and_releasable_to_outside_their_values_are_refused() {
    for bad in ["0", "-1", "36501", "1.5", "\"30\""] {
        let text = edit("tlp_max = \"AMBER\"", &format!("max_age_days = {bad}"));
        assert_error(&text, "partner[0].rule[1].max_age_days", "max_age_days");
    }
    let text = edit("tlp_max = \"AMBER\"", "releasable_to = \"DE-BAFA\"");
    let expected = assert_error(&text, "partner[0].rule[1].releasable_to", "releasable_to");
    assert!(expected.contains("\"partner\""), "{expected}");
}

#[test]
fn every_error_in_a_file_is_reported_in_line_order() {
    let text = BASE
        .replace("version = 1", "version = 3")
        .replace("tlp_max = \"AMBER\"", "tlp_max = \"PINK\"")
        .replace("\"narrative\"]", "\"story\"]")
        .replace("agency = \"JP-METI\"", "agency = \"jp\"")
        .replace("kinds = [\"denial-notification\"]", "kinds = []");
    let found: Vec<(String, usize)> = errors(&text).into_iter().map(|e| (e.key, e.line)).collect();
    let expected = [
        ("version", "version"),
        ("partner[0].rule[1].tlp_max", "PINK"),
        ("partner[0].rule[1].redact[1]", "story"),
        ("partner[1].agency", "\"jp\""),
        ("partner[1].rule[0].kinds", "kinds = []"),
    ]
    .map(|(key, at)| (key.to_owned(), line_of(&text, at)));
    assert_eq!(found, expected);
}

#[test]
fn errors_display_file_line_key_and_expectation() {
    let errors = parse(&edit("tlp_max = \"AMBER\"", "tlp_max = \"PINK\"")).unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!(
            "{FILE}:16: key `partner[0].rule[1].tlp_max`: expected a TLP level: one of"
        )),
        "{shown}"
    );
    let two =
        parse(&edit("version = 1", "version = 0").replace("\"AMBER\"", "\"PINK\"")).unwrap_err();
    assert_eq!(two.to_string().lines().count(), 2);
    let error: &dyn std::error::Error = &two;
    assert!(error.to_string().contains("version"));
}

#[test]
fn load_reads_a_file_and_reports_one_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, BASE).unwrap();
    let (set, warnings) = PolicySet::load(&path).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(set.partners(), ["DE-BAFA", "JP-METI"]);
    let missing = dir.path().join("missing.toml");
    let errors = PolicySet::load(&missing).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].file, missing);
    assert!(errors.to_string().starts_with(&format!(
        "{}: expected a readable policy file",
        missing.display()
    )));
}

#[test]
fn hostile_text_is_refused_without_panicking() {
    for text in [
        "",
        "\u{0}",
        "[[partner]]\n[[partner.rule]]\n",
        "version = 99999999999999999999",
        "partner = [[]]",
        "version = 1\n[partner]\nagency = \"DE-BAFA\"\n",
    ] {
        assert!(parse(text).is_err(), "{text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Warnings.

#[test]
fn a_rule_shadowed_by_an_earlier_one_is_warned_about() {
    let text = format!(
        "{BASE}\n  [[partner.rule]]\n  id = \"late-denials\"\n  \
         kinds = [\"denial-notification\"]\n  \
         tlp_max = \"GREEN\"\n  control_entries = [\"3A001*\"]\n  subject_types = [\"person\"]\n  \
         max_age_days = 5\n  action = \"deny\"\n"
    );
    let (_, warnings) = parse(&text).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].line, line_of(&text, "late-denials") - 1);
    assert!(
        warnings[0].message.contains("`late-denials`") && warnings[0].message.contains("`denials`"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].to_string().starts_with(&format!("{FILE}:")));
}

#[test]
fn a_rule_an_earlier_rule_only_partly_covers_is_not_warned_about() {
    let later = [
        "kinds = [\"suspicious-transaction\", \"enforcement-alert\"]",
        "kinds = [\"suspicious-transaction\"]\ncontrol_entries = [\"3*\"]",
        "kinds = [\"suspicious-transaction\"]\ncontrol_entries = [\"5A002*\"]",
        "kinds = [\"suspicious-transaction\"]\ncontrol_entries = [\"3A*\"]\ntlp_max = \"RED\"",
    ];
    for conditions in later {
        let text = format!(
            "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\n[[partner.rule]]\nid = \"a\"\n\
             kinds = [\"suspicious-transaction\"]\ncontrol_entries = [\"3A*\", \"5A002\"]\n\
             tlp_max = \"AMBER\"\naction = \"share\"\n\
             [[partner.rule]]\nid = \"b\"\n{conditions}\naction = \"deny\"\n"
        );
        let (_, warnings) = parse(&text).unwrap();
        assert!(warnings.is_empty(), "{conditions}: {warnings:?}");
    }
}

#[test]
fn a_partner_that_exchanges_nothing_is_warned_about() {
    let text = "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\naccept = []\n[[partner.rule]]\n\
                id = \"nothing\"\nkinds = [\"suspicious-transaction\"]\naction = \"deny\"\n";
    let (_, warnings) = parse(text).unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].line, 2);
    assert!(warnings[0].message.contains("DE-BAFA"), "{}", warnings[0]);
}

// ---------------------------------------------------------------------------------------------
// The example policies.

fn example(name: &str) -> PolicySet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/policies")
        .join(name);
    match PolicySet::load(&path) {
        Ok((set, warnings)) => {
            assert!(warnings.is_empty(), "{name}: {warnings:?}");
            set
        }
        Err(errors) => panic!("{errors}"),
    }
}

#[test]
fn the_mou_example_shares_only_denial_notifications() {
    let set = example("mou-denials-only.toml");
    let partner = set.partners()[0].clone();
    let mut denial = report();
    denial.kind = pb::ItemKind::DenialNotification as i32;
    denial.denial_date = "2026-02-11".into();
    handling(&mut denial).releasable_to = vec![partner.clone()];
    assert!(matches!(
        set.decide(NODE, &partner, &facts(&denial)),
        Decision::Share { .. }
    ));
    for kind in [
        pb::ItemKind::SuspiciousTransaction,
        pb::ItemKind::EnforcementAlert,
    ] {
        let mut other = denial.clone();
        other.kind = kind as i32;
        other.denial_date.clear();
        assert!(!matches!(
            set.decide(NODE, &partner, &facts(&other)),
            Decision::Share { .. }
        ));
    }
    assert!(set.accepts(&partner, pb::ItemKind::DenialNotification));
    assert!(!set.accepts(&partner, pb::ItemKind::SuspiciousTransaction));
}

#[test]
fn the_str_example_sends_strs_without_personal_identifiers() {
    let set = example("str-without-identifiers.toml");
    let partner = set.partners()[0].clone();
    let mut r = report();
    handling(&mut r).releasable_to = vec![partner.clone()];
    let (rule, _) = denial_reason(set.decide(NODE, &partner, &facts(&r)));
    assert_eq!(
        rule.as_deref(),
        Some("no-persons"),
        "the report names a person"
    );
    r.subjects
        .retain(|s| s.r#type != pb::SubjectType::Person as i32);
    let copy = shared(set.decide(NODE, &partner, &facts(&r)));
    assert_eq!(copy.subjects[0].addresses.len(), 2, "AE and MY");
    assert!(copy.reference.is_empty());
    assert!(
        copy.subjects
            .iter()
            .all(|s| s.identifiers.is_empty() && s.aliases.is_empty())
    );
    assert!(
        copy.subjects
            .iter()
            .flat_map(|s| &s.addresses)
            .all(|a| a.lines.is_empty() && a.city.is_empty() && a.postal_code.is_empty())
    );
    crate::report::validate(&copy, "test").unwrap();
}

#[test]
fn the_regional_group_example_shares_only_listed_categories() {
    let set = example("regional-group.toml");
    let partners = set.partners();
    assert!(partners.len() >= 2, "{partners:?}");
    let mut r = report();
    handling(&mut r).releasable_to = partners.clone();
    for partner in &partners {
        assert!(
            matches!(
                set.decide(NODE, partner, &facts(&r)),
                Decision::Share { .. }
            ),
            "{partner}"
        );
    }
    r.goods = vec![goods("9A012", "880211", 1_000_000)];
    for partner in &partners {
        assert!(
            !matches!(
                set.decide(NODE, partner, &facts(&r)),
                Decision::Share { .. }
            ),
            "{partner}"
        );
    }
}
