//! OFAC's SDN and consolidated (non-SDN) lists in their CSV files (OFAC's "dat_spec"
//! layout).
//!
//! A list is four headerless CSV files joined on `ent_num`:
//!
//! - sdn.csv (cons_prim.csv): `ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign,
//!   Vess_type, Tonnage, GRT, Vess_flag, Vess_owner, Remarks`;
//! - add.csv (cons_add.csv): `ent_num, Add_num, Address, City/State/Province/Postal Code,
//!   Country, Add_remarks`;
//! - alt.csv (cons_alt.csv): `ent_num, alt_num, alt_type, alt_name, alt_remarks`;
//! - sdn_comments.csv (cons_comments.csv): `ent_num, remarks_extended`.
//!
//! A null is written `-0-` (with a trailing space); lines end in CRLF and the files end
//! with a Ctrl-Z line. The mapping onto an entry:
//!
//! - id: `ent_num`. Type: `individual` is a person, `vessel` and `aircraft` as named, and
//!   a null type an organisation.
//! - programs: `Program`, split where OFAC joins several as `IRGC] [IFSR`.
//! - aliases: every `alt_name` of the entity (a.k.a., f.k.a. and n.k.a. alike). The weak
//!   a.k.a.s that OFAC writes only in the remarks (`a.k.a. 'ABU SAMPLE'`) stay there, as
//!   OFAC keeps them out of alt.csv on purpose.
//! - addresses: one per add.csv row that is not entirely null: `Address` and
//!   `Add_remarks` as lines, the `City/State/Province/Postal Code` text as the city (OFAC
//!   does not split it), and `Country` as a code. A country name with no code (such as
//!   "Region: Crimea") becomes the last address line instead.
//! - remarks: `Remarks` followed directly by `remarks_extended`, which OFAC uses for the
//!   text that did not fit (it continues mid-word), then `Title`, and for vessels the type,
//!   tonnage, GRT and owner, each labelled.
//! - countries: the address countries, the vessel flag, and the `nationality X` and
//!   `citizen X` parts of the remarks.
//! - identifiers: the call sign, and the remarks parts that name a passport, national id,
//!   cedula, tax id (also NIT and RUC), registration or company number, IMO number, LEI or
//!   SWIFT/BIC, with the country in brackets after the number when it has a code.
//!
//! A row of add.csv, alt.csv or the comments file for an `ent_num` that the main file does
//! not hold is a malformed row of that file.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{
    Imported, WatchlistError, countries,
    source::{self, Collector, push_remark, squeeze},
};
use crate::pb;

/// Which of OFAC's two CSV lists.
#[derive(Debug, Clone, Copy)]
pub(super) enum Set {
    /// The SDN list.
    Sdn,
    /// The consolidated (non-SDN) list.
    Cons,
}

impl Set {
    /// The names of the main, address, alias and comments files.
    fn file_names(self) -> [&'static str; 4] {
        match self {
            Set::Sdn => ["sdn.csv", "add.csv", "alt.csv", "sdn_comments.csv"],
            Set::Cons => [
                "cons_prim.csv",
                "cons_add.csv",
                "cons_alt.csv",
                "cons_comments.csv",
            ],
        }
    }
}

/// An entity of the main file while the other files are joined to it.
struct Pending {
    line: usize,
    entry: pb::WatchlistEntry,
    /// Labelled fields that go after the remarks once the overflow is joined.
    extras: String,
}

/// The entities read so far, by `ent_num`.
struct Entities {
    list: Vec<Pending>,
    by_id: HashMap<String, usize>,
}

impl Entities {
    /// The entity of `ent_num`, if the main file has it.
    fn get_mut(&mut self, ent_num: &str) -> Option<&mut Pending> {
        let index = *self.by_id.get(ent_num)?;
        self.list.get_mut(index)
    }
}

/// Reads the list in the files at `path` (see [`super::import`]).
pub(super) fn import(set: Set, path: &Path, strict: bool) -> Result<Imported, WatchlistError> {
    let [main, add, alt, comments] = locate(set, path)?;
    let mut out = Collector::new(strict);
    let mut entities = read_main(&main, &mut out)?;
    let file = |path, width, raw| Secondary { path, width, raw };
    join(file(&add, 6, None), &mut entities, &mut out, join_address)?;
    join(file(&alt, 5, None), &mut entities, &mut out, join_alias)?;
    join(
        file(&comments, 2, Some(1)),
        &mut entities,
        &mut out,
        join_comment,
    )?;
    for pending in entities.list {
        out.add(&main, pending.line, complete(pending))?;
    }
    Ok(out.finish())
}

