//! Reading a policy file: the TOML is walked by hand, from the parser's spanned tree, so
//! that every mistake in the file is found and named with its line and key path, not only
//! the first one.

use std::{ops::Range, path::Path};

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    PartnerPolicy, PolicyError, PolicyWarning,
    redact::{FieldPath, Redaction},
    rule::{Action, Conditions, KindSet, POLICY_KINDS, Pattern, Rule, SUBJECT_TYPES},
};
use crate::{
    identity::validate_agency_id,
    pb::{ItemKind, TlpLevel},
    report::{kind_name, tlp_name},
};

type Value<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["version", "partner"];
const PARTNER_KEYS: &[&str] = &["agency", "accept", "accept_watchlists", "rule"];
const RULE_KEYS: &[&str] = &[
    "id",
    "kinds",
    "tlp_max",
    "originator_control",
    "releasable_to",
    "subject_types",
    "subject_countries",
    "control_entries",
    "hs_codes",
    "route_countries",
    "watchlists",
    "max_age_days",
    "action",
    "redact",
    "generalise",
];

/// The only format version.
const VERSION: i64 = 1;
/// Longest rule id and longest pattern, in bytes.
const MAX_ID_LEN: usize = 64;
const MAX_PATTERN_LEN: usize = 100;
/// Largest `max_age_days`: a hundred years.
const MAX_AGE_DAYS: i64 = 36_500;

const TLP_LEVELS: [TlpLevel; 5] = [
    TlpLevel::Clear,
    TlpLevel::Green,
    TlpLevel::Amber,
    TlpLevel::AmberStrict,
    TlpLevel::Red,
];

const EXPECTED_AGENCY: &str =
    "an agency id: 2 to 32 upper-case letters, digits and '-', such as \"DE-BAFA\"";
const EXPECTED_COUNTRY: &str =
    "a country code of two upper-case letters (ISO 3166-1 alpha-2), such as \"IR\"";
const EXPECTED_ID: &str = "a rule id of 1 to 64 letters, digits, '-', '_' and '.'";
const EXPECTED_CONTROL_ENTRY: &str = "a control-list entry such as \"5A002\" or a prefix ending \
     in '*' such as \"3A*\" (letters, digits, '.' and '-')";
const EXPECTED_HS_CODE: &str =
    "an HS code of 6 to 10 digits such as \"854239\", or a prefix ending in '*' such as \"8542*\"";
const EXPECTED_WATCHLIST: &str = "a watchlist name such as \"US-BIS/entity-list\" or a prefix \
     ending in '*' such as \"US-TREAS/*\" (letters, digits, '-', '_', '.' and '/')";

/// Reads `text`, from `file`, into partner policies, or every error found.
pub(super) fn parse(
    file: &Path,
    text: &str,
) -> Result<(Vec<PartnerPolicy>, Vec<PolicyWarning>), Vec<PolicyError>> {
    let mut checker = Checker {
        file,
        text,
        errors: Vec::new(),
    };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The tree recovered from a syntax error is unreliable, so it is not checked further.
        for error in syntax_errors {
            let line = checker.line(error.span().unwrap_or(0..0));
            if !checker.errors.iter().any(|e| e.line == line) {
                let expected = format!("valid TOML ({})", error.message());
                checker
                    .errors
                    .push(PolicyError::new(file, line, "", expected));
            }
        }
        return Err(checker.errors);
    }
    let partners = checker.document(root.get_ref());
    if checker.errors.is_empty() {
        let warnings = warnings(file, &partners);
        Ok((partners, warnings))
    } else {
        checker.errors.sort_by_key(|e| e.line);
        Err(checker.errors)
    }
}

