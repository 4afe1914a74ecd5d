//! The JSON form of a report, its validation, and its conversion to and from [`pb::Report`].
//!
//! Analysts write a report as JSON and submit it with `entente report submit report.json`;
//! `entente report show` and `entente policy explain` print the same form, so what an analyst
//! writes is what they read back. Keys are snake_case and named values are strings:
//!
//! ```json
//! {
//!   "kind": "suspicious-transaction",
//!   "title": "Front company buying 3A001 components",
//!   "subjects": [{ "type": "organisation", "name": "Example Trading FZE", "countries": ["AE"] }],
//!   "goods": [{ "description": "ADCs", "value": { "amount": "12500.00", "currency": "USD" } }],
//!   "handling": { "tlp": "AMBER", "originator_control": true, "releasable_to": ["DE-BAFA"] }
//! }
//! ```
//!
//! `examples/reports/` holds one complete report of each kind.
//!
//! Reading is done in two steps, each with its own error:
//!
//! 1. Shape, [`ReportError::Syntax`]: the text must be JSON with no unknown field, every
//!    required field present, every value of the right type, and every named value (`kind`,
//!    `subjects[].type`, `handling.tlp`) one of the listed names. The error gives the line, the
//!    column and the field path, such as `subjects[1].type`.
//! 2. Rules, [`ReportError::Invalid`]: [`validate`] checks the values and names the field path
//!    and what is expected. It applies the same rules to a report received over the control
//!    socket or from a peer, where a named value may also be out of range.
//!
//! The rules:
//!
//! - `kind` is one of the three report kinds; `denial_date` (a calendar date, `YYYY-MM-DD`) is
//!   required for a denial notification and forbidden for the other kinds.
//! - `title` is not blank and has at most 200 characters; a subject's `name` is not blank and
//!   has at most 300; goods descriptions have at most 2,000; every other text at most 300.
//! - There is at least one subject. No list has more than 1,000 entries, and no list entry is
//!   blank.
//! - Country codes have the shape of ISO 3166-1 alpha-2 (two upper-case ASCII letters)
//!   everywhere; currency codes the shape of ISO 4217 (three upper-case ASCII letters).
//! - Identifier schemes and roles are lower-case words: ASCII letters, digits and hyphens.
//! - An HS code is 6 to 10 digits. Analysts may write dots between digit groups
//!   (`8542.31.00`); the dots are dropped when the JSON is read, so the wire, the store and
//!   `report show` carry digits only (`85423100`), which is the form partners match on.
//! - An amount is a decimal string with at most two decimals (`"12500.00"`, `"80"`), carried
//!   exactly as minor units; a JSON number, a sign, an exponent or a third decimal is refused.
//! - A quantity is finite and not negative.
//! - `handling` is required and names its TLP level; `releasable_to` holds agency ids.
//! - The narrative has at most 64 KiB. No text holds a control character, except that the
//!   narrative may hold line feeds and tabs.

use std::{fmt, marker::PhantomData};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{identity::validate_agency_id, pb, sharing::ShareKind};

/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;
/// Longest subject name, alias or other short text, in characters.
const MAX_TEXT_CHARS: usize = 300;
/// Longest goods description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest narrative, in bytes of UTF-8.
const MAX_NARRATIVE_BYTES: usize = 64 * 1024;
/// Most entries in any one list (subjects, goods, aliases, red flags, ...).
const MAX_ENTRIES: usize = 1_000;
/// Longest identifier scheme or role, in characters.
const MAX_WORD_CHARS: usize = 40;
/// Largest whole number a quantity is written as without a fraction (2^53, exact in f64).
const MAX_WHOLE_QUANTITY: f64 = 9_007_199_254_740_992.0;

const EXPECTED_COUNTRY: &str =
    "a country code of two upper-case letters (ISO 3166-1 alpha-2), such as \"DE\"";
const EXPECTED_AMOUNT: &str =
    "a decimal string with at most two decimals and no sign, such as \"12500.00\"";

/// Why a report could not be read or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The text is not JSON, or not JSON of the report's shape: an unknown field, a missing
    /// required field, a value of the wrong type or a name that is not one of those listed.
    #[error("{source_name}:{line}:{column}: {}", at_path(.path, .message))]
    Syntax {
        /// Where the text came from, usually a file path.
        source_name: String,
        /// Line of the error, counted from 1.
        line: usize,
        /// Column of the error, counted from 1 (0 when the text ends at the start of a line).
        column: usize,
        /// Path of the field being read, such as `subjects[1].type`; `.` for the top level.
        path: String,
        /// What was wrong and what was expected.
        message: String,
    },
    /// The report is well formed but a value breaks a rule.
    #[error("{source_name}: invalid {path}: expected {expected}")]
    Invalid {
        /// Where the report came from: a file path, the control socket or a peer.
        source_name: String,
        /// Path of the offending field, such as `subjects[0].countries[1]`.
        path: String,
        /// What the field must hold.
        expected: String,
    },
}