/// The four files of the list: `path` is the directory or the main file.
fn locate(set: Set, path: &Path) -> Result<[PathBuf; 4], WatchlistError> {
    let names = set.file_names();
    let (dir, main) = if path.is_dir() {
        (path.to_owned(), path.join(names[0]))
    } else if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        (dir, path.to_owned())
    } else {
        return Err(WatchlistError::MissingFile {
            path: path.to_owned(),
        });
    };
    Ok([
        main,
        dir.join(names[1]),
        dir.join(names[2]),
        dir.join(names[3]),
    ])
}

/// Reads a headerless OFAC CSV file into records of fields with their lines. Each field
/// is [`field`]-cleaned, except that column `raw` keeps its white space: remarks and their
/// overflow are joined mid-word before they are squeezed.
fn records(path: &Path, raw: Option<usize>) -> Result<Vec<(usize, Vec<String>)>, WatchlistError> {
    let text = source::read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| WatchlistError::BadFile {
            path: path.to_owned(),
            reason: format!("not readable as CSV: {err}"),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let fields: Vec<String> = (record.iter().enumerate())
            .map(|(i, value)| match raw {
                Some(column) if column == i && field(value).is_empty() => String::new(),
                Some(column) if column == i => value.to_owned(),
                _ => field(value),
            })
            .collect();
        if fields.iter().all(String::is_empty) {
            continue;
        }
        rows.push((line, fields));
    }
    Ok(rows)
}

/// A field with white space squeezed and OFAC's null (`-0-`) made empty.
fn field(raw: &str) -> String {
    let value = squeeze(raw);
    if value == "-0-" { String::new() } else { value }
}

/// Reads the main file: one entity per row.
fn read_main(path: &Path, out: &mut Collector) -> Result<Entities, WatchlistError> {
    let mut entities = Entities {
        list: Vec::new(),
        by_id: HashMap::new(),
    };
    for (line, f) in records(path, Some(11))? {
        match entity(&f) {
            Err(reason) => out.reject(path, line, reason)?,
            Ok(_) if entities.by_id.contains_key(&f[0]) => {
                let reason = format!("ent_num {} is used by an earlier row", f[0]);
                out.reject(path, line, reason)?;
            }
            Ok((entry, extras)) => {
                entities.by_id.insert(f[0].clone(), entities.list.len());
                entities.list.push(Pending {
                    line,
                    entry,
                    extras,
                });
            }
        }
    }
    Ok(entities)
}

/// The entry of one main-file row, and its labelled extra fields.
fn entity(f: &[String]) -> Result<(pb::WatchlistEntry, String), String> {
    if f.len() != 12 {
        return Err(format!("expected 12 fields, found {}", f.len()));
    }
    check_ent_num(&f[0])?;
    if f[1].is_empty() {
        return Err("SDN_Name is empty".into());
    }
    let kind = match f[2].to_ascii_lowercase().as_str() {
        "individual" => pb::SubjectType::Person,
        "" => pb::SubjectType::Organisation,
        "vessel" => pb::SubjectType::Vessel,
        "aircraft" => pb::SubjectType::Aircraft,
        other => {
            return Err(format!(
                "SDN_Type {other:?} is not individual, vessel, aircraft or -0-"
            ));
        }
    };
    let mut entry = pb::WatchlistEntry {
        id: f[0].clone(),
        r#type: kind as i32,
        name: f[1].clone(),
        programs: programs(&f[3]),
        remarks: f[11].clone(),
        ..Default::default()
    };
    if !f[5].is_empty() {
        entry.identifiers.push(identifier("call-sign", &f[5], ""));
    }
    entry
        .countries
        .extend(countries::code(&f[9]).map(str::to_owned));
    let mut extras = String::new();
    // A flag with a code is in the countries; one without stays in the remarks.
    let flag = if countries::code(&f[9]).is_some() {
        ""
    } else {
        f[9].as_str()
    };
    let labelled = [
        ("Title", f[4].as_str()),
        ("Vessel type", &f[6]),
        ("Tonnage", &f[7]),
        ("GRT", &f[8]),
        ("Flag", flag),
        ("Owner", &f[10]),
    ];
    for (label, value) in labelled {
        push_remark(&mut extras, label, value);
    }
    Ok((entry, extras))
}

/// The programs of a `Program` field such as `IRGC] [IFSR`.
fn programs(field: &str) -> Vec<String> {
    field
        .split("] [")
        .map(|p| p.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace()))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks that an `ent_num` is a number.
fn check_ent_num(value: &str) -> Result<(), String> {
    let ok = !value.is_empty() && value.len() <= 12 && value.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("ent_num {value:?} is not a number"))
    }
}

/// What joining one row of a secondary file does to its entity.
type Joiner = fn(&mut Pending, &[String]) -> Result<(), String>;

/// A secondary file: its path, its number of fields, and the column kept raw (see
/// [`records`]).
struct Secondary<'a> {
    path: &'a Path,
    width: usize,
    raw: Option<usize>,
}

