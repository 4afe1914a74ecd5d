//! Property tests: random reports against random policies, checked against a model of the
//! documented rules written independently of the module's matcher.

use std::path::Path;

use proptest::{collection::vec, option, prelude::*, sample::subsequence};

use super::{Decision, ItemFacts, PolicySet, tests::PATHS, tests::is_absent};
use crate::pb;

const NODE: &str = "US-BIS";
const DAY: i64 = 86_400_000;
const NOW: i64 = 1_780_000_000_000;
/// Agencies that appear as origins and in releasable-to lists.
const AGENCIES: [&str; 4] = ["DE-BAFA", "JP-METI", "US-BIS", "GB-ECJU"];
/// Partners that have a policy.
const POLICY_PARTNERS: [&str; 2] = ["DE-BAFA", "JP-METI"];
/// Partners decisions are asked for; FR-DGDDI has no policy.
const DECIDE_FOR: [&str; 3] = ["DE-BAFA", "JP-METI", "FR-DGDDI"];
const KIND_NAMES: [&str; 4] = [
    "suspicious-transaction",
    "denial-notification",
    "enforcement-alert",
    "watchlist-delta",
];
const TLPS: [&str; 5] = ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"];
const TYPES: [&str; 4] = ["person", "organisation", "vessel", "aircraft"];
const COUNTRIES: [&str; 5] = ["IR", "RU", "AE", "CN", "DE"];
const CONTROL_ENTRIES: [&str; 6] = ["3A001.a.1", "3a001.b", "5A002", "5A002.a.1", "9E003", ""];
const CONTROL_PATTERNS: [&str; 7] = ["3A*", "3A001*", "5A002", "5a002*", "9E003", "*", "4*"];
const HS_CODES: [&str; 4] = ["854239", "854231", "847150", ""];
const HS_PATTERNS: [&str; 5] = ["8542*", "854239", "8471.50", "84*", "9*"];
const WATCHLISTS: [&str; 2] = ["US-TREAS/*", "US-BIS/entity-list"];
const GENERALISABLE: [&str; 2] = ["goods[].value", "subjects[].addresses"];

// ---------------------------------------------------------------------------------------------
// Random reports.

fn pick<const N: usize>(pool: [&'static str; N]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(pool.to_vec())
}

fn some_of<const N: usize>(
    pool: [&'static str; N],
    max: usize,
) -> impl Strategy<Value = Vec<&'static str>> {
    subsequence(pool.to_vec(), 0..=max.min(N))
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9 ]{{1,{max}}}")).expect("a valid regex")
}

fn subject() -> impl Strategy<Value = pb::Subject> {
    let identifier = (text(10), pick(COUNTRIES)).prop_map(|(value, country)| pb::Identifier {
        scheme: "passport".into(),
        value,
        country: country.into(),
    });
    let address =
        (vec(text(20), 0..2), text(10), pick(COUNTRIES)).prop_map(|(lines, city, country)| {
            pb::Address {
                lines,
                city,
                postal_code: "12345".into(),
                country: country.into(),
            }
        });
    (
        0..=4i32,
        text(20),
        vec(text(12), 0..3),
        some_of(COUNTRIES, 2),
        vec(identifier, 0..3),
        vec(address, 0..3),
        option::of(Just("broker")),
    )
        .prop_map(
            |(kind, name, aliases, countries, identifiers, addresses, role)| pb::Subject {
                r#type: kind,
                name,
                aliases,
                countries: countries.into_iter().map(Into::into).collect(),
                identifiers,
                addresses,
                role: role.unwrap_or_default().into(),
            },
        )
}

fn goods() -> impl Strategy<Value = pb::Goods> {
    (
        pick(CONTROL_ENTRIES),
        pick(HS_CODES),
        0.0..1e6f64,
        option::of(0..=1_000_000_000_000i64),
    )
        .prop_map(
            |(control_entry, hs_code, quantity, minor_units)| pb::Goods {
                description: "goods".into(),
                hs_code: hs_code.into(),
                control_entry: control_entry.into(),
                quantity,
                unit: "pcs".into(),
                value: minor_units.map(|minor_units| pb::Money {
                    minor_units,
                    currency: "USD".into(),
                }),
            },
        )
}

fn route() -> impl Strategy<Value = pb::Route> {
    (
        pick(COUNTRIES),
        some_of(COUNTRIES, 2),
        pick(COUNTRIES),
        option::of(pick(COUNTRIES)),
    )
        .prop_map(|(origin, transit, destination, end_user)| pb::Route {
            origin: origin.into(),
            transit: transit.into_iter().map(Into::into).collect(),
            destination: destination.into(),
            end_user_country: end_user.unwrap_or_default().into(),
        })
}

