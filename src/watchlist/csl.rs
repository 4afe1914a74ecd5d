//! The Consolidated Screening List (trade.gov) as CSV.
//!
//! The file has a header row naming 29 columns (`_id, source, entity_number, type,
//! programs, name, title, addresses, ...`); columns are found by name. A row that repeats
//! the header (published files have one as line 2) is skipped. A row with fewer or more
//! fields than the header is malformed. Multi-valued fields are `;`-separated. The mapping
//! onto an entry:
//!
//! - id: the source list's short name and `_id` (or `entity_number` when `_id` is empty),
//!   as `SSI:17014`. The same OFAC entity appears under two source lists (SSI and NS-MBS,
//!   SDN and PLC) with the same `_id`, so `_id` alone is not unique.
//! - type: `Individual` is a person, `Entity` an organisation, `Vessel` and `Aircraft` as
//!   named; an empty type is inferred from the name, with a person as the default for the
//!   DPL and ITAR-debarred sources and an organisation for the others.
//! - aliases: `alt_names`; programs: `programs`; listed on: `start_date`.
//! - addresses: each of `addresses`; a last comma-separated part that is a country code or
//!   name becomes the country, the rest one address line (the CSL does not split city and
//!   postal code reliably).
//! - countries: `citizenships`, `nationalities`, the address countries and `vessel_flag`.
//! - identifiers: each `Type, Value, CC` of `ids` whose type names an identifier (the
//!   column also holds facts such as "Website" or "Listing Date (CMIC)", which go to the
//!   remarks), and `call_sign`.
//! - remarks: `remarks`, then the source list, title, dates and places of birth, Federal
//!   Register notice, end date, licence requirement and policy, and vessel details, each
//!   labelled.

use std::{collections::HashMap, path::Path};

use super::{
    Imported, WatchlistError, countries,
    source::{self, Collector, infer_type, iso_date, push_remark, split_list, squeeze},
};
use crate::pb;

/// Columns that a CSL file must have.
const REQUIRED: &[&str] = &["_id", "source", "entity_number", "type", "name"];

/// Reads the CSL file at `path` (see [`super::import`]).
pub(super) fn import(path: &Path, strict: bool) -> Result<Imported, WatchlistError> {
    let text = source::read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let bad_file = |reason: String| WatchlistError::BadFile {
        path: path.to_owned(),
        reason,
    };
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(header)) => header,
        Some(Err(err)) => return Err(bad_file(format!("not readable as CSV: {err}"))),
        None => {
            return Err(bad_file(
                "the file is empty; expected the CSL header".into(),
            ));
        }
    };
    let columns: HashMap<&str, usize> = header.iter().enumerate().map(|(i, c)| (c, i)).collect();
    if let Some(missing) = REQUIRED.iter().find(|c| !columns.contains_key(*c)) {
        return Err(bad_file(format!(
            "the header has no {missing:?} column; expected the CSL header (_id, source, \
             entity_number, type, programs, name, ...)"
        )));
    }
    let mut out = Collector::new(strict);
    for record in records {
        let record = record.map_err(|err| bad_file(format!("not readable as CSV: {err}")))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().eq(header.iter()) {
            tracing::debug!(file = %path.display(), line, "repeated header skipped");
        } else if record.len() != header.len() {
            let reason = format!(
                "expected {} fields, found {} (the row is cut short or has extra fields)",
                header.len(),
                record.len()
            );
            out.reject(path, line, reason)?;
        } else {
            let row = Row {
                columns: &columns,
                record: &record,
            };
            match entry(&row) {
                Ok(entry) => out.add(path, line, entry)?,
                Err(reason) => out.reject(path, line, reason)?,
            }
        }
    }
    Ok(out.finish())
}

/// One data row, read by column name.
struct Row<'a> {
    columns: &'a HashMap<&'a str, usize>,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    /// The squeezed value of `column`, empty when the file has no such column.
    fn get(&self, column: &str) -> String {
        let value = self.columns.get(column).and_then(|&i| self.record.get(i));
        squeeze(value.unwrap_or(""))
    }
}

/// The entry of one row.
fn entry(row: &Row<'_>) -> Result<pb::WatchlistEntry, String> {
    let source = row.get("source");
    let short = short_name(&source);
    let name = row.get("name");
    if name.is_empty() {
        return Err("name is empty".into());
    }
    let mut entry = pb::WatchlistEntry {
        id: id(row, &short)?,
        r#type: subject_type(&row.get("type"), &name, &short)? as i32,
        name,
        aliases: split_list(&row.get("alt_names")).collect(),
        programs: split_list(&row.get("programs")).collect(),
        remarks: row.get("remarks"),
        ..Default::default()
    };
    add_places(row, &mut entry);
    add_identifiers(row, &mut entry);
    match iso_date(&row.get("start_date")) {
        Some(date) => entry.listed_on = date,
        None => push_remark(&mut entry.remarks, "Start date", &row.get("start_date")),
    }
    push_remark(&mut entry.remarks, "Source", &source);
    for (label, column) in LABELLED {
        push_remark(&mut entry.remarks, label, &row.get(column));
    }
    Ok(entry)
}

