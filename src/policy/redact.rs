//! Field paths, and the redactions and generalisations a share rule applies to its copy.

use crate::pb;

/// A field of a report that a share rule may redact (and, for two of them, generalise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldPath {
    Reference,
    Narrative,
    RedFlags,
    SubjectAliases,
    SubjectCountries,
    SubjectIdentifiers,
    SubjectAddresses,
    SubjectRole,
    Goods,
    GoodsHsCode,
    GoodsControlEntry,
    GoodsQuantity,
    GoodsValue,
    Route,
    RouteOrigin,
    RouteTransit,
    RouteDestination,
    RouteEndUserCountry,
}

impl FieldPath {
    /// Every path, in documented order.
    pub(super) const ALL: [FieldPath; 18] = [
        FieldPath::Reference,
        FieldPath::Narrative,
        FieldPath::RedFlags,
        FieldPath::SubjectAliases,
        FieldPath::SubjectCountries,
        FieldPath::SubjectIdentifiers,
        FieldPath::SubjectAddresses,
        FieldPath::SubjectRole,
        FieldPath::Goods,
        FieldPath::GoodsHsCode,
        FieldPath::GoodsControlEntry,
        FieldPath::GoodsQuantity,
        FieldPath::GoodsValue,
        FieldPath::Route,
        FieldPath::RouteOrigin,
        FieldPath::RouteTransit,
        FieldPath::RouteDestination,
        FieldPath::RouteEndUserCountry,
    ];

    /// The paths that `generalise` accepts.
    pub(super) const GENERALISABLE: [FieldPath; 2] =
        [FieldPath::GoodsValue, FieldPath::SubjectAddresses];

    /// The path as written in a policy file.
    pub(super) fn name(self) -> &'static str {
        match self {
            FieldPath::Reference => "reference",
            FieldPath::Narrative => "narrative",
            FieldPath::RedFlags => "red_flags",
            FieldPath::SubjectAliases => "subjects[].aliases",
            FieldPath::SubjectCountries => "subjects[].countries",
            FieldPath::SubjectIdentifiers => "subjects[].identifiers",
            FieldPath::SubjectAddresses => "subjects[].addresses",
            FieldPath::SubjectRole => "subjects[].role",
            FieldPath::Goods => "goods",
            FieldPath::GoodsHsCode => "goods[].hs_code",
            FieldPath::GoodsControlEntry => "goods[].control_entry",
            FieldPath::GoodsQuantity => "goods[].quantity",
            FieldPath::GoodsValue => "goods[].value",
            FieldPath::Route => "route",
            FieldPath::RouteOrigin => "route.origin",
            FieldPath::RouteTransit => "route.transit",
            FieldPath::RouteDestination => "route.destination",
            FieldPath::RouteEndUserCountry => "route.end_user_country",
        }
    }

    /// The path named `name`, if it is one.
    pub(super) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `one of "a", "b"`: the names in `paths`, for error messages.
    pub(super) fn expected(paths: &[FieldPath]) -> String {
        let names: Vec<String> = paths.iter().map(|p| format!("\"{}\"", p.name())).collect();
        format!("one of {}", names.join(", "))
    }

    /// Removes the field from `report`: an empty text, an empty list, no value.
    fn redact(self, report: &mut pb::Report) {
        let subjects = report.subjects.iter_mut();
        let goods = report.goods.iter_mut();
        let route = report.route.as_mut();
        match self {
            FieldPath::Reference => report.reference.clear(),
            FieldPath::Narrative => report.narrative.clear(),
            FieldPath::RedFlags => report.red_flags.clear(),
            FieldPath::SubjectAliases => subjects.for_each(|s| s.aliases.clear()),
            FieldPath::SubjectCountries => subjects.for_each(|s| s.countries.clear()),
            FieldPath::SubjectIdentifiers => subjects.for_each(|s| s.identifiers.clear()),
            FieldPath::SubjectAddresses => subjects.for_each(|s| s.addresses.clear()),
            FieldPath::SubjectRole => subjects.for_each(|s| s.role.clear()),
            FieldPath::Goods => report.goods.clear(),
            FieldPath::GoodsHsCode => goods.for_each(|g| g.hs_code.clear()),
            FieldPath::GoodsControlEntry => goods.for_each(|g| g.control_entry.clear()),
            FieldPath::GoodsQuantity => goods.for_each(|g| {
                g.quantity = 0.0;
                g.unit.clear();
            }),
            FieldPath::GoodsValue => goods.for_each(|g| g.value = None),
            FieldPath::Route => report.route = None,
            FieldPath::RouteOrigin => route.into_iter().for_each(|r| r.origin.clear()),
            FieldPath::RouteTransit => route.into_iter().for_each(|r| r.transit.clear()),
            FieldPath::RouteDestination => route.into_iter().for_each(|r| r.destination.clear()),
            FieldPath::RouteEndUserCountry => {
                route.into_iter().for_each(|r| r.end_user_country.clear())
            }
        }
    }

    /// Replaces the field by a coarser form; a path that cannot be generalised is left alone
    /// (the parser accepts only [`Self::GENERALISABLE`]).
    fn generalise(self, report: &mut pb::Report) {
        match self {
            FieldPath::GoodsValue => {
                for money in report.goods.iter_mut().filter_map(|g| g.value.as_mut()) {
                    money.minor_units = decade_floor(money.minor_units);
                }
            }
            FieldPath::SubjectAddresses => {
                for subject in &mut report.subjects {
                    subject.addresses = countries_only(&subject.addresses);
                }
            }
            _ => {}
        }
    }
}

/// The largest power of ten at most `minor_units` (the lower end of its decade), or 0 for
/// an amount that is not positive: 18,600,000 becomes 10,000,000.
pub(super) fn decade_floor(minor_units: i64) -> i64 {
    if minor_units <= 0 {
        0
    } else {
        10_i64.pow(minor_units.ilog10())
    }
}

/// Each distinct country of `addresses`, in order of first appearance, as an address that
/// holds nothing else; an address without a country is dropped.
fn countries_only(addresses: &[pb::Address]) -> Vec<pb::Address> {
    let mut out: Vec<pb::Address> = Vec::new();
    for address in addresses {
        if !address.country.is_empty() && !out.iter().any(|a| a.country == address.country) {
            out.push(pb::Address {
                country: address.country.clone(),
                ..Default::default()
            });
        }
    }
    out
}

/// What a share rule does to the copy it sends.
#[derive(Debug, Clone, Default)]
pub(super) struct Redaction {
    /// Fields removed.
    pub(super) redact: Vec<FieldPath>,
    /// Fields replaced by a coarser form.
    pub(super) generalise: Vec<FieldPath>,
}

impl Redaction {
    /// The copy of `report` to send: generalised first, then redacted, so that a field both
    /// generalised and redacted is gone.
    pub(super) fn apply(&self, report: &pb::Report) -> pb::Report {
        let mut copy = report.clone();
        for path in &self.generalise {
            path.generalise(&mut copy);
        }
        for path in &self.redact {
            path.redact(&mut copy);
        }
        copy
    }

    /// The list reported in a decision: each redacted path, then each generalised path
    /// followed by ` (generalised)`.
    pub(super) fn applied(&self) -> Vec<String> {
        let redacted = self.redact.iter().map(|p| p.name().to_owned());
        let generalised = self
            .generalise
            .iter()
            .map(|p| format!("{} (generalised)", p.name()));
        redacted.chain(generalised).collect()
    }
}