/// Joins each row of a secondary file to its entity.
fn join(
    file: Secondary<'_>,
    entities: &mut Entities,
    out: &mut Collector,
    apply: Joiner,
) -> Result<(), WatchlistError> {
    let (path, width) = (file.path, file.width);
    for (line, f) in records(path, file.raw)? {
        let outcome = if f.len() != width {
            Err(format!("expected {width} fields, found {}", f.len()))
        } else if let Err(reason) = check_ent_num(&f[0]) {
            Err(reason)
        } else {
            match entities.get_mut(&f[0]) {
                Some(entity) => apply(entity, &f),
                None => Err(format!("ent_num {} is not in the main file", f[0])),
            }
        };
        if let Err(reason) = outcome {
            out.reject(path, line, reason)?;
        }
    }
    Ok(())
}

/// Joins one add.csv row: `ent_num, Add_num, Address, City..., Country, Add_remarks`.
fn join_address(entity: &mut Pending, f: &[String]) -> Result<(), String> {
    let mut address = pb::Address {
        city: f[3].clone(),
        ..Default::default()
    };
    address.lines.extend(
        [&f[2], &f[5]]
            .into_iter()
            .filter(|s| !s.is_empty())
            .cloned(),
    );
    match countries::code(&f[4]) {
        Some(code) => {
            address.country = code.to_owned();
            entity.entry.countries.push(code.to_owned());
        }
        None if !f[4].is_empty() => address.lines.push(f[4].clone()),
        None => {}
    }
    if address != pb::Address::default() {
        entity.entry.addresses.push(address);
    }
    Ok(())
}

/// Joins one alt.csv row: `ent_num, alt_num, alt_type, alt_name, alt_remarks`.
fn join_alias(entity: &mut Pending, f: &[String]) -> Result<(), String> {
    if f[3].is_empty() {
        return Err("alt_name is empty".into());
    }
    entity.entry.aliases.push(f[3].clone());
    Ok(())
}

/// Joins one comments row: `ent_num, remarks_extended`, the rest of the remarks.
fn join_comment(entity: &mut Pending, f: &[String]) -> Result<(), String> {
    entity.entry.remarks.push_str(&f[1]);
    Ok(())
}

/// The entry of an entity once every file is joined: remarks squeezed and read for
/// countries and identifiers, then the labelled extra fields.
fn complete(pending: Pending) -> pb::WatchlistEntry {
    let mut entry = pending.entry;
    entry.remarks = squeeze(&entry.remarks);
    facts_from_remarks(&mut entry);
    push_remark(&mut entry.remarks, "", &pending.extras);
    entry
}

/// Remarks prefixes that introduce an identifier, and the identifier's scheme.
const ID_PREFIXES: &[(&str, &str)] = &[
    ("Passport ", "passport"),
    ("National ID No. ", "national-id"),
    ("Cedula No. ", "national-id"),
    ("Tax ID No. ", "tax-id"),
    ("NIT # ", "tax-id"),
    ("RUC # ", "tax-id"),
    ("Registration ID ", "registration"),
    ("Registration Number ", "registration"),
    ("Company Number ", "registration"),
    ("Vessel Registration Identification IMO ", "imo"),
    ("Legal Entity Number ", "lei"),
    ("SWIFT/BIC ", "swift-bic"),
];

/// Adds the countries and identifiers that the remarks state in OFAC's fixed phrases.
fn facts_from_remarks(entry: &mut pb::WatchlistEntry) {
    let remarks = std::mem::take(&mut entry.remarks);
    for part in remarks.split(';') {
        let part = part.trim().trim_end_matches('.');
        let part = part.strip_prefix("alt. ").unwrap_or(part);
        for prefix in ["nationality ", "citizen "] {
            if let Some(code) = part.strip_prefix(prefix).and_then(countries::code) {
                entry.countries.push(code.to_owned());
            }
        }
        for (prefix, scheme) in ID_PREFIXES {
            if let Some(rest) = part.strip_prefix(prefix) {
                let (value, country) = match rest.split_once(" (") {
                    Some((value, tail)) => (value, tail.split(')').next().unwrap_or("")),
                    None => (rest, ""),
                };
                let country = countries::code(country).unwrap_or("");
                entry.identifiers.push(identifier(scheme, value, country));
            }
        }
    }
    entry.remarks = remarks;
}

