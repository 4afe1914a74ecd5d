//! Per-partner sharing policies: what this node sends each partner, in what form, and what
//! it accepts from each partner.
//!
//! The module is pure: it reads the policy file in [`PolicySet::load`] and does no other
//! I/O, logs nothing, and never panics on any report or policy text. The caller (the
//! exchange) runs [`PolicySet::decide`] after an item is accepted and before it is sealed,
//! and seals exactly the report that a [`Decision::Share`] returns; it runs
//! [`PolicySet::accepts`] on every item a partner delivers.
//!
//! # The policy file
//!
//! One TOML file per node holds every partner's policy:
//!
//! ```toml
//! version = 1                       # required; the only version
//!
//! [[partner]]
//! agency = "DE-BAFA"                # required; an agency id, once per file
//! # Inbound: the kinds this node accepts from DE-BAFA; anything else is refused.
//! # Optional; leaving it out (or []) accepts nothing.
//! accept = ["suspicious-transaction", "denial-notification"]
//!
//!   # Outbound: an ordered list of rules.
//!   [[partner.rule]]
//!   id = "denials"                  # required; unique within the partner
//!   kinds = ["denial-notification"] # required, non-empty
//!   tlp_max = "AMBER"               # the item's TLP level is at most this
//!   action = "share"                # required: "share" or "deny"
//!   redact = ["reference", "subjects[].identifiers"]
//!   generalise = ["goods[].value"]
//! ```
//!
//! A partner that has no `[[partner]]` entry gets nothing and is accepted from for nothing.
//! As everywhere in TOML, a key belongs to the table of the header above it, so a partner's
//! `agency` and `accept` come before its first `[[partner.rule]]`.
//!
//! ## Conditions
//!
//! A rule matches an item when **every** condition it gives holds; a list condition holds
//! when **any** of its entries does. A condition that is left out does not restrict. A list
//! condition may not be empty: leave the key out instead.
//!
//! - `kinds`: the item is of one of these kinds: `"suspicious-transaction"`,
//!   `"denial-notification"`, `"enforcement-alert"`, or `"watchlist-delta"` (a watchlist
//!   update).
//! - `tlp_max`: the item's TLP level is at most this one, in the order `"CLEAR"`, `"GREEN"`,
//!   `"AMBER"`, `"AMBER+STRICT"`, `"RED"`.
//! - `originator_control`: the item's originator-control flag is this (`true` or `false`).
//! - `releasable_to`: `"partner"`, the only value: the item's releasable-to list names the
//!   partner.
//! - `subject_types`: a subject is of one of these types: `"person"`, `"organisation"`,
//!   `"vessel"`, `"aircraft"`.
//! - `subject_countries`: a subject's `countries` list holds one of these codes.
//! - `control_entries`: a goods entry's control-list entry matches one of these patterns.
//! - `hs_codes`: a goods entry's HS code matches one of these patterns.
//! - `route_countries`: the route's origin, a transit country, the destination or the
//!   end-user country is one of these codes.
//! - `watchlists`: the item is a delta of a list matching one of these patterns (such as
//!   `"US-TREAS/*"`); never holds for a report.
//! - `max_age_days`: the item was created at most this many days ago (1 to 36,500).
//!
//! When a rule gives both `subject_types` and `subject_countries`, one subject must meet
//! both ("an organisation from IR"); likewise one goods entry must meet both
//! `control_entries` and `hs_codes`.
//!
//! Country codes are two upper-case letters (ISO 3166-1 alpha-2). A pattern is exact unless
//! it ends with `*`, which makes it a prefix: `"5A002"` matches only `5A002` while
//! `"5A002*"` also matches `5A002.a.1`, and `"3A*"` matches every entry of category 3A.
//! Matching ignores ASCII case. A pattern never matches an empty value, so `"*"` means
//! "any listed goods". HS-code patterns are digits (dots between groups are dropped, as in
//! report JSON); an exact one has 6 to 10 digits. Control-list patterns hold letters,
//! digits, `.` and `-`; watchlist patterns letters, digits, `-`, `_`, `.` and `/`.
//!
//! ## Actions
//!
//! `action = "deny"` refuses the item. `action = "share"` sends a copy of it, from which
//! the fields listed in `redact` are removed (an empty text, an empty list, no value) and
//! in which the fields listed in `generalise` are made coarser. A deny rule takes neither
//! list. A path may not be in both lists. The paths:
//!
//! - `reference`: the originator's case reference;
//! - `narrative`: the free-text account;
//! - `red_flags`: every red flag;
//! - `subjects[].aliases`, `subjects[].countries`, `subjects[].identifiers` (passport,
//!   registration, IMO number ...), `subjects[].addresses`, `subjects[].role`: that field
//!   of every subject;
//! - `goods`: every goods entry;
//! - `goods[].hs_code`, `goods[].control_entry`, `goods[].value`, `goods[].quantity` (with
//!   its unit): that field of every goods entry;
//! - `route`: the whole route;
//! - `route.origin`, `route.transit`, `route.destination`, `route.end_user_country`: that
//!   part of the route.
//!
//! `generalise` takes two paths:
//!
//! - `goods[].value`: each amount becomes the lower end of its decade, the largest power
//!   of ten at most the amount, in minor units (an amount of 186,000.00 becomes
//!   100,000.00: the partner learns "between 100,000 and 1,000,000"); the currency stays.
//! - `subjects[].addresses`: each address keeps only its country; a subject's addresses in
//!   the same country become one, and an address without a country is dropped.
//!
//! Generalisations are applied before redactions, so a field that is both generalised and
//! (through a wider path such as `goods`) redacted is gone.
//!
//! The title, the subjects' names and types, the goods descriptions, the kind, the denial
//! date and the handling marking are never redacted: a report without them would be
//! refused by its receiver, and the marking must travel with the item. A title or goods
//! description must therefore not carry what a policy redacts.
//!
//! # Order of evaluation
//!
//! [`PolicySet::decide`] refuses an item, whatever the rules say, when:
//!
//! 1. the report carries no valid TLP level (no handling, or an unspecified or unknown
//!    level): the decision fails closed;
//! 2. it is TLP:RED, which never leaves the node;
//! 3. the partner is the item's originator: an item is never sent back where it came from;
//! 4. it is TLP:AMBER+STRICT and its releasable-to list does not name the partner;
//! 5. it came from another agency with originator control, and that agency's
//!    releasable-to list does not name the partner (the third-party rule);
//! 6. its kind is not one of the three report kinds;
//! 7. the partner has no policy.
//!
//! Then the partner's rules are tried in file order and the first that matches decides: a
//! share rule sends its redacted copy, a deny rule refuses. When no rule matches, the item
//! is refused (default deny).
//!
//! # Checks
//!
//! [`PolicySet::parse`] refuses a file with any error, and reports every error it finds,
//! each with its line and key path (such as `partner[0].rule[2].redact[1]`): TOML syntax,
//! an unknown key, a value of the wrong type, a missing or unknown `version`, a missing
//! required key, an invalid agency id, a partner given twice, a rule id used twice within
//! a partner, an unknown kind, TLP level, subject type or field path, an empty list
//! condition, a bad country code or pattern, `redact` or `generalise` on a deny rule, and a
//! path both redacted and generalised. After a syntax error the rest of the file is not
//! checked, since its structure is then unknown.
//!
//! It warns, without refusing the file, about a rule that can never match because an
//! earlier rule of the same partner matches every item it would (each of the earlier
//! rule's conditions is absent or no stricter), and about a partner with no share rule
//! that accepts nothing.