/// `path: message`, or the message alone at the top level.
fn at_path(path: &str, message: &str) -> String {
    if path == "." {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// Parses and validates a report from JSON text read from `source_name` (a file path, shown
/// in errors).
pub fn parse_report_json(text: &str, source_name: &str) -> Result<pb::Report, ReportError> {
    let mut json = serde_json::Deserializer::from_str(text);
    let form: ReportJson = serde_path_to_error::deserialize(&mut json)
        .map_err(|e| syntax_error(source_name, e.path().to_string(), e.into_inner()))?;
    json.end()
        .map_err(|e| syntax_error(source_name, ".".to_owned(), e))?;
    let report = form.into_report(source_name)?;
    validate(&report, source_name)?;
    Ok(report)
}

/// Validates a report received over the control socket or from a peer (same rules;
/// `source_name` used in errors).
pub fn validate(report: &pb::Report, source_name: &str) -> Result<(), ReportError> {
    Rules { source_name }.report(report)
}

/// The JSON form of a report (the same shape [`parse_report_json`] reads), for `report show`
/// and `policy explain`.
///
/// Empty optional fields are left out. A named value out of range, which [`validate`] would
/// refuse, is written as its number.
pub fn report_to_json(report: &pb::Report) -> serde_json::Value {
    // Serialising these types cannot fail: every map key is a field name, and a float that
    // JSON cannot hold becomes null. `Null` is therefore never returned.
    serde_json::to_value(ReportJson::from(report)).unwrap_or_default()
}

/// The display name of an item kind, as written in report JSON and config files:
/// `"suspicious-transaction"`, `"denial-notification"`, `"enforcement-alert"`, and for the
/// kinds that are not reports `"watchlist-delta"`, `"correction"`, `"retraction"`,
/// `"unspecified"`.
pub fn kind_name(kind: pb::ItemKind) -> &'static str {
    if let Some(share_kind) = ShareKind::from_item_kind(kind) {
        return share_kind.name();
    }
    match kind {
        pb::ItemKind::WatchlistDelta => "watchlist-delta",
        pb::ItemKind::Correction => "correction",
        pb::ItemKind::Retraction => "retraction",
        pb::ItemKind::Consent => "consent",
        pb::ItemKind::Consultation => "consultation",
        _ => "unspecified",
    }
}

/// The display name of a TLP level, as in FIRST TLP 2.0: `"CLEAR"`, `"GREEN"`, `"AMBER"`,
/// `"AMBER+STRICT"`, `"RED"` (and `"UNSPECIFIED"` for the invalid zero value).
pub fn tlp_name(tlp: pb::TlpLevel) -> &'static str {
    match tlp {
        pb::TlpLevel::Unspecified => "UNSPECIFIED",
        pb::TlpLevel::Clear => "CLEAR",
        pb::TlpLevel::Green => "GREEN",
        pb::TlpLevel::Amber => "AMBER",
        pb::TlpLevel::AmberStrict => "AMBER+STRICT",
        pb::TlpLevel::Red => "RED",
    }
}

/// The name of a subject type in report JSON.
fn subject_type_name(subject_type: pb::SubjectType) -> &'static str {
    match subject_type {
        pb::SubjectType::Unspecified => "unspecified",
        pb::SubjectType::Person => "person",
        pb::SubjectType::Organisation => "organisation",
        pb::SubjectType::Vessel => "vessel",
        pb::SubjectType::Aircraft => "aircraft",
    }
}

/// Turns a serde_json error into [`ReportError::Syntax`], moving the position into fields.
fn syntax_error(source_name: &str, path: String, error: serde_json::Error) -> ReportError {
    let (line, column) = (error.line(), error.column());
    let text = error.to_string();
    let position = format!(" at line {line} column {column}");
    let message = text.strip_suffix(&position).unwrap_or(&text).to_owned();
    ReportError::Syntax {
        source_name: source_name.to_owned(),
        line,
        column,
        path,
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// Named values: protobuf enums written as strings.

/// A protobuf enum that report JSON writes by name.
trait NamedEnum: Copy + Into<i32> + TryFrom<i32> + 'static {
    /// The values a report may hold, in documented order.
    const ACCEPTED: &'static [Self];

    /// The value's name in report JSON.
    fn name(self) -> &'static str;

    /// `one of "a", "b", "c"`: the accepted names, for error messages.
    fn expected() -> String {
        let names: Vec<String> = Self::ACCEPTED
            .iter()
            .map(|v| format!("\"{}\"", v.name()))
            .collect();
        format!("one of {}", names.join(", "))
    }

    /// Whether `raw` is the number of an accepted value.
    fn accepts(raw: i32) -> bool {
        Self::ACCEPTED.iter().any(|v| (*v).into() == raw)
    }
}

impl NamedEnum for pb::ItemKind {
    const ACCEPTED: &'static [Self] = &[
        pb::ItemKind::SuspiciousTransaction,
        pb::ItemKind::DenialNotification,
        pb::ItemKind::EnforcementAlert,
    ];

    fn name(self) -> &'static str {
        kind_name(self)
    }
}

impl NamedEnum for pb::SubjectType {
    const ACCEPTED: &'static [Self] = &[
        pb::SubjectType::Person,
        pb::SubjectType::Organisation,
        pb::SubjectType::Vessel,
        pb::SubjectType::Aircraft,
    ];

    fn name(self) -> &'static str {
        subject_type_name(self)
    }
}

impl NamedEnum for pb::TlpLevel {
    const ACCEPTED: &'static [Self] = &[
        pb::TlpLevel::Clear,
        pb::TlpLevel::Green,
        pb::TlpLevel::Amber,
        pb::TlpLevel::AmberStrict,
        pb::TlpLevel::Red,
    ];

    fn name(self) -> &'static str {
        tlp_name(self)
    }
}

/// The wire number of a [`NamedEnum`], read and written by name.
struct Named<T> {
    raw: i32,
    kind: PhantomData<T>,
}

impl<T> Named<T> {
    fn new(raw: i32) -> Self {
        Self {
            raw,
            kind: PhantomData,
        }
    }
}