/// An identifier.
fn identifier(scheme: &str, value: &str, country: &str) -> pb::Identifier {
    pb::Identifier {
        scheme: scheme.to_owned(),
        value: value.trim().to_owned(),
        country: country.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::{Format, import as import_list};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/watchlists")
    }

    fn by_id<'a>(imported: &'a Imported, id: &str) -> &'a pb::WatchlistEntry {
        imported.entries.iter().find(|e| e.id == id).expect(id)
    }

    #[test]
    fn sdn_fixture_joins_all_four_files() {
        let got = import_list(Format::OfacSdn, &fixtures().join("ofac_sdn"), false).unwrap();
        let ids: Vec<&str> = got.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["101", "102", "103", "104", "105"]);

        let person = by_id(&got, "101");
        assert_eq!(person.r#type, pb::SubjectType::Person as i32);
        assert_eq!(person.programs, ["IFSR", "IRGC"]);
        assert_eq!(person.aliases, ["DOE, Jonathan", "DOUGH, John"]);
        assert_eq!(person.countries, ["AT", "IR"]);
        let passport = &person.identifiers[0];
        assert_eq!(
            (passport.scheme.as_str(), passport.value.as_str()),
            ("passport", "X1234567")
        );
        assert_eq!(passport.country, "IR");
        // The comments file continues the remarks mid-word.
        assert!(
            person
                .remarks
                .contains("Linked To: EXAMPLE HOLDING LIMITED."),
            "{}",
            person.remarks
        );
        assert!(
            person.remarks.ends_with("Title: Director"),
            "{}",
            person.remarks
        );

        let org = by_id(&got, "102");
        assert_eq!(org.r#type, pb::SubjectType::Organisation as i32);
        // Windows-1252 in add.csv ("Bogotá"), and a region without a code as an address line.
        let cities: Vec<&str> = org.addresses.iter().map(|a| a.city.as_str()).collect();
        assert_eq!(cities, ["Simferopol", "Bogotá"]);
        assert_eq!(org.addresses[0].lines, ["Region: Crimea"]);
        assert_eq!(org.countries, ["CO"]);

        let vessel = by_id(&got, "103");
        assert_eq!(vessel.r#type, pb::SubjectType::Vessel as i32);
        assert_eq!(vessel.countries, ["KP"]);
        let schemes: Vec<&str> = vessel
            .identifiers
            .iter()
            .map(|i| i.scheme.as_str())
            .collect();
        assert_eq!(schemes, ["call-sign", "imo"]);
        assert_eq!(by_id(&got, "104").r#type, pb::SubjectType::Aircraft as i32);
    }

    #[test]
    fn sdn_fixture_reports_each_malformed_row_where_it_is() {
        let dir = fixtures().join("ofac_sdn");
        let got = import_list(Format::OfacSdn, &dir, false).unwrap();
        let rejected: Vec<String> = got.rejected.iter().map(ToString::to_string).collect();
        let sdn = dir.join("sdn.csv").display().to_string();
        let alt = dir.join("alt.csv").display().to_string();
        let add = dir.join("add.csv").display().to_string();
        assert_eq!(
            rejected,
            [
                format!("{sdn}:6: ent_num \"10X\" is not a number"),
                format!("{sdn}:7: expected 12 fields, found 3"),
                format!("{add}:5: ent_num 999 is not in the main file"),
                format!("{alt}:4: ent_num 999 is not in the main file"),
            ]
        );
    }

    #[test]
    fn strict_import_stops_at_the_first_malformed_row() {
        let err = import_list(Format::OfacSdn, &fixtures().join("ofac_sdn"), true).unwrap_err();
        match err {
            WatchlistError::Row(row) => assert_eq!(row.line, 6),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn main_file_path_finds_its_siblings() {
        let main = fixtures().join("ofac_sdn/sdn.csv");
        let got = import_list(Format::OfacSdn, &main, false).unwrap();
        assert_eq!(got.entries.len(), 5);
    }

    #[test]
    fn consolidated_fixture_uses_the_cons_file_names() {
        let got = import_list(Format::OfacCons, &fixtures().join("ofac_cons"), true).unwrap();
        assert_eq!(got.entries.len(), 2);
        let entry = by_id(&got, "9001");
        assert_eq!(entry.programs, ["NS-PLC"]);
        assert_eq!(entry.aliases, ["SAMPLE, Ahmad"]);
        assert_eq!(entry.addresses[0].country, "PS");
        assert!(
            entry.remarks.ends_with("overflow text."),
            "{}",
            entry.remarks
        );
    }

    #[test]
    fn missing_sibling_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let src = fixtures().join("ofac_sdn/sdn.csv");
        std::fs::copy(&src, dir.path().join("sdn.csv")).unwrap();
        let err = import_list(Format::OfacSdn, dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("add.csv: file not found"), "{err}");
    }

    #[test]
    fn programs_split_on_bracket_pairs() {
        assert_eq!(programs("IRGC] [IFSR] [SDGT"), ["IRGC", "IFSR", "SDGT"]);
        assert_eq!(programs("CUBA"), ["CUBA"]);
        assert!(programs("").is_empty());
    }
}