mod error;
mod parse;
mod redact;
mod rule;

use std::path::Path;

pub use self::error::{PolicyError, PolicyErrors, PolicyWarning};
use self::rule::{Action, KindSet, Rule};
use crate::{
    pb::{self, ItemKind, TlpLevel},
    report::tlp_name,
};

/// Every partner's sharing policy, as read from one policy file.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// In file order.
    partners: Vec<PartnerPolicy>,
}

/// One partner's policy.
#[derive(Debug, Clone)]
struct PartnerPolicy {
    agency: String,
    /// Line of its `[[partner]]` header, for warnings.
    line: usize,
    /// Kinds accepted from it.
    accept: KindSet,
    /// Watchlists accepted from it (patterns), when `accept_watchlists` narrows them.
    accept_watchlists: Option<Vec<rule::Pattern>>,
    /// Outbound rules, in file order.
    rules: Vec<Rule>,
}

/// What [`PolicySet::decide`] needs to know about one item besides the report itself.
#[derive(Debug, Clone, Copy)]
pub struct ItemFacts<'a> {
    /// The report, as stored (unredacted).
    pub report: &'a pb::Report,
    /// The agency that created the item: this node's own agency, or the partner it came from.
    pub origin: &'a str,
    /// When the originator created the item, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The time of the decision, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// Agencies the originator consented to the item going to (a signed consent answer
    /// this node holds): for them, originator control does not keep the item back.
    pub consented_to: &'a [String],
}