/// Columns that go to the remarks, with their labels.
const LABELLED: [(&str, &str); 10] = [
    ("Title", "title"),
    ("Date of birth", "dates_of_birth"),
    ("Place of birth", "places_of_birth"),
    ("Federal Register notice", "federal_register_notice"),
    ("End date", "end_date"),
    ("License requirement", "license_requirement"),
    ("License policy", "license_policy"),
    ("Vessel type", "vessel_type"),
    ("Gross tonnage", "gross_tonnage"),
    ("Vessel owner", "vessel_owner"),
];

/// The short name of a source list: the first word in its brackets ("SSI" for "Sectoral
/// Sanctions Identifications List (SSI) - Treasury Department"), or empty.
fn short_name(source: &str) -> String {
    let inner = source
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'));
    let word = inner.and_then(|(inner, _)| inner.split_whitespace().next());
    word.unwrap_or("").to_owned()
}

/// The entry id: the short source name and `_id` or `entity_number`.
fn id(row: &Row<'_>, short: &str) -> Result<String, String> {
    let mut id = row.get("_id");
    if id.is_empty() {
        id = row.get("entity_number");
    }
    match (id.is_empty(), short.is_empty()) {
        (true, _) => Err("_id and entity_number are both empty".into()),
        (false, true) => Ok(id),
        (false, false) => Ok(format!("{short}:{id}")),
    }
}

/// The subject type of a row.
fn subject_type(kind: &str, name: &str, short: &str) -> Result<pb::SubjectType, String> {
    Ok(match kind {
        "Individual" => pb::SubjectType::Person,
        "Entity" => pb::SubjectType::Organisation,
        "Vessel" => pb::SubjectType::Vessel,
        "Aircraft" => pb::SubjectType::Aircraft,
        "" if matches!(short, "DPL" | "DTC") => infer_type(name, pb::SubjectType::Person),
        "" => infer_type(name, pb::SubjectType::Organisation),
        other => {
            return Err(format!(
                "type {other:?} is not Individual, Entity, Vessel or Aircraft"
            ));
        }
    })
}

/// Adds the addresses and the countries of a row.
fn add_places(row: &Row<'_>, entry: &mut pb::WatchlistEntry) {
    for text in split_list(&row.get("addresses")) {
        let address = address(&text);
        if !address.country.is_empty() {
            entry.countries.push(address.country.clone());
        }
        entry.addresses.push(address);
    }
    for column in ["citizenships", "nationalities", "vessel_flag"] {
        for value in split_list(&row.get(column)) {
            match countries::code(&value) {
                Some(code) => entry.countries.push(code.to_owned()),
                None => push_remark(&mut entry.remarks, column, &value),
            }
        }
    }
}

/// An address from its one-line CSL form, such as `Street 1, City, 12345, RU`.
fn address(text: &str) -> pb::Address {
    let (rest, last) = match text.rsplit_once(',') {
        Some((rest, last)) => (rest.trim(), last.trim()),
        None => ("", text),
    };
    match countries::code(last) {
        Some(code) => pb::Address {
            lines: Some(rest)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .into_iter()
                .collect(),
            country: code.to_owned(),
            ..Default::default()
        },
        None => pb::Address {
            lines: vec![text.to_owned()],
            ..Default::default()
        },
    }
}

/// Adds the identifiers of a row: `ids` and `call_sign`.
fn add_identifiers(row: &Row<'_>, entry: &mut pb::WatchlistEntry) {
    for item in split_list(&row.get("ids")) {
        let mut parts: Vec<&str> = item.split(',').map(str::trim).collect();
        if parts.len() < 2 {
            push_remark(&mut entry.remarks, "", &item);
            continue;
        }
        let kind = parts.remove(0);
        // A last part of two letters is the issuing country; a value may hold commas.
        let country = match parts.last() {
            Some(last) if parts.len() > 1 && last.len() == 2 => countries::code(last),
            _ => None,
        };
        if country.is_some() {
            parts.pop();
        }
        let value = parts.join(", ");
        if !is_identifier_kind(kind) {
            push_remark(
                &mut entry.remarks,
                kind.trim_end_matches([':', '-', ' ']),
                &value,
            );
            continue;
        }
        let scheme = source::scheme(kind);
        let value = match scheme.as_str() {
            "imo" => value.trim_start_matches("IMO ").to_owned(),
            _ => value,
        };
        entry.identifiers.push(pb::Identifier {
            scheme,
            value,
            country: country.unwrap_or("").to_owned(),
        });
    }
    let call_sign = row.get("call_sign");
    if !call_sign.is_empty() {
        entry.identifiers.push(pb::Identifier {
            scheme: "call-sign".into(),
            value: call_sign,
            country: String::new(),
        });
    }
}

