//! Rules and their conditions: matching an item, and telling when one rule's conditions
//! cover another's (for the shadowed-rule warning).

use super::{ItemFacts, redact::Redaction};
use crate::pb::{self, ItemKind, SubjectType, TlpLevel};

/// Milliseconds in a day, for `max_age_days`.
const DAY_MS: i64 = 86_400_000;

/// The item kinds a policy may name, in documented order.
pub(super) const POLICY_KINDS: [ItemKind; 4] = [
    ItemKind::SuspiciousTransaction,
    ItemKind::DenialNotification,
    ItemKind::EnforcementAlert,
    ItemKind::WatchlistDelta,
];

/// The subject types a rule may name, with their names (as in report JSON).
pub(super) const SUBJECT_TYPES: [(SubjectType, &str); 4] = [
    (SubjectType::Person, "person"),
    (SubjectType::Organisation, "organisation"),
    (SubjectType::Vessel, "vessel"),
    (SubjectType::Aircraft, "aircraft"),
];

/// A set of item kinds, one bit per wire number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct KindSet(u8);

impl KindSet {
    /// Adds `kind`.
    pub(super) fn insert(&mut self, kind: ItemKind) {
        self.0 |= Self::bit(kind as i32);
    }

    /// Whether the kind with wire number `raw` is in the set; never for an unknown number.
    pub(super) fn contains(self, raw: i32) -> bool {
        self.0 & Self::bit(raw) != 0
    }

    /// Whether every kind of `self` is in `other`.
    pub(super) fn is_subset(self, other: KindSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bit of wire number `raw`; 0 (no kind) for a number outside 1 to 7.
    fn bit(raw: i32) -> u8 {
        match raw {
            1..=7 => 1 << raw,
            _ => 0,
        }
    }
}

/// A code pattern: exact (case-insensitive), or a prefix when written with a trailing `*`.
///
/// A pattern never matches an empty value: `"*"` means "any listed goods", not "any goods".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern {
    /// The text before any `*`, in ASCII upper case.
    text: String,
    /// Whether the pattern ended with `*`.
    prefix: bool,
}

impl Pattern {
    /// The pattern `text`, which must be checked already: `*` appears only at its end.
    pub(super) fn new(text: &str) -> Self {
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        Self {
            text: body.to_ascii_uppercase(),
            prefix,
        }
    }

    /// Whether `value` matches.
    pub(super) fn matches(&self, value: &str) -> bool {
        let (value, text) = (value.as_bytes(), self.text.as_bytes());
        if value.is_empty() {
            false
        } else if self.prefix {
            value.len() >= text.len() && value[..text.len()].eq_ignore_ascii_case(text)
        } else {
            value.eq_ignore_ascii_case(text)
        }
    }

    /// Whether every value `other` matches, `self` matches too.
    fn covers(&self, other: &Pattern) -> bool {
        if self.prefix {
            other.text.starts_with(&self.text)
        } else {
            !other.prefix && other.text == self.text
        }
    }
}

/// The conditions of a rule. All given conditions must hold; a list holds when any of its
/// entries does; `None` is a condition that was not given.
#[derive(Debug, Clone, Default)]
pub(super) struct Conditions {
    pub(super) kinds: KindSet,
    pub(super) tlp_max: Option<TlpLevel>,
    pub(super) originator_control: Option<bool>,
    /// `releasable_to = "partner"`: the marking must name the partner.
    pub(super) releasable_to_partner: bool,
    pub(super) subject_types: Option<Vec<SubjectType>>,
    pub(super) subject_countries: Option<Vec<String>>,
    pub(super) control_entries: Option<Vec<Pattern>>,
    pub(super) hs_codes: Option<Vec<Pattern>>,
    pub(super) route_countries: Option<Vec<String>>,
    pub(super) watchlists: Option<Vec<Pattern>>,
    pub(super) max_age_days: Option<u32>,
}

impl Conditions {
    /// Whether `item`, whose TLP level has been read as `tlp`, meets every condition when
    /// it is considered for `partner`.
    pub(super) fn matches(&self, partner: &str, item: &ItemFacts<'_>, tlp: TlpLevel) -> bool {
        let report = item.report;
        let handling = report.handling.as_ref();
        self.kinds.contains(report.kind)
            // A report is never a watchlist delta, so a watchlist condition never holds.
            && self.watchlists.is_none()
            && self.tlp_max.is_none_or(|max| tlp as i32 <= max as i32)
            && self.originator_control.is_none_or(|want| {
                handling.is_some_and(|h| h.originator_control == want)
            })
            && (!self.releasable_to_partner
                || handling.is_some_and(|h| h.releasable_to.iter().any(|a| a == partner)))
            && self.max_age_days.is_none_or(|days| {
                item.now_ms.saturating_sub(item.created_at_ms) <= i64::from(days) * DAY_MS
            })
            && self.route_matches(report.route.as_ref())
            && self.subjects_match(&report.subjects)
            && self.goods_match(&report.goods)
    }