fn report() -> impl Strategy<Value = pb::Report> {
    let kind = prop_oneof![8 => 1..=3i32, 1 => prop_oneof![Just(0), Just(4), Just(9)]];
    // Mostly levels that may leave, so that rules get to decide.
    let tlp = prop_oneof![8 => 1..=3i32, 2 => Just(4), 1 => prop_oneof![Just(0), Just(5), Just(6)]];
    let handling = option::weighted(
        0.95,
        (tlp, any::<bool>(), some_of(AGENCIES, 3)).prop_map(|(tlp, oc, releasable)| pb::Handling {
            tlp,
            originator_control: oc,
            releasable_to: releasable.into_iter().map(Into::into).collect(),
            retention_days: 0,
        }),
    );
    (
        kind,
        vec(subject(), 1..4),
        vec(goods(), 0..3),
        option::of(route()),
        vec(text(15), 0..3),
        option::of(text(40)),
        option::of(text(10)),
        handling,
    )
        .prop_map(
            |(kind, subjects, goods, route, red_flags, narrative, reference, handling)| {
                pb::Report {
                    kind,
                    title: "title".into(),
                    reference: reference.unwrap_or_default(),
                    subjects,
                    goods,
                    route,
                    red_flags,
                    narrative: narrative.unwrap_or_default(),
                    handling,
                    denial_date: String::new(),
                }
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Random policies, kept as a model and written out as TOML.

#[derive(Debug, Clone)]
struct ModelRule {
    kinds: Vec<&'static str>,
    tlp_max: Option<&'static str>,
    originator_control: Option<bool>,
    releasable_to_partner: bool,
    subject_types: Option<Vec<&'static str>>,
    subject_countries: Option<Vec<&'static str>>,
    control_entries: Option<Vec<&'static str>>,
    hs_codes: Option<Vec<&'static str>>,
    route_countries: Option<Vec<&'static str>>,
    watchlists: Option<Vec<&'static str>>,
    max_age_days: Option<u32>,
    share: bool,
    redact: Vec<&'static str>,
    generalise: Vec<&'static str>,
}

#[derive(Debug, Clone)]
struct ModelPartner {
    agency: &'static str,
    accept: Vec<&'static str>,
    rules: Vec<ModelRule>,
}

/// An optional non-empty list condition drawn from `pool`.
fn condition<const N: usize>(
    pool: [&'static str; N],
) -> impl Strategy<Value = Option<Vec<&'static str>>> {
    option::weighted(0.3, subsequence(pool.to_vec(), 1..=N.min(3)))
}

fn rule() -> impl Strategy<Value = ModelRule> {
    let markings = (
        subsequence(KIND_NAMES.to_vec(), 1..=4),
        option::weighted(0.3, pick(TLPS)),
        option::weighted(0.2, any::<bool>()),
        proptest::bool::weighted(0.2),
        option::weighted(0.2, 1..=60u32),
    );
    let content = (
        condition(TYPES),
        condition(COUNTRIES),
        condition(CONTROL_PATTERNS),
        condition(HS_PATTERNS),
        condition(COUNTRIES),
        option::weighted(0.05, subsequence(WATCHLISTS.to_vec(), 1..=2)),
    );
    let action = (
        proptest::bool::weighted(0.7),
        subsequence(PATHS.to_vec(), 0..=5),
        subsequence(GENERALISABLE.to_vec(), 0..=2),
    );
    (markings, content, action).prop_map(
        |((kinds, tlp_max, oc, releasable, age), content, (share, redact, generalise))| {
            let (types, countries, control_entries, hs_codes, route, watchlists) = content;
            let generalise = generalise
                .into_iter()
                .filter(|g| !redact.contains(g))
                .collect();
            ModelRule {
                kinds,
                tlp_max,
                originator_control: oc,
                releasable_to_partner: releasable,
                subject_types: types,
                subject_countries: countries,
                control_entries,
                hs_codes,
                route_countries: route,
                watchlists,
                max_age_days: age,
                share,
                redact: if share { redact } else { Vec::new() },
                generalise: if share { generalise } else { Vec::new() },
            }
        },
    )
}

fn policy() -> impl Strategy<Value = Vec<ModelPartner>> {
    let partner = |agency| {
        (some_of(KIND_NAMES, 4), vec(rule(), 0..6)).prop_map(move |(accept, rules)| ModelPartner {
            agency,
            accept,
            rules,
        })
    };
    (partner(POLICY_PARTNERS[0]), partner(POLICY_PARTNERS[1])).prop_map(|(a, b)| vec![a, b])
}

fn toml_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn render(policy: &[ModelPartner]) -> String {
    let mut out = String::from("version = 1\n");
    for partner in policy {
        out += &format!(
            "\n[[partner]]\nagency = \"{}\"\naccept = {}\n",
            partner.agency,
            toml_list(&partner.accept)
        );
        for (i, r) in partner.rules.iter().enumerate() {
            out += &format!(
                "[[partner.rule]]\nid = \"r{i}\"\nkinds = {}\n",
                toml_list(&r.kinds)
            );
            let mut line = |key: &str, value: String| out += &format!("{key} = {value}\n");
            if let Some(t) = r.tlp_max {
                line("tlp_max", format!("\"{t}\""));
            }
            if let Some(oc) = r.originator_control {
                line("originator_control", oc.to_string());
            }
            if r.releasable_to_partner {
                line("releasable_to", "\"partner\"".into());
            }
            let lists = [
                ("subject_types", &r.subject_types),
                ("subject_countries", &r.subject_countries),
                ("control_entries", &r.control_entries),
                ("hs_codes", &r.hs_codes),
                ("route_countries", &r.route_countries),
                ("watchlists", &r.watchlists),
            ];
            for (key, values) in lists {
                if let Some(values) = values {
                    line(key, toml_list(values));
                }
            }
            if let Some(days) = r.max_age_days {
                line("max_age_days", days.to_string());
            }
            let action = if r.share { "share" } else { "deny" };
            line("action", format!("\"{action}\""));
            if r.share {
                line("redact", toml_list(&r.redact));
                line("generalise", toml_list(&r.generalise));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The model's decision.

/// What the model expects.
#[derive(Debug, PartialEq)]
enum Expected {
    /// A marking, the kind or a missing policy refuses the item before any rule.
    Refused,
    /// No rule matches.
    NoMatch,
    /// The rule at this index of the partner's rules decides.
    Rule(usize),
}

fn model_decide(policy: &[ModelPartner], partner: &str, item: &ItemFacts<'_>) -> Expected {
    let r = item.report;
    let Some(h) = &r.handling else {
        return Expected::Refused;
    };
    let released = h.releasable_to.iter().any(|a| a == partner);
    let marking_refuses = !(1..=4).contains(&h.tlp)
        || item.origin == partner
        || (h.tlp == 4 && !released)
        || (item.origin != NODE && h.originator_control && !released);
    if marking_refuses || !(1..=3).contains(&r.kind) {
        return Expected::Refused;
    }
    let Some(p) = policy.iter().find(|p| p.agency == partner) else {
        return Expected::Refused;
    };
    match p
        .rules
        .iter()
        .position(|rule| model_matches(rule, partner, item))
    {
        Some(i) => Expected::Rule(i),
        None => Expected::NoMatch,
    }
}

fn model_matches(rule: &ModelRule, partner: &str, item: &ItemFacts<'_>) -> bool {
    let r = item.report;
    let Some(h) = &r.handling else {
        return false;
    };
    let kind_name = KIND_NAMES[(r.kind - 1) as usize];
    let tlp_rank = |name: &str| TLPS.iter().position(|t| *t == name).unwrap() as i32 + 1;
    let age_ok = rule.max_age_days.is_none_or(|days| {
        i128::from(item.now_ms) - i128::from(item.created_at_ms) <= i128::from(days) * 86_400_000
    });
    let route_ok = rule.route_countries.as_ref().is_none_or(|list| {
        r.route.as_ref().is_some_and(|route| {
            let mut countries = vec![&route.origin, &route.destination, &route.end_user_country];
            countries.extend(&route.transit);
            countries.iter().any(|c| list.contains(&c.as_str()))
        })
    });
    let subjects_ok = (rule.subject_types.is_none() && rule.subject_countries.is_none())
        || r.subjects.iter().any(|s| {
            let type_name = (1..=4)
                .contains(&s.r#type)
                .then(|| TYPES[(s.r#type - 1) as usize]);
            rule.subject_types
                .as_ref()
                .is_none_or(|l| type_name.is_some_and(|t| l.contains(&t)))
                && rule
                    .subject_countries
                    .as_ref()
                    .is_none_or(|l| s.countries.iter().any(|c| l.contains(&c.as_str())))
        });
    let patterns_ok = |list: &Option<Vec<&str>>, value: &str| {
        list.as_ref()
            .is_none_or(|l| l.iter().any(|p| pattern_matches(p, value)))
    };
    let goods_ok = (rule.control_entries.is_none() && rule.hs_codes.is_none())
        || r.goods.iter().any(|g| {
            patterns_ok(&rule.control_entries, &g.control_entry)
                && patterns_ok(&rule.hs_codes, &g.hs_code)
        });
    rule.kinds.contains(&kind_name)
        && rule.tlp_max.is_none_or(|max| h.tlp <= tlp_rank(max))
        && rule
            .originator_control
            .is_none_or(|oc| h.originator_control == oc)
        && (!rule.releasable_to_partner || h.releasable_to.iter().any(|a| a == partner))
        && rule.watchlists.is_none()
        && age_ok
        && route_ok
        && subjects_ok
        && goods_ok
}

/// The documented pattern rule, written plainly: dots dropped (they only occur in HS
/// patterns here), case ignored, a trailing `*` is a prefix, an empty value never matches.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    let pattern = pattern.replace('.', "").to_lowercase();
    let value = value.replace('.', "").to_lowercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => value == pattern,
    }
}

// ---------------------------------------------------------------------------------------------
// The properties.

/// Lines that look like a policy file (headers, keys with strings, lists, numbers and
/// booleans) mixed with anything at all.
const TOMLISH: &str = concat!(
    "(version = 1\n",
    "|\\[\\[partner(\\.rule)?\\]\\]\n",
    "|[a-z_]{1,8} = ",
    "(\"[A-Za-z0-9*.+\\[\\]-]{0,10}\"|\\[\"[a-z-]{0,20}\"\\]|-?[0-9]{1,12}|true)\n",
    "|.{0,10}",
    "){0,20}",
);

proptest! {
    // A failing case is printed, minimised; it is not saved to a regressions file.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (1) A shared copy holds none of its rule's redacted fields. (2) An item is shared only
    /// under the first share rule whose conditions it meets, and only when no marking
    /// forbids it; every refusal is the one the model expects.
    #[test]
    fn decisions_follow_the_model_and_shared_copies_lack_redacted_fields(
        model in policy(),
        report in report(),
        origin in prop_oneof![3 => Just(NODE), 1 => pick(AGENCIES)],
        age_ms in -DAY..70 * DAY,
    ) {
        let text = render(&model);
        let (set, _) = PolicySet::parse(Path::new("random.toml"), &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let item = ItemFacts { report: &report, origin, created_at_ms: NOW - age_ms, now_ms: NOW, consented_to: &[] };
        for partner in DECIDE_FOR {
            let decision = set.decide(NODE, partner, &item);
            let expected = model_decide(&model, partner, &item);
            let rules = model.iter().find(|p| p.agency == partner).map(|p| &p.rules[..]);
            match (&decision, &expected) {
                (Decision::Share { rule, report: copy, redactions }, Expected::Rule(i)) => {
                    let model_rule = &rules.unwrap()[*i];
                    prop_assert!(model_rule.share, "shared under deny rule {rule}");
                    prop_assert_eq!(rule, &format!("r{i}"));
                    for path in &model_rule.redact {
                        prop_assert!(is_absent(path, copy), "{} present under {}", path, rule);
                        prop_assert!(redactions.iter().any(|r| r == path));
                    }
                    prop_assert_eq!(&copy.handling, &report.handling);
                    prop_assert_eq!(copy.kind, report.kind);
                    prop_assert_eq!(&copy.title, &report.title);
                    prop_assert_eq!(copy.subjects.len(), report.subjects.len());
                }
                (Decision::Deny { rule: Some(id), .. }, Expected::Rule(i)) => {
                    prop_assert!(!rules.unwrap()[*i].share, "denied under share rule {id}");
                    prop_assert_eq!(id, &format!("r{i}"));
                }
                (Decision::Deny { rule: None, reason }, Expected::NoMatch) => {
                    prop_assert_eq!(reason, "no rule matched");
                }
                (Decision::Deny { rule: None, .. }, Expected::Refused) => {}
                _ => prop_assert!(
                    false,
                    "{partner}: got {decision:?}, model expects {expected:?}\n{text}"
                ),
            }
        }
    }

    /// Any text at all is either a policy or a list of errors; never a panic.
    #[test]
    fn parsing_any_text_never_panics(text in TOMLISH) {
        if let Err(errors) = PolicySet::parse(Path::new("random.toml"), &text) {
            prop_assert!(!errors.0.is_empty());
        }
    }
}