/// The outbound decision for one item and one partner.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a decision is made once per item and partner and moved, not stored in bulk; the \
              report is kept inline to match the API the exchange codes against"
)]
pub enum Decision {
    /// Send the item, in exactly this form.
    Share {
        /// Id of the share rule that matched.
        rule: String,
        /// The redacted and generalised copy: exactly what is sealed for the partner.
        report: pb::Report,
        /// The rule's redactions: each redacted path, then each generalised path followed
        /// by ` (generalised)`; listed whether or not the item held anything there.
        redactions: Vec<String>,
    },
    /// Do not send the item.
    Deny {
        /// The deny rule that matched, or `None` when a marking refused the item or no rule
        /// matched.
        rule: Option<String>,
        /// Why, in words fit for an operator, such as `"TLP:RED never leaves the node"`.
        reason: String,
    },
}

/// The outbound decision for one watchlist and one partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListDecision {
    /// Send the list's deltas, whole (redaction paths name report fields only).
    Share {
        /// Id of the share rule that matched.
        rule: String,
    },
    /// Send it nothing.
    Deny {
        /// The deny rule that matched, or `None` when no rule matched.
        rule: Option<String>,
        /// Why, in words fit for an operator.
        reason: String,
    },
}

impl ListDecision {
    fn deny(rule: Option<&str>, reason: impl Into<String>) -> Self {
        ListDecision::Deny {
            rule: rule.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl Decision {
    fn deny(rule: Option<&str>, reason: impl Into<String>) -> Self {
        Decision::Deny {
            rule: rule.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl PolicySet {
    /// Reads and checks the policy file at `path`. The error holds every mistake found,
    /// each with the file, its 1-based line, its key path and what was expected.
    pub fn load(path: &Path) -> Result<(PolicySet, Vec<PolicyWarning>), PolicyErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) => Err(PolicyErrors(vec![PolicyError::new(
                path,
                0,
                "",
                format!("a readable policy file ({e})"),
            )])),
        }
    }

    /// Checks `text`, read from `path` (which is used in errors and warnings only).
    pub fn parse(path: &Path, text: &str) -> Result<(PolicySet, Vec<PolicyWarning>), PolicyErrors> {
        let (partners, warnings) = parse::parse(path, text).map_err(PolicyErrors)?;
        Ok((PolicySet { partners }, warnings))
    }

    /// An empty set: it denies everything and accepts nothing.
    pub fn deny_all() -> PolicySet {
        PolicySet::default()
    }

    /// The agencies that have a policy, in file order.
    pub fn partners(&self) -> Vec<String> {
        self.partners.iter().map(|p| p.agency.clone()).collect()
    }
    /// The partners with a policy, each with the 1-based line of its `[[partner]]` header.
    pub fn partner_lines(&self) -> Vec<(String, usize)> {
        self.partners
            .iter()
            .map(|p| (p.agency.clone(), p.line))
            .collect()
    }

    /// The outbound decision for `item` and `partner`, on the node of agency `node_agency`.
    /// Markings are checked first, then the partner's rules; see the module documentation
    /// for the order.
    pub fn decide(&self, node_agency: &str, partner: &str, item: &ItemFacts<'_>) -> Decision {
        let tlp = match check_markings(node_agency, partner, item) {
            Ok(tlp) => tlp,
            Err(reason) => return Decision::deny(None, reason),
        };
        if !is_report_kind(item.report.kind) {
            return Decision::deny(None, "the item is not a report of a known kind");
        }
        let Some(policy) = self.partner(partner) else {
            return Decision::deny(None, format!("no policy for partner {partner}"));
        };
        let rule = policy
            .rules
            .iter()
            .find(|r| r.when.matches(partner, item, tlp));
        match rule {
            None => Decision::deny(None, "no rule matched"),
            Some(Rule {
                id,
                action: Action::Deny,
                ..
            }) => Decision::deny(Some(id), format!("rule `{id}` denies")),
            Some(Rule {
                id,
                action: Action::Share(redaction),
                ..
            }) => Decision::Share {
                rule: id.clone(),
                report: redaction.apply(item.report),
                redactions: redaction.applied(),
            },
        }
    }

    /// The outbound decision for watchlist `list`, owned by this node's agency
    /// `node_agency`, and `partner`: the first of the partner's rules that names the
    /// `watchlist-delta` kind, whose `watchlists` patterns (if any) match the list, and
    /// that sets no condition only a report can meet (TLP, markings, subjects, goods,
    /// route, age) decides. A list this node does not own is never sent: only a list's
    /// owner publishes it.
    pub fn decide_list(&self, node_agency: &str, partner: &str, list: &str) -> ListDecision {
        if crate::watchlist::list_owner(list) != Some(node_agency) {
            return ListDecision::deny(None, "only the list's owner publishes it");
        }
        let Some(policy) = self.partner(partner) else {
            return ListDecision::deny(None, format!("no policy for partner {partner}"));
        };
        match policy.rules.iter().find(|r| r.when.matches_list(list)) {
            None => ListDecision::deny(None, "no rule matched"),
            Some(Rule {
                id,
                action: Action::Deny,
                ..
            }) => ListDecision::deny(Some(id), format!("rule `{id}` denies")),
            Some(Rule { id, .. }) => ListDecision::Share { rule: id.clone() },
        }
    }

    /// Inbound: whether this node accepts deltas of watchlist `list` from `partner`: the
    /// partner's `accept` names `watchlist-delta`, and its `accept_watchlists` patterns,
    /// when given, match the list. (That the partner owns the list is checked apart.)
    pub fn accepts_list(&self, partner: &str, list: &str) -> bool {
        self.partner(partner).is_some_and(|p| {
            p.accept.contains(ItemKind::WatchlistDelta as i32)
                && p.accept_watchlists
                    .as_ref()
                    .is_none_or(|patterns| patterns.iter().any(|pat| pat.matches(list)))
        })
    }

    /// Inbound: whether this node accepts items of `kind` from `partner`.
    pub fn accepts(&self, partner: &str, kind: ItemKind) -> bool {
        self.partner(partner)
            .is_some_and(|p| p.accept.contains(kind as i32))
    }

    fn partner(&self, agency: &str) -> Option<&PartnerPolicy> {
        self.partners.iter().find(|p| p.agency == agency)
    }
}

/// The item's TLP level if its markings let it go to `partner` at all, or why not.
fn check_markings(
    node_agency: &str,
    partner: &str,
    item: &ItemFacts<'_>,
) -> Result<TlpLevel, String> {
    let handling = item.report.handling.as_ref();
    let tlp = handling
        .and_then(|h| TlpLevel::try_from(h.tlp).ok())
        .filter(|t| *t != TlpLevel::Unspecified)
        .ok_or("the item has no valid TLP level (fail closed)")?;
    let released_to_partner =
        handling.is_some_and(|h| h.releasable_to.iter().any(|a| a == partner));
    let originator_control = handling.is_some_and(|h| h.originator_control);
    if tlp == TlpLevel::Red {
        Err("TLP:RED never leaves the node".to_owned())
    } else if item.origin == partner {
        Err("the partner is the originator".to_owned())
    } else if tlp == TlpLevel::AmberStrict && !released_to_partner {
        Err(format!(
            "TLP:{} goes only to agencies named in releasable_to, and {partner} is not",
            tlp_name(tlp)
        ))
    } else if item.origin != node_agency
        && originator_control
        && !released_to_partner
        && !item.consented_to.iter().any(|a| a == partner)
    {
        Err(format!(
            "third-party rule: originator {} did not release it to {partner}",
            item.origin
        ))
    } else {
        Ok(tlp)
    }
}

/// Whether wire kind `raw` is one of the three report kinds.
fn is_report_kind(raw: i32) -> bool {
    [
        ItemKind::SuspiciousTransaction,
        ItemKind::DenialNotification,
        ItemKind::EnforcementAlert,
    ]
    .into_iter()
    .any(|k| k as i32 == raw)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