    /// Whether the rule applies to a delta of watchlist `list`: it names the
    /// `watchlist-delta` kind, its `watchlists` patterns (if any) match the list, and it
    /// sets no condition that only a report can meet.
    pub(super) fn matches_list(&self, list: &str) -> bool {
        let report_only = self.tlp_max.is_some()
            || self.originator_control.is_some()
            || self.releasable_to_partner
            || self.subject_types.is_some()
            || self.subject_countries.is_some()
            || self.control_entries.is_some()
            || self.hs_codes.is_some()
            || self.route_countries.is_some()
            || self.max_age_days.is_some();
        self.kinds.contains(ItemKind::WatchlistDelta as i32)
            && !report_only
            && self
                .watchlists
                .as_ref()
                .is_none_or(|patterns| patterns.iter().any(|p| p.matches(list)))
    }

    /// `route_countries`: any country of the route is listed.
    fn route_matches(&self, route: Option<&pb::Route>) -> bool {
        let Some(countries) = &self.route_countries else {
            return true;
        };
        let Some(route) = route else {
            return false;
        };
        let listed = |c: &String| countries.contains(c);
        listed(&route.origin)
            || route.transit.iter().any(listed)
            || listed(&route.destination)
            || listed(&route.end_user_country)
    }

    /// `subject_types` and `subject_countries`: one subject meets both.
    fn subjects_match(&self, subjects: &[pb::Subject]) -> bool {
        if self.subject_types.is_none() && self.subject_countries.is_none() {
            return true;
        }
        subjects.iter().any(|s| {
            self.subject_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| *t as i32 == s.r#type))
                && self
                    .subject_countries
                    .as_ref()
                    .is_none_or(|listed| s.countries.iter().any(|c| listed.contains(c)))
        })
    }

    /// `control_entries` and `hs_codes`: one goods entry meets both.
    fn goods_match(&self, goods: &[pb::Goods]) -> bool {
        if self.control_entries.is_none() && self.hs_codes.is_none() {
            return true;
        }
        let any = |patterns: &Option<Vec<Pattern>>, value: &str| {
            patterns
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p.matches(value)))
        };
        goods.iter().any(|g| {
            any(&self.control_entries, &g.control_entry) && any(&self.hs_codes, &g.hs_code)
        })
    }

    /// Whether every item `later` matches, `self` matches too. Sound but not complete: it
    /// compares condition by condition, so it may miss a cover that only a combination of
    /// conditions gives; it never claims one that does not hold.
    pub(super) fn covers(&self, later: &Conditions) -> bool {
        let at_most = |mine: Option<u32>, theirs: Option<u32>| {
            mine.is_none_or(|m| theirs.is_some_and(|t| t <= m))
        };
        later.kinds.is_subset(self.kinds)
            && at_most(
                self.tlp_max.map(|t| t as u32),
                later.tlp_max.map(|t| t as u32),
            )
            && self
                .originator_control
                .is_none_or(|m| later.originator_control == Some(m))
            && (!self.releasable_to_partner || later.releasable_to_partner)
            && subset(&self.subject_types, &later.subject_types, |a, b| a == b)
            && subset(&self.subject_countries, &later.subject_countries, |a, b| {
                a == b
            })
            && subset(
                &self.control_entries,
                &later.control_entries,
                Pattern::covers,
            )
            && subset(&self.hs_codes, &later.hs_codes, Pattern::covers)
            && subset(&self.route_countries, &later.route_countries, |a, b| a == b)
            && subset(&self.watchlists, &later.watchlists, Pattern::covers)
            && at_most(self.max_age_days, later.max_age_days)
    }
}

/// Whether list condition `mine` holds whenever `theirs` does: `mine` is absent, or every
/// entry of `theirs` is covered by one of `mine`.
fn subset<T>(
    mine: &Option<Vec<T>>,
    theirs: &Option<Vec<T>>,
    covers: impl Fn(&T, &T) -> bool,
) -> bool {
    match (mine, theirs) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(mine), Some(theirs)) => theirs.iter().all(|t| mine.iter().any(|m| covers(m, t))),
    }
}

/// What a matching rule does.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// Refuse the item.
    Deny,
    /// Send the item, redacted and generalised as given.
    Share(Redaction),
}

/// One rule of a partner's policy.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    /// Its id, unique within the partner.
    pub(super) id: String,
    /// Line of its `[[partner.rule]]` header, for warnings.
    pub(super) line: usize,
    /// What an item must meet for the rule to apply.
    pub(super) when: Conditions,
    /// What the rule does then.
    pub(super) action: Action,
}