/// The shadowed-rule and nothing-exchanged warnings of a valid file.
fn warnings(file: &Path, partners: &[PartnerPolicy]) -> Vec<PolicyWarning> {
    let mut warnings = Vec::new();
    let mut warn = |line: usize, message: String| {
        warnings.push(PolicyWarning {
            file: file.to_owned(),
            line,
            message,
        })
    };
    for partner in partners {
        for (j, later) in partner.rules.iter().enumerate() {
            let earlier = partner.rules[..j]
                .iter()
                .find(|e| e.when.covers(&later.when));
            if let Some(earlier) = earlier {
                let message = format!(
                    "partner {}: rule `{}` can never match: rule `{}` above it matches every \
                     item it would",
                    partner.agency, later.id, earlier.id
                );
                warn(later.line, message);
            }
        }
        let shares = partner
            .rules
            .iter()
            .any(|r| matches!(r.action, Action::Share(_)));
        if partner.accept.is_empty() && !shares {
            let message = format!(
                "partner {} has no share rule and accepts nothing: nothing is exchanged with it",
                partner.agency
            );
            warn(partner.line, message);
        }
    }
    warnings
}

/// Walks the tree, collecting errors.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<PolicyError>,
}

impl Checker<'_> {
    fn document(&mut self, root: &DeTable<'_>) -> Vec<PartnerPolicy> {
        self.unknown_keys(root, "", TOP_KEYS, "the top level");
        match root.get("version") {
            None => self.error(0..0, "version", "`version = 1` at the top of the file"),
            Some(v) => {
                let expected = "1, the only version of the policy format";
                let version = self.integer(v, "version", expected);
                if version.is_some_and(|n| n != VERSION) {
                    self.error(v.span(), "version", expected);
                }
            }
        }
        let mut partners: Vec<PartnerPolicy> = Vec::new();
        for (i, table) in self.tables(root.get("partner"), "partner", "[[partner]]") {
            let key = format!("partner[{i}]");
            let partner = self.partner(&key, &table);
            let earlier = partners
                .iter()
                .position(|p| !p.agency.is_empty() && p.agency == partner.agency);
            if let (Some(j), Some(agency)) = (earlier, table.get_ref().get("agency")) {
                let expected = format!("an agency id not already given to partner[{j}]");
                self.error(agency.span(), &format!("{key}.agency"), expected);
            }
            partners.push(partner);
        }
        partners
    }

    fn partner(&mut self, key: &str, table: &Spanned<&DeTable<'_>>) -> PartnerPolicy {
        let (t, line) = (table.get_ref(), self.line(table.span()));
        self.unknown_keys(t, key, PARTNER_KEYS, "a partner");
        let agency_key = format!("{key}.agency");
        let agency = match t.get("agency") {
            None => {
                self.error(table.span(), &agency_key, EXPECTED_AGENCY);
                String::new()
            }
            Some(v) => match self.string(v, &agency_key, EXPECTED_AGENCY) {
                Some(agency) if validate_agency_id(agency).is_ok() => agency.to_owned(),
                Some(_) => {
                    self.error(v.span(), &agency_key, EXPECTED_AGENCY);
                    String::new()
                }
                None => String::new(),
            },
        };
        let accept = t
            .get("accept")
            .map(|v| self.kinds(v, &format!("{key}.accept"), true))
            .unwrap_or_default();
        let accept_watchlists =
            self.condition(t, key, "accept_watchlists", EXPECTED_WATCHLIST, |s| {
                pattern(s, is_watchlist_byte)
            });
        let mut rules: Vec<Rule> = Vec::new();
        for (j, table) in self.tables(t.get("rule"), &format!("{key}.rule"), "[[partner.rule]]") {
            let rule_key = format!("{key}.rule[{j}]");
            let rule = self.rule(&rule_key, &table);
            let earlier = rules
                .iter()
                .position(|r| !r.id.is_empty() && r.id == rule.id);
            if let (Some(first), Some(id)) = (earlier, table.get_ref().get("id")) {
                let expected = format!("an id not already used by {key}.rule[{first}]");
                self.error(id.span(), &format!("{rule_key}.id"), expected);
            }
            rules.push(rule);
        }
        PartnerPolicy {
            agency,
            line,
            accept,
            accept_watchlists,
            rules,
        }
    }

    fn rule(&mut self, key: &str, table: &Spanned<&DeTable<'_>>) -> Rule {
        let t = table.get_ref();
        self.unknown_keys(t, key, RULE_KEYS, "a rule");
        let k = |name: &str| format!("{key}.{name}");
        let id = self
            .required(table, &k("id"), EXPECTED_ID)
            .and_then(|v| {
                let id = self.string(v, &k("id"), EXPECTED_ID)?;
                let valid = !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(is_id_byte);
                if !valid {
                    self.error(v.span(), &k("id"), EXPECTED_ID);
                }
                Some(id.to_owned())
            })
            .unwrap_or_default();
        let when = self.conditions(key, table);
        let action = self.action(key, table);
        Rule {
            id,
            line: self.line(table.span()),
            when,
            action,
        }
    }

    fn conditions(&mut self, key: &str, table: &Spanned<&DeTable<'_>>) -> Conditions {
        let t = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let kinds = match self.required(table, &k("kinds"), "a non-empty list of item kinds") {
            Some(v) => self.kinds(v, &k("kinds"), false),
            None => KindSet::default(),
        };
        let subject_types = quoted_names(SUBJECT_TYPES.map(|(_, name)| name));
        let control_entry = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
        Conditions {
            kinds,
            tlp_max: t.get("tlp_max").and_then(|v| self.tlp(v, &k("tlp_max"))),
            originator_control: t
                .get("originator_control")
                .and_then(|v| self.boolean(v, &k("originator_control"))),
            releasable_to_partner: t
                .get("releasable_to")
                .is_some_and(|v| self.releasable_to(v, &k("releasable_to"))),
            subject_types: self.condition(t, key, "subject_types", &subject_types, |s| {
                SUBJECT_TYPES
                    .iter()
                    .find(|(_, name)| *name == s)
                    .map(|(t, _)| *t)
            }),
            subject_countries: self.condition(
                t,
                key,
                "subject_countries",
                EXPECTED_COUNTRY,
                country,
            ),
            control_entries: self.condition(
                t,
                key,
                "control_entries",
                EXPECTED_CONTROL_ENTRY,
                |s| pattern(s, control_entry),
            ),
            hs_codes: self.condition(t, key, "hs_codes", EXPECTED_HS_CODE, hs_pattern),
            route_countries: self.condition(t, key, "route_countries", EXPECTED_COUNTRY, country),
            watchlists: self.condition(t, key, "watchlists", EXPECTED_WATCHLIST, |s| {
                pattern(s, is_watchlist_byte)
            }),
            max_age_days: t
                .get("max_age_days")
                .and_then(|v| self.max_age_days(v, &k("max_age_days"))),
        }
    }

    /// The action, with its redactions for a share rule.
    fn action(&mut self, key: &str, table: &Spanned<&DeTable<'_>>) -> Action {
        let t = table.get_ref();
        let k = |name: &str| format!("{key}.{name}");
        let expected = "\"share\" or \"deny\"";
        let share = match self.required(table, &k("action"), expected) {
            None => None,
            Some(v) => match self.string(v, &k("action"), expected) {
                Some("share") => Some(true),
                Some("deny") => Some(false),
                Some(_) => {
                    self.error(v.span(), &k("action"), expected);
                    None
                }
                None => None,
            },
        };
        if share == Some(false) {
            for name in ["redact", "generalise"] {
                if let Some(v) = t.get(name) {
                    let expected = format!("no `{name}` on a deny rule, which sends nothing");
                    self.error(v.span(), &k(name), expected);
                }
            }
            return Action::Deny;
        }
        let all = FieldPath::expected(&FieldPath::ALL);
        let redact = t
            .get("redact")
            .map(|v| self.list(v, &k("redact"), &all, true, FieldPath::from_name))
            .unwrap_or_default();
        let generalisable = FieldPath::expected(&FieldPath::GENERALISABLE);
        let generalise = t
            .get("generalise")
            .map(|v| {
                self.list(v, &k("generalise"), &generalisable, true, |s| {
                    FieldPath::from_name(s).filter(|p| FieldPath::GENERALISABLE.contains(p))
                })
            })
            .unwrap_or_default();
        for (j, path, span) in &generalise {
            if redact.iter().any(|(_, p, _)| p == path) {
                let expected = "a path that is not also listed in `redact`";
                self.error(span.clone(), &format!("{key}.generalise[{j}]"), expected);
            }
        }
        match share {
            Some(true) => Action::Share(Redaction {
                redact: redact.into_iter().map(|(_, p, _)| p).collect(),
                generalise: generalise.into_iter().map(|(_, p, _)| p).collect(),
            }),
            _ => Action::Deny,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Values.

    /// An optional list condition `name` of the rule table `t` at `key`: absent, or a
    /// non-empty list each of whose entries `parse` accepts.
    fn condition<T>(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        name: &str,
        one: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let v = t.get(name)?;
        let entries = self.list(v, &format!("{key}.{name}"), one, false, parse);
        Some(entries.into_iter().map(|(_, value, _)| value).collect())
    }

    /// A list of strings, each of which `parse` accepts; `one` describes an entry. Returns
    /// the accepted entries with their index and span.
    fn list<T>(
        &mut self,
        v: &Value<'_>,
        key: &str,
        one: &str,
        empty_ok: bool,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Vec<(usize, T, Range<usize>)> {
        let Some(array) = v.get_ref().as_array() else {
            let expected = format!("a list of strings, each {one}{}", found(v));
            self.error(v.span(), key, expected);
            return Vec::new();
        };
        if array.is_empty() && !empty_ok {
            let expected = "a non-empty list (leave the key out to set no condition)";
            self.error(v.span(), key, expected);
        }
        let mut out = Vec::with_capacity(array.len());
        for (i, entry) in array.iter().enumerate() {
            match entry.get_ref().as_str().and_then(&parse) {
                Some(value) => out.push((i, value, entry.span())),
                None => self.error(
                    entry.span(),
                    &format!("{key}[{i}]"),
                    format!("{one}{}", found(entry)),
                ),
            }
        }
        out
    }

    /// A list of item kinds, as a set.
    fn kinds(&mut self, v: &Value<'_>, key: &str, empty_ok: bool) -> KindSet {
        let expected = quoted_names(POLICY_KINDS.map(kind_name));
        let mut set = KindSet::default();
        for (_, kind, _) in self.list(v, key, &expected, empty_ok, policy_kind) {
            set.insert(kind);
        }
        set
    }

    fn tlp(&mut self, v: &Value<'_>, key: &str) -> Option<TlpLevel> {
        let expected = format!("a TLP level: {}", quoted_names(TLP_LEVELS.map(tlp_name)));
        let name = self.string(v, key, &expected)?;
        let level = TLP_LEVELS.into_iter().find(|l| tlp_name(*l) == name);
        if level.is_none() {
            self.error(v.span(), key, expected);
        }
        level
    }

    fn boolean(&mut self, v: &Value<'_>, key: &str) -> Option<bool> {
        let value = v.get_ref().as_bool();
        if value.is_none() {
            self.error(v.span(), key, format!("true or false{}", found(v)));
        }
        value
    }

    /// `releasable_to = "partner"`, the only value.
    fn releasable_to(&mut self, v: &Value<'_>, key: &str) -> bool {
        let expected = "\"partner\": only items whose releasable_to names the partner";
        match self.string(v, key, expected) {
            Some("partner") => true,
            Some(_) => {
                self.error(v.span(), key, expected);
                false
            }
            None => false,
        }
    }

    fn max_age_days(&mut self, v: &Value<'_>, key: &str) -> Option<u32> {
        let expected = format!("a whole number of days from 1 to {MAX_AGE_DAYS}");
        let days = self.integer(v, key, &expected)?;
        if (1..=MAX_AGE_DAYS).contains(&days) {
            u32::try_from(days).ok()
        } else {
            self.error(v.span(), key, expected);
            None
        }
    }

    fn string<'v>(&mut self, v: &'v Value<'_>, key: &str, expected: &str) -> Option<&'v str> {
        let value = v.get_ref().as_str();
        if value.is_none() {
            self.error(v.span(), key, format!("{expected}{}", found(v)));
        }
        value
    }

    /// An integer that fits in an i64.
    fn integer(&mut self, v: &Value<'_>, key: &str, expected: &str) -> Option<i64> {
        let value = v
            .get_ref()
            .as_integer()
            .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok());
        if value.is_none() {
            self.error(v.span(), key, format!("{expected}{}", found(v)));
        }
        value
    }

    /// The value of required key `key` (whose last part names it) in `table`; a missing
    /// key is reported at the table's header.
    fn required<'t, 'i>(
        &mut self,
        table: &Spanned<&'t DeTable<'i>>,
        key: &str,
        expected: &str,
    ) -> Option<&'t Value<'i>> {
        let name = key.rsplit('.').next().unwrap_or(key);
        let value = table.get_ref().get(name);
        if value.is_none() {
            self.error(
                table.span(),
                key,
                format!("{expected} (the key is missing)"),
            );
        }
        value
    }

    /// The tables of array-of-tables `v` (absent: none), each with its index.
    fn tables<'t, 'i>(
        &mut self,
        v: Option<&'t Value<'i>>,
        key: &str,
        header: &str,
    ) -> Vec<(usize, Spanned<&'t DeTable<'i>>)> {
        let Some(v) = v else {
            return Vec::new();
        };
        let expected = format!("a list of tables, each written {header}");
        let Some(array) = v.get_ref().as_array() else {
            self.error(v.span(), key, format!("{expected}{}", found(v)));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, entry) in array.iter().enumerate() {
            match entry.get_ref().as_table() {
                Some(t) => out.push((i, Spanned::new(entry.span(), t))),
                None => self.error(
                    entry.span(),
                    &format!("{key}[{i}]"),
                    format!("{expected}{}", found(entry)),
                ),
            }
        }
        out
    }

    /// Reports every key of `t` (at `at`) that is not in `known`.
    fn unknown_keys(&mut self, t: &DeTable<'_>, at: &str, known: &[&str], what: &str) {
        for (name, _) in t.iter() {
            if !known.contains(&name.get_ref().as_ref()) {
                let key = if at.is_empty() {
                    name.get_ref().to_string()
                } else {
                    format!("{at}.{}", name.get_ref())
                };
                let expected = format!("one of the keys of {what}: {}", known.join(", "));
                self.error(name.span(), &key, expected);
            }
        }
    }

    fn error(&mut self, span: Range<usize>, key: &str, expected: impl Into<String>) {
        let line = self.line(span);
        self.errors
            .push(PolicyError::new(self.file, line, key, expected));
    }

    /// The 1-based line on which `span` starts.
    fn line(&self, span: Range<usize>) -> usize {
        let before = self.text.as_bytes().get(..span.start).unwrap_or_default();
        before.iter().filter(|b| **b == b'\n').count() + 1
    }
}

/// ` (found an integer)`: the type of a value of the wrong type, for error messages.
fn found(v: &Value<'_>) -> String {
    let article = match v.get_ref() {
        DeValue::Integer(_) | DeValue::Array(_) => "an",
        _ => "a",
    };
    format!(" (found {article} {})", v.get_ref().type_str())
}

/// `one of "a", "b", "c"`.
fn quoted_names<const N: usize>(names: [&str; N]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("one of {}", quoted.join(", "))
}

fn policy_kind(name: &str) -> Option<ItemKind> {
    POLICY_KINDS.into_iter().find(|k| kind_name(*k) == name)
}

fn country(code: &str) -> Option<String> {
    let valid = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
    valid.then(|| code.to_owned())
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// A pattern whose bytes before an optional final `*` are all `allowed`; `"*"` alone is a
/// pattern too.
/// A byte a watchlist pattern may hold.
fn is_watchlist_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_./".contains(&b)
}

fn pattern(text: &str, allowed: impl Fn(u8) -> bool) -> Option<Pattern> {
    let body = text.strip_suffix('*').unwrap_or(text);
    let valid = text.len() <= MAX_PATTERN_LEN && !text.is_empty() && body.bytes().all(allowed);
    valid.then(|| Pattern::new(text))
}

/// An HS-code pattern: digits, with dots between groups dropped as in report JSON; exact
/// codes have 6 to 10 digits, prefixes at most 10.
fn hs_pattern(text: &str) -> Option<Pattern> {
    let (body, prefix) = match text.strip_suffix('*') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let digits: String = body.chars().filter(|c| *c != '.').collect();
    let length_ok = if prefix {
        digits.len() <= 10
    } else {
        (6..=10).contains(&digits.len())
    };
    let valid = length_ok
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !body.starts_with('.')
        && !body.ends_with('.')
        && !body.contains("..");
    valid.then(|| Pattern::new(&if prefix { digits + "*" } else { digits }))
}