impl<T: NamedEnum> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match T::try_from(self.raw) {
            Ok(value) => serializer.serialize_str(value.name()),
            Err(_) => serializer.serialize_i32(self.raw),
        }
    }
}

impl<'de, T: NamedEnum> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NamedVisitor(PhantomData))
    }
}

struct NamedVisitor<T>(PhantomData<T>);

impl<T: NamedEnum> de::Visitor<'_> for NamedVisitor<T> {
    type Value = Named<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&T::expected())
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        T::ACCEPTED
            .iter()
            .find(|v| v.name() == name)
            .map(|v| Named::new((*v).into()))
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(name), &self))
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON form.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportJson {
    kind: Named<pb::ItemKind>,
    title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    reference: String,
    subjects: Vec<SubjectJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    goods: Vec<GoodsJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route: Option<RouteJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    red_flags: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    narrative: String,
    handling: HandlingJson,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    denial_date: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectJson {
    #[serde(rename = "type")]
    subject_type: Named<pb::SubjectType>,
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    countries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    identifiers: Vec<IdentifierJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<AddressJson>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    role: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierJson {
    scheme: String,
    value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    country: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressJson {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    lines: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    city: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    postal_code: String,
    country: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GoodsJson {
    description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    hs_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    control_entry: String,
    #[serde(
        default,
        skip_serializing_if = "is_zero_quantity",
        serialize_with = "write_quantity"
    )]
    quantity: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<MoneyJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyJson {
    #[serde(deserialize_with = "read_amount")]
    amount: String,
    currency: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteJson {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    origin: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    transit: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    destination: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    end_user_country: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandlingJson {
    tlp: Named<pb::TlpLevel>,
    #[serde(default)]
    originator_control: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    releasable_to: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero_days")]
    retention_days: u32,
}

fn is_zero_quantity(quantity: &f64) -> bool {
    *quantity == 0.0
}

fn is_zero_days(days: &u32) -> bool {
    *days == 0
}

/// Reads an amount as a string, so that a JSON number is refused with the expected form.
fn read_amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct AmountVisitor;

    impl de::Visitor<'_> for AmountVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED_AMOUNT)
        }

        fn visit_str<E: de::Error>(self, amount: &str) -> Result<String, E> {
            Ok(amount.to_owned())
        }
    }

    deserializer.deserialize_str(AmountVisitor)
}

/// Writes a whole quantity without a fraction (`500`, not `500.0`), as analysts write it.
fn write_quantity<S: Serializer>(quantity: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    let whole = quantity.fract() == 0.0 && (0.0..=MAX_WHOLE_QUANTITY).contains(quantity);
    if whole {
        // Exact: a whole number in 0..=2^53 converts to u64 without loss.
        serializer.serialize_u64(*quantity as u64)
    } else {
        serializer.serialize_f64(*quantity)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON to protobuf.

impl ReportJson {
    /// The wire report; fails only on an amount that is not a decimal string.
    fn into_report(self, source_name: &str) -> Result<pb::Report, ReportError> {
        let goods = self
            .goods
            .into_iter()
            .enumerate()
            .map(|(i, goods)| goods.into_goods(&format!("goods[{i}]"), source_name))
            .collect::<Result<_, _>>()?;
        Ok(pb::Report {
            kind: self.kind.raw,
            title: self.title,
            reference: self.reference,
            subjects: self.subjects.into_iter().map(Into::into).collect(),
            goods,
            route: self.route.map(Into::into),
            red_flags: self.red_flags,
            narrative: self.narrative,
            handling: Some(self.handling.into()),
            denial_date: self.denial_date,
        })
    }
}

impl From<SubjectJson> for pb::Subject {
    fn from(s: SubjectJson) -> Self {
        Self {
            r#type: s.subject_type.raw,
            name: s.name,
            aliases: s.aliases,
            countries: s.countries,
            identifiers: s.identifiers.into_iter().map(Into::into).collect(),
            addresses: s.addresses.into_iter().map(Into::into).collect(),
            role: s.role,
        }
    }
}

impl From<IdentifierJson> for pb::Identifier {
    fn from(i: IdentifierJson) -> Self {
        Self {
            scheme: i.scheme,
            value: i.value,
            country: i.country,
        }
    }
}

impl From<AddressJson> for pb::Address {
    fn from(a: AddressJson) -> Self {
        Self {
            lines: a.lines,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl GoodsJson {
    fn into_goods(self, path: &str, source_name: &str) -> Result<pb::Goods, ReportError> {
        let value = match self.value {
            None => None,
            Some(money) => {
                let minor_units = parse_amount(&money.amount).ok_or_else(|| {
                    invalid(source_name, format!("{path}.value.amount"), EXPECTED_AMOUNT)
                })?;
                Some(pb::Money {
                    minor_units,
                    currency: money.currency,
                })
            }
        };
        Ok(pb::Goods {
            description: self.description,
            hs_code: strip_hs_code_dots(self.hs_code),
            control_entry: self.control_entry,
            quantity: self.quantity,
            unit: self.unit,
            value,
        })
    }
}

impl From<RouteJson> for pb::Route {
    fn from(r: RouteJson) -> Self {
        Self {
            origin: r.origin,
            transit: r.transit,
            destination: r.destination,
            end_user_country: r.end_user_country,
        }
    }
}

impl From<HandlingJson> for pb::Handling {
    fn from(h: HandlingJson) -> Self {
        Self {
            tlp: h.tlp.raw,
            originator_control: h.originator_control,
            releasable_to: h.releasable_to,
            retention_days: h.retention_days,
        }
    }
}

/// Minor units of a decimal amount such as `"12500.00"`, `"12500.5"` or `"80"`; `None` for a
/// sign, an exponent, a third decimal, a missing digit or an amount that overflows.
fn parse_amount(amount: &str) -> Option<i64> {
    let (whole, fraction) = match amount.split_once('.') {
        Some((whole, fraction)) if (1..=2).contains(&fraction.len()) => (whole, fraction),
        Some(_) => return None,
        None => (amount, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

/// `8542.31.00` becomes `85423100`; anything other than digit groups joined by single dots
/// is kept as written, for [`validate`] to refuse.
fn strip_hs_code_dots(code: String) -> String {
    let dotted = code.contains('.')
        && code
            .split('.')
            .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()));
    if dotted { code.replace('.', "") } else { code }
}

// ---------------------------------------------------------------------------------------------
// Protobuf to JSON.

impl From<&pb::Report> for ReportJson {
    fn from(r: &pb::Report) -> Self {
        Self {
            kind: Named::new(r.kind),
            title: r.title.clone(),
            reference: r.reference.clone(),
            subjects: r.subjects.iter().map(Into::into).collect(),
            goods: r.goods.iter().map(Into::into).collect(),
            route: r.route.as_ref().map(Into::into),
            red_flags: r.red_flags.clone(),
            narrative: r.narrative.clone(),
            handling: r
                .handling
                .as_ref()
                .map(Into::into)
                .unwrap_or_else(|| HandlingJson {
                    tlp: Named::new(pb::TlpLevel::Unspecified.into()),
                    originator_control: false,
                    releasable_to: Vec::new(),
                    retention_days: 0,
                }),
            denial_date: r.denial_date.clone(),
        }
    }
}

impl From<&pb::Subject> for SubjectJson {
    fn from(s: &pb::Subject) -> Self {
        Self {
            subject_type: Named::new(s.r#type),
            name: s.name.clone(),
            aliases: s.aliases.clone(),
            countries: s.countries.clone(),
            identifiers: s.identifiers.iter().map(Into::into).collect(),
            addresses: s.addresses.iter().map(Into::into).collect(),
            role: s.role.clone(),
        }
    }
}

impl From<&pb::Identifier> for IdentifierJson {
    fn from(i: &pb::Identifier) -> Self {
        Self {
            scheme: i.scheme.clone(),
            value: i.value.clone(),
            country: i.country.clone(),
        }
    }
}

impl From<&pb::Address> for AddressJson {
    fn from(a: &pb::Address) -> Self {
        Self {
            lines: a.lines.clone(),
            city: a.city.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }
    }
}

impl From<&pb::Goods> for GoodsJson {
    fn from(g: &pb::Goods) -> Self {
        Self {
            description: g.description.clone(),
            hs_code: g.hs_code.clone(),
            control_entry: g.control_entry.clone(),
            quantity: g.quantity,
            unit: g.unit.clone(),
            value: g.value.as_ref().map(|money| MoneyJson {
                amount: format_amount(money.minor_units),
                currency: money.currency.clone(),
            }),
        }
    }
}

impl From<&pb::Route> for RouteJson {
    fn from(r: &pb::Route) -> Self {
        Self {
            origin: r.origin.clone(),
            transit: r.transit.clone(),
            destination: r.destination.clone(),
            end_user_country: r.end_user_country.clone(),
        }
    }
}

impl From<&pb::Handling> for HandlingJson {
    fn from(h: &pb::Handling) -> Self {
        Self {
            tlp: Named::new(h.tlp),
            originator_control: h.originator_control,
            releasable_to: h.releasable_to.clone(),
            retention_days: h.retention_days,
        }
    }
}

/// `1250000` becomes `"12500.00"`.
fn format_amount(minor_units: i64) -> String {
    let sign = if minor_units < 0 { "-" } else { "" };
    let units = minor_units.unsigned_abs();
    format!("{sign}{}.{:02}", units / 100, units % 100)
}

// ---------------------------------------------------------------------------------------------
// Validation.

fn invalid(source_name: &str, path: impl Into<String>, expected: impl Into<String>) -> ReportError {
    ReportError::Invalid {
        source_name: source_name.to_owned(),
        path: path.into(),
        expected: expected.into(),
    }
}

/// The report rules, applied field by field; the first broken rule is returned.
struct Rules<'a> {
    source_name: &'a str,
}

impl Rules<'_> {
    fn report(&self, r: &pb::Report) -> Result<(), ReportError> {
        self.named::<pb::ItemKind>("kind", r.kind)?;
        self.required_text("title", &r.title, MAX_TITLE_CHARS)?;
        self.text("reference", &r.reference, MAX_TEXT_CHARS)?;
        if r.subjects.is_empty() {
            return Err(self.invalid("subjects", "at least one subject"));
        }
        self.entries("subjects", r.subjects.len())?;
        for (i, subject) in r.subjects.iter().enumerate() {
            self.subject(&format!("subjects[{i}]"), subject)?;
        }
        self.entries("goods", r.goods.len())?;
        for (i, goods) in r.goods.iter().enumerate() {
            self.goods(&format!("goods[{i}]"), goods)?;
        }
        if let Some(route) = &r.route {
            self.route(route)?;
        }
        self.texts("red_flags", &r.red_flags, MAX_TEXT_CHARS)?;
        self.narrative(&r.narrative)?;
        let handling = r
            .handling
            .as_ref()
            .ok_or_else(|| self.invalid("handling", "a handling marking with a TLP level"))?;
        self.handling(handling)?;
        self.denial_date(r)
    }

    fn subject(&self, path: &str, s: &pb::Subject) -> Result<(), ReportError> {
        self.named::<pb::SubjectType>(&format!("{path}.type"), s.r#type)?;
        self.required_text(&format!("{path}.name"), &s.name, MAX_TEXT_CHARS)?;
        self.texts(&format!("{path}.aliases"), &s.aliases, MAX_TEXT_CHARS)?;
        self.entries(&format!("{path}.countries"), s.countries.len())?;
        for (i, country) in s.countries.iter().enumerate() {
            self.country(&format!("{path}.countries[{i}]"), country)?;
        }
        self.entries(&format!("{path}.identifiers"), s.identifiers.len())?;
        for (i, identifier) in s.identifiers.iter().enumerate() {
            self.identifier(&format!("{path}.identifiers[{i}]"), identifier)?;
        }
        self.entries(&format!("{path}.addresses"), s.addresses.len())?;
        for (i, address) in s.addresses.iter().enumerate() {
            self.address(&format!("{path}.addresses[{i}]"), address)?;
        }
        if !s.role.is_empty() {
            self.word(&format!("{path}.role"), &s.role)?;
        }
        Ok(())
    }

    fn identifier(&self, path: &str, i: &pb::Identifier) -> Result<(), ReportError> {
        self.word(&format!("{path}.scheme"), &i.scheme)?;
        self.required_text(&format!("{path}.value"), &i.value, MAX_TEXT_CHARS)?;
        self.optional_country(&format!("{path}.country"), &i.country)
    }

    fn address(&self, path: &str, a: &pb::Address) -> Result<(), ReportError> {
        self.texts(&format!("{path}.lines"), &a.lines, MAX_TEXT_CHARS)?;
        self.text(&format!("{path}.city"), &a.city, MAX_TEXT_CHARS)?;
        self.text(
            &format!("{path}.postal_code"),
            &a.postal_code,
            MAX_TEXT_CHARS,
        )?;
        self.country(&format!("{path}.country"), &a.country)
    }

    fn goods(&self, path: &str, g: &pb::Goods) -> Result<(), ReportError> {
        let description = format!("{path}.description");
        self.required_text(&description, &g.description, MAX_DESCRIPTION_CHARS)?;
        if !g.hs_code.is_empty() && !is_hs_code(&g.hs_code) {
            let expected = "an HS code of 6 to 10 digits, such as \"854231\"";
            return Err(self.invalid(format!("{path}.hs_code"), expected));
        }
        self.text(
            &format!("{path}.control_entry"),
            &g.control_entry,
            MAX_TEXT_CHARS,
        )?;
        if !(g.quantity.is_finite() && g.quantity >= 0.0) {
            let expected = "a finite number that is not negative";
            return Err(self.invalid(format!("{path}.quantity"), expected));
        }
        self.text(&format!("{path}.unit"), &g.unit, MAX_TEXT_CHARS)?;
        match &g.value {
            Some(money) => self.money(&format!("{path}.value"), money),
            None => Ok(()),
        }
    }

    fn money(&self, path: &str, m: &pb::Money) -> Result<(), ReportError> {
        if m.minor_units < 0 {
            return Err(self.invalid(format!("{path}.amount"), EXPECTED_AMOUNT));
        }
        if !(m.currency.len() == 3 && m.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            let expected =
                "a currency code of three upper-case letters (ISO 4217), such as \"USD\"";
            return Err(self.invalid(format!("{path}.currency"), expected));
        }
        Ok(())
    }

    fn route(&self, r: &pb::Route) -> Result<(), ReportError> {
        self.optional_country("route.origin", &r.origin)?;
        self.entries("route.transit", r.transit.len())?;
        for (i, country) in r.transit.iter().enumerate() {
            self.country(&format!("route.transit[{i}]"), country)?;
        }
        self.optional_country("route.destination", &r.destination)?;
        self.optional_country("route.end_user_country", &r.end_user_country)
    }

    fn narrative(&self, narrative: &str) -> Result<(), ReportError> {
        if narrative.len() > MAX_NARRATIVE_BYTES {
            return Err(self.invalid("narrative", "at most 64 KiB of text"));
        }
        let layout = |c: char| c == '\n' || c == '\t';
        if narrative.chars().any(|c| c.is_control() && !layout(c)) {
            let expected = "text without control characters other than line feed and tab";
            return Err(self.invalid("narrative", expected));
        }
        Ok(())
    }

    fn handling(&self, h: &pb::Handling) -> Result<(), ReportError> {
        self.named::<pb::TlpLevel>("handling.tlp", h.tlp)?;
        self.entries("handling.releasable_to", h.releasable_to.len())?;
        for (i, agency) in h.releasable_to.iter().enumerate() {
            if validate_agency_id(agency).is_err() {
                let expected = "an agency id of 2 to 32 upper-case letters, digits and hyphens, \
                                starting with a letter, such as \"DE-BAFA\"";
                return Err(self.invalid(format!("handling.releasable_to[{i}]"), expected));
            }
        }
        Ok(())
    }

    fn denial_date(&self, r: &pb::Report) -> Result<(), ReportError> {
        let is_denial = r.kind == i32::from(pb::ItemKind::DenialNotification);
        let expected = match (is_denial, r.denial_date.as_str()) {
            (true, "") => "the date the licence was refused, as YYYY-MM-DD",
            (true, date) if !is_calendar_date(date) => "a calendar date as YYYY-MM-DD",
            (false, date) if !date.is_empty() => "no denial_date outside a denial notification",
            _ => return Ok(()),
        };
        Err(self.invalid("denial_date", expected))
    }

    fn named<T: NamedEnum>(&self, path: &str, raw: i32) -> Result<(), ReportError> {
        if T::accepts(raw) {
            Ok(())
        } else {
            Err(self.invalid(path, T::expected()))
        }
    }

    fn entries(&self, path: &str, count: usize) -> Result<(), ReportError> {
        if count > MAX_ENTRIES {
            Err(self.invalid(path, format!("at most {MAX_ENTRIES} entries")))
        } else {
            Ok(())
        }
    }

    /// A list of texts, none of them blank.
    fn texts(&self, path: &str, values: &[String], max_chars: usize) -> Result<(), ReportError> {
        self.entries(path, values.len())?;
        for (i, value) in values.iter().enumerate() {
            self.required_text(&format!("{path}[{i}]"), value, max_chars)?;
        }
        Ok(())
    }

    fn required_text(&self, path: &str, value: &str, max_chars: usize) -> Result<(), ReportError> {
        if value.trim().is_empty() {
            return Err(self.invalid(path, "a text that is not blank"));
        }
        self.text(path, value, max_chars)
    }

    fn text(&self, path: &str, value: &str, max_chars: usize) -> Result<(), ReportError> {
        if value.chars().count() > max_chars {
            return Err(self.invalid(path, format!("at most {max_chars} characters")));
        }
        if value.chars().any(char::is_control) {
            return Err(self.invalid(path, "text without control characters"));
        }
        Ok(())
    }

    /// A lower-case word such as an identifier scheme (`imo`) or a role (`end-user`).
    fn word(&self, path: &str, value: &str) -> Result<(), ReportError> {
        let ok = (1..=MAX_WORD_CHARS).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(())
        } else {
            let expected = "a lower-case word of letters, digits and hyphens, such as \"end-user\"";
            Err(self.invalid(path, expected))
        }
    }

    fn country(&self, path: &str, code: &str) -> Result<(), ReportError> {
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(self.invalid(path, EXPECTED_COUNTRY))
        }
    }

    fn optional_country(&self, path: &str, code: &str) -> Result<(), ReportError> {
        if code.is_empty() {
            Ok(())
        } else {
            self.country(path, code)
        }
    }

    fn invalid(&self, path: impl Into<String>, expected: impl Into<String>) -> ReportError {
        invalid(self.source_name, path, expected)
    }
}

fn is_hs_code(code: &str) -> bool {
    (6..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `date` is `YYYY-MM-DD` and names a day of the proleptic Gregorian calendar.
fn is_calendar_date(date: &str) -> bool {
    let number = |from: usize, to: usize| {
        date.get(from..to)
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok())
    };
    let dashes = date.len() == 10 && date.get(4..5) == Some("-") && date.get(7..8) == Some("-");
    let (Some(year), Some(month), Some(day)) = (number(0, 4), number(5, 7), number(8, 10)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    dashes && (1..=days_in_month).contains(&day)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const EXAMPLES: [(&str, &str); 3] = [
        (
            "str-front-company.json",
            include_str!("../examples/reports/str-front-company.json"),
        ),
        (
            "denial-dual-use.json",
            include_str!("../examples/reports/denial-dual-use.json"),
        ),
        (
            "alert-vessel.json",
            include_str!("../examples/reports/alert-vessel.json"),
        ),
    ];

    /// The STR example as a JSON value, changed by `edit`.
    fn str_report_with(edit: impl FnOnce(&mut Value)) -> Value {
        let mut report: Value =
            serde_json::from_str(EXAMPLES[0].1).expect("the STR example is JSON");
        edit(&mut report);
        report
    }

    fn field<'a>(report: &'a mut Value, pointer: &str) -> &'a mut Value {
        report
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("the example has {pointer}"))
    }

    fn parse(report: &Value) -> Result<pb::Report, ReportError> {
        parse_report_json(&report.to_string(), "report.json")
    }

    /// The line, column, path and message of a syntax error.
    fn syntax(result: Result<pb::Report, ReportError>) -> (usize, usize, String, String) {
        match result {
            Err(ReportError::Syntax {
                line,
                column,
                path,
                message,
                ..
            }) => (line, column, path, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    /// The path and expectation of an invalid value.
    fn invalid(result: Result<pb::Report, ReportError>) -> (String, String) {
        match result {
            Err(ReportError::Invalid { path, expected, .. }) => (path, expected),
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    /// The path [`validate`] names when it refuses `report`.
    fn refused_at(report: &pb::Report) -> String {
        match validate(report, "peer US-BIS") {
            Err(ReportError::Invalid { path, .. }) => path,
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    fn valid_report() -> pb::Report {
        parse_report_json(EXAMPLES[0].1, "str-front-company.json").expect("the example is valid")
    }

    #[test]
    fn examples_round_trip_through_protobuf() {
        for (name, text) in EXAMPLES {
            let report = parse_report_json(text, name).expect("the example is valid");
            let written: Value = serde_json::from_str(text).expect("the example is JSON");
            assert_eq!(report_to_json(&report), written, "{name}");
            let again = parse(&report_to_json(&report)).expect("the written form is valid");
            assert_eq!(again, report, "{name}");
        }
    }

    #[test]
    fn not_json_reports_line_and_column() {
        let text = "{\n  \"kind\": \"suspicious-transaction\",\n  \"title\": oops\n}";
        let error = parse_report_json(text, "report.json").expect_err("not JSON");
        assert_eq!(error.to_string(), "report.json:3:12: title: expected value");
        let (line, column, path, _) = syntax(Err(error));
        assert_eq!((line, column, path.as_str()), (3, 12, "title"));
    }

    #[test]
    fn trailing_text_after_the_report_is_refused() {
        let text = format!("{}\n{{}}", EXAMPLES[0].1.trim_end());
        let (_, _, _, message) = syntax(parse_report_json(&text, "report.json"));
        assert_eq!(message, "trailing characters");
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let report = str_report_with(|r| {
            field(r, "/subjects/1")["colour"] = json!("red");
        });
        let (_, _, path, message) = syntax(parse(&report));
        assert!(path.starts_with("subjects[1]"), "{path}");
        assert!(message.starts_with("unknown field `colour`"), "{message}");
    }

    #[test]
    fn unknown_subject_type_lists_the_expected_values() {
        let report = str_report_with(|r| *field(r, "/subjects/1/type") = json!("ship"));
        let (_, _, path, message) = syntax(parse(&report));
        assert_eq!(path, "subjects[1].type");
        assert_eq!(
            message,
            "invalid value: string \"ship\", expected one of \"person\", \"organisation\", \
             \"vessel\", \"aircraft\""
        );
    }

    #[test]
    fn non_report_kind_is_refused() {
        let report = str_report_with(|r| *field(r, "/kind") = json!("watchlist-delta"));
        let (_, _, path, message) = syntax(parse(&report));
        assert_eq!(path, "kind");
        assert!(message.contains("\"enforcement-alert\""), "{message}");
    }

    #[test]
    fn unknown_tlp_lists_the_levels() {
        let report = str_report_with(|r| *field(r, "/handling/tlp") = json!("amber"));
        let (_, _, path, message) = syntax(parse(&report));
        assert_eq!(path, "handling.tlp");
        assert!(
            message.ends_with(
                "expected one of \"CLEAR\", \"GREEN\", \"AMBER\", \"AMBER+STRICT\", \"RED\""
            ),
            "{message}"
        );
    }

    #[test]
    fn missing_required_field_is_named() {
        let report = str_report_with(|r| {
            field(r, "/handling")
                .as_object_mut()
                .map(|h| h.remove("tlp"));
        });
        let (_, _, path, message) = syntax(parse(&report));
        assert_eq!(path, "handling");
        assert_eq!(message, "missing field `tlp`");

        let report = str_report_with(|r| {
            r.as_object_mut().map(|r| r.remove("handling"));
        });
        let error = parse(&report).expect_err("handling is required");
        assert!(
            error.to_string().ends_with(": missing field `handling`"),
            "{error}"
        );
    }

    #[test]
    fn empty_subjects_are_refused() {
        let report = str_report_with(|r| *field(r, "/subjects") = json!([]));
        let error = parse(&report).expect_err("no subject");
        assert_eq!(
            error.to_string(),
            "report.json: invalid subjects: expected at least one subject"
        );
    }

    #[test]
    fn bad_country_code_names_its_index() {
        let report = str_report_with(|r| *field(r, "/subjects/0/countries") = json!(["AE", "de"]));
        let (path, expected) = invalid(parse(&report));
        assert_eq!(path, "subjects[0].countries[1]");
        assert_eq!(expected, EXPECTED_COUNTRY);

        let report = str_report_with(|r| *field(r, "/route/transit/0") = json!("TUR"));
        assert_eq!(invalid(parse(&report)).0, "route.transit[0]");
    }

    #[test]
    fn denial_without_denial_date_is_refused() {
        let text = EXAMPLES[1].1;
        let mut report: Value = serde_json::from_str(text).expect("the denial example is JSON");
        report.as_object_mut().map(|r| r.remove("denial_date"));
        let (path, expected) = invalid(parse(&report));
        assert_eq!(path, "denial_date");
        assert!(expected.contains("YYYY-MM-DD"), "{expected}");

        report["denial_date"] = json!("2024-02-30");
        assert_eq!(invalid(parse(&report)).1, "a calendar date as YYYY-MM-DD");
    }

    #[test]
    fn denial_date_outside_a_denial_is_refused() {
        let report = str_report_with(|r| r["denial_date"] = json!("2024-03-18"));
        assert_eq!(invalid(parse(&report)).0, "denial_date");
    }

    #[test]
    fn bad_amount_is_refused() {
        for amount in [
            "12500.005",
            "-1.00",
            "1e3",
            "1,000.00",
            ".50",
            "12.",
            "",
            " 12",
        ] {
            let report = str_report_with(|r| *field(r, "/goods/0/value/amount") = json!(amount));
            let (path, expected) = invalid(parse(&report));
            assert_eq!(path, "goods[0].value.amount", "{amount:?}");
            assert_eq!(expected, EXPECTED_AMOUNT);
        }
        let report = str_report_with(|r| *field(r, "/goods/0/value/amount") = json!(12500.0));
        let (_, _, path, message) = syntax(parse(&report));
        assert_eq!(path, "goods[0].value.amount");
        assert!(message.ends_with(EXPECTED_AMOUNT), "{message}");
    }

    #[test]
    fn amounts_are_carried_exactly_in_minor_units() {
        assert_eq!(parse_amount("12500.00"), Some(1_250_000));
        assert_eq!(parse_amount("0.07"), Some(7));
        assert_eq!(parse_amount("12.5"), Some(1_250));
        assert_eq!(parse_amount("80"), Some(8_000));
        assert_eq!(parse_amount("92233720368547758.07"), Some(i64::MAX));
        assert_eq!(parse_amount("92233720368547758.08"), None);
        assert_eq!(format_amount(1_250_050), "12500.50");
        assert_eq!(format_amount(7), "0.07");
    }

    #[test]
    fn bad_agency_id_in_releasable_to_is_refused() {
        let report = str_report_with(|r| {
            *field(r, "/handling/releasable_to") = json!(["DE-BAFA", "de-bafa"]);
        });
        let (path, expected) = invalid(parse(&report));
        assert_eq!(path, "handling.releasable_to[1]");
        assert!(expected.contains("\"DE-BAFA\""), "{expected}");
    }

    #[test]
    fn hs_code_dots_are_dropped_and_length_is_checked() {
        let report = str_report_with(|r| *field(r, "/goods/0/hs_code") = json!("8542.31.00"));
        assert_eq!(
            parse(&report).expect("dotted HS code").goods[0].hs_code,
            "85423100"
        );
        for code in ["8542", "8542..31", "85423100001", "8542a1"] {
            let report = str_report_with(|r| *field(r, "/goods/0/hs_code") = json!(code));
            assert_eq!(invalid(parse(&report)).0, "goods[0].hs_code", "{code:?}");
        }
    }

    #[test]
    fn control_characters_are_refused_except_layout_in_narrative() {
        let report = str_report_with(|r| *field(r, "/subjects/0/name") = json!("Name\u{7}"));
        assert_eq!(invalid(parse(&report)).0, "subjects[0].name");

        let report = str_report_with(|r| *field(r, "/narrative") = json!("one\n\ttwo"));
        assert!(parse(&report).is_ok());
        let report = str_report_with(|r| *field(r, "/narrative") = json!("one\r\ntwo"));
        assert_eq!(invalid(parse(&report)).0, "narrative");
    }

    #[test]
    fn long_or_blank_texts_are_refused() {
        let report = str_report_with(|r| *field(r, "/title") = json!("x".repeat(201)));
        let (path, expected) = invalid(parse(&report));
        assert_eq!(
            (path.as_str(), expected.as_str()),
            ("title", "at most 200 characters")
        );

        let report = str_report_with(|r| *field(r, "/subjects/0/name") = json!("  "));
        assert_eq!(invalid(parse(&report)).0, "subjects[0].name");

        let report = str_report_with(|r| *field(r, "/narrative") = json!("x".repeat(65_537)));
        assert_eq!(invalid(parse(&report)).0, "narrative");
    }

    #[test]
    fn too_many_subjects_are_refused() {
        let mut report = valid_report();
        report.subjects = vec![report.subjects[0].clone(); MAX_ENTRIES + 1];
        let error = validate(&report, "control socket").expect_err("too many subjects");
        assert_eq!(
            error.to_string(),
            "control socket: invalid subjects: expected at most 1000 entries"
        );
    }

    #[test]
    fn negative_quantity_is_refused() {
        let report = str_report_with(|r| *field(r, "/goods/0/quantity") = json!(-1));
        assert_eq!(invalid(parse(&report)).0, "goods[0].quantity");
        let mut report = valid_report();
        report.goods[0].quantity = f64::NAN;
        assert_eq!(refused_at(&report), "goods[0].quantity");
    }

    #[test]
    fn out_of_range_values_in_protobuf_are_invalid() {
        let mut report = valid_report();
        report.subjects[1].r#type = 9;
        let error = validate(&report, "peer US-BIS").expect_err("subject type 9");
        assert_eq!(
            error.to_string(),
            "peer US-BIS: invalid subjects[1].type: expected one of \"person\", \
             \"organisation\", \"vessel\", \"aircraft\""
        );
        assert_eq!(report_to_json(&report)["subjects"][1]["type"], json!(9));

        let mut report = valid_report();
        report.kind = pb::ItemKind::WatchlistDelta.into();
        assert_eq!(refused_at(&report), "kind");

        let mut report = valid_report();
        report.handling = Some(pb::Handling::default());
        assert_eq!(refused_at(&report), "handling.tlp");
        report.handling = None;
        assert_eq!(refused_at(&report), "handling");
    }

    #[test]
    fn display_names_match_the_json_form() {
        assert_eq!(
            kind_name(pb::ItemKind::SuspiciousTransaction),
            "suspicious-transaction"
        );
        assert_eq!(kind_name(pb::ItemKind::WatchlistDelta), "watchlist-delta");
        assert_eq!(tlp_name(pb::TlpLevel::AmberStrict), "AMBER+STRICT");
        let report = str_report_with(|r| *field(r, "/handling/tlp") = json!("AMBER+STRICT"));
        let handling = parse(&report).expect("valid").handling.expect("handling");
        assert_eq!(handling.tlp, i32::from(pb::TlpLevel::AmberStrict));
    }

    #[test]
    fn dates_follow_the_calendar() {
        assert!(is_calendar_date("2024-02-29"));
        assert!(!is_calendar_date("2023-02-29"));
        assert!(!is_calendar_date("2024-13-01"));
        assert!(!is_calendar_date("2024-1-01"));
        assert!(!is_calendar_date("2024/01/01"));
        assert!(!is_calendar_date("+024-01-01"));
    }
}