/// Whether an `ids` kind names an identifier of the party ("Passport", "Tax ID No.",
/// "ISIN") rather than a fact about it ("Website", "Listing Date (CMIC)", "Secondary
/// sanctions risk:"), which the CSL puts in the same column.
fn is_identifier_kind(kind: &str) -> bool {
    const FACTS: &[&str] = &[
        "date",
        "determination",
        "email",
        "gender",
        "information",
        "name",
        "nationality",
        "prohibited",
        "sanction",
        "ticker",
        "type",
        "website",
    ];
    const IDENTIFIERS: &[&str] = &[
        "#",
        "bik",
        "c.u.i.t",
        "c.u.r.p",
        "code",
        "credencial",
        "d.n.i",
        "fein",
        "id",
        "isin",
        "license",
        "no.",
        "number",
        "passport",
        "r.f.c",
        "registration",
        "rfc",
        "ssn",
        "swift",
    ];
    let lower = kind.to_lowercase();
    !FACTS.iter().any(|word| lower.contains(word))
        && IDENTIFIERS.iter().any(|word| lower.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::{Format, import as import_list};

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/watchlists/csl.csv")
    }

    #[test]
    fn csl_fixture_skips_the_repeated_header_and_reports_the_short_row() {
        let got = import_list(Format::Csl, &fixture(), false).unwrap();
        let ids: Vec<&str> = got.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "SDN:7001",
                "PLC:7001",
                "EL:ab12cd34",
                "DPL:ef56",
                "SDN:7003"
            ]
        );
        let rejected: Vec<String> = got.rejected.iter().map(ToString::to_string).collect();
        let file = fixture().display().to_string();
        assert_eq!(
            rejected,
            [
                format!("{file}:8: name is empty"),
                format!(
                    "{file}:10: expected 29 fields, found 8 (the row is cut short or has extra \
                     fields)"
                ),
            ]
        );
    }

    #[test]
    fn csl_multi_values_are_split() {
        let got = import_list(Format::Csl, &fixture(), false).unwrap();
        let sdn = &got.entries[0];
        assert_eq!(sdn.r#type, pb::SubjectType::Person as i32);
        assert_eq!(sdn.aliases, ["EXAMPLE, Jon", "EXEMPLO, Joao"]);
        assert_eq!(sdn.programs, ["SDGT", "SDNTK"]);
        assert_eq!(sdn.countries, ["CO", "MX"]);
        assert_eq!(sdn.listed_on, "2001-05-04");
        assert_eq!(sdn.addresses.len(), 2);
        assert_eq!(sdn.addresses[0].lines, ["Calle 5 #10, Medellin"]);
        assert_eq!(sdn.addresses[0].country, "CO");
        let passport = &sdn.identifiers[1];
        assert_eq!(
            (
                passport.scheme.as_str(),
                passport.value.as_str(),
                passport.country.as_str()
            ),
            ("passport", "AB123456", "CO")
        );
        assert!(
            sdn.remarks.contains("Date of birth: 1970"),
            "{}",
            sdn.remarks
        );
    }

    #[test]
    fn csl_rows_without_a_type_are_inferred() {
        let got = import_list(Format::Csl, &fixture(), false).unwrap();
        let entity_list = &got.entries[2];
        assert_eq!(entity_list.r#type, pb::SubjectType::Organisation as i32);
        assert_eq!(entity_list.addresses[0].country, "CN");
        let dpl = &got.entries[3];
        assert_eq!(dpl.r#type, pb::SubjectType::Person as i32);
        let vessel = &got.entries[4];
        assert_eq!(vessel.r#type, pb::SubjectType::Vessel as i32);
        assert_eq!(vessel.countries, ["IR"]);
        assert_eq!(vessel.identifiers[0].scheme, "call-sign");
    }

    #[test]
    fn csl_without_its_header_is_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("csl.csv");
        std::fs::write(&path, "a,b,c\n1,2,3\n").unwrap();
        let err = import_list(Format::Csl, &path, false).unwrap_err();
        assert!(err.to_string().contains("no \"_id\" column"), "{err}");
    }

    #[test]
    fn identifier_kinds_are_told_from_facts() {
        for kind in [
            "Passport",
            "Tax ID No.",
            "ISIN",
            "R.F.C.",
            "NIT #",
            "SWIFT/BIC",
            "SSN",
        ] {
            assert!(is_identifier_kind(kind), "{kind}");
        }
        for kind in [
            "Website",
            "Listing Date (CMIC)",
            "Secondary sanctions risk:",
            "Gender",
        ] {
            assert!(!is_identifier_kind(kind), "{kind}");
        }
    }

    #[test]
    fn short_source_names() {
        let s = "Non-SDN Menu-Based Sanctions List (NS-MBS List) - Treasury Department";
        assert_eq!(short_name(s), "NS-MBS");
        assert_eq!(short_name("no brackets"), "");
    }
}
