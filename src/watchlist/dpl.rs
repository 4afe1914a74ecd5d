//! The BIS Denied Persons List as tab-separated text (dpl.txt).
//!
//! The file has a header row (`Name, Street_Address, City, State, Country, Postal_Code,
//! Effective_Date, Expiration_Date, Standard_Order, Last_Update, Action, FR_Citation`) and
//! one row per denied party and address, every field double-quoted (a quote inside a field
//! is doubled). Columns are found by name. The mapping onto an entry:
//!
//! - id: BIS gives none, so it is `dpl-` and the first 16 hex digits of SHA-256 over the
//!   name, the address fields and the effective date, which stay the same from one
//!   publication to the next while the party's listing does not change. The list repeats
//!   some rows exactly; a repeat is one entry.
//! - type: inferred from the name (a person unless the name holds an organisation word).
//! - address: `Street_Address` as the line, `City` and `State` as the city, `Postal_Code`,
//!   and `Country` as a code (BIS writes codes, and "PRC" for China; anything else that is
//!   not a code stays an address line).
//! - listed on: `Effective_Date`, from MM/DD/YYYY; a value in any other form makes the row
//!   malformed.
//! - remarks: the expiration date, standard order, `Last_Update`, action and Federal
//!   Register citation, labelled. `Last_Update` is kept exactly as published: one real row
//!   has the impossible "3033-09-30", and a copy of the list must not correct its
//!   publisher.

use std::{collections::HashMap, path::Path};

use ring::digest;

use super::{
    Imported, WatchlistError, countries,
    source::{self, Collector, infer_type, push_remark, squeeze, us_date},
};
use crate::pb;

/// The columns of dpl.txt, all required.
const COLUMNS: [&str; 12] = [
    "Name",
    "Street_Address",
    "City",
    "State",
    "Country",
    "Postal_Code",
    "Effective_Date",
    "Expiration_Date",
    "Standard_Order",
    "Last_Update",
    "Action",
    "FR_Citation",
];

/// Reads the DPL file at `path` (see [`super::import`]).
pub(super) fn import(path: &Path, strict: bool) -> Result<Imported, WatchlistError> {
    let text = source::read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
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
        Some(Err(err)) => return Err(bad_file(format!("not readable: {err}"))),
        None => {
            return Err(bad_file(
                "the file is empty; expected the DPL header".into(),
            ));
        }
    };
    let index: HashMap<&str, usize> = header.iter().enumerate().map(|(i, c)| (c, i)).collect();
    let mut columns = [0usize; COLUMNS.len()];
    for (slot, name) in columns.iter_mut().zip(COLUMNS) {
        *slot = *index.get(name).ok_or_else(|| {
            bad_file(format!(
                "the header has no {name:?} column; expected the tab-separated DPL header \
                 ({})",
                COLUMNS.join(", ")
            ))
        })?;
    }
    let mut out = Collector::new(strict);
    for record in records {
        let record = record.map_err(|err| bad_file(format!("not readable: {err}")))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != header.len() {
            let reason = format!("expected {} fields, found {}", header.len(), record.len());
            out.reject(path, line, reason)?;
            continue;
        }
        let fields = columns.map(|i| squeeze(record.get(i).unwrap_or("")));
        match entry(&fields) {
            Ok(entry) => out.add(path, line, entry)?,
            Err(reason) => out.reject(path, line, reason)?,
        }
    }
    Ok(out.finish())
}

/// The entry of one row, its fields in the order of [`COLUMNS`].
fn entry(f: &[String; 12]) -> Result<pb::WatchlistEntry, String> {
    let [
        name,
        street,
        city,
        state,
        country,
        postal,
        effective,
        expires,
        order,
        updated,
        action,
        fr,
    ] = f;
    if name.is_empty() {
        return Err("Name is empty".into());
    }
    let listed_on = match us_date(effective) {
        Some(date) => date,
        None if effective.is_empty() => String::new(),
        None => {
            return Err(format!(
                "Effective_Date {effective:?} is not a MM/DD/YYYY date"
            ));
        }
    };
    let mut address = pb::Address {
        city: [city.as_str(), state.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        postal_code: postal.clone(),
        ..Default::default()
    };
    address
        .lines
        .extend(Some(street.clone()).filter(|s| !s.is_empty()));
    match countries::code(country) {
        Some(code) => address.country = code.to_owned(),
        None if !country.is_empty() => address.lines.push(country.clone()),
        None => {}
    }
    let mut remarks = String::new();
    let expires = us_date(expires).unwrap_or_else(|| expires.clone());
    push_remark(&mut remarks, "Expires", &expires);
    push_remark(&mut remarks, "Standard order", order);
    push_remark(&mut remarks, "Last update", updated);
    push_remark(&mut remarks, "Action", action);
    push_remark(&mut remarks, "Federal Register", fr);
    Ok(pb::WatchlistEntry {
        id: id(&f[..7]),
        r#type: infer_type(name, pb::SubjectType::Person) as i32,
        name: name.clone(),
        countries: Some(address.country.clone())
            .filter(|c| !c.is_empty())
            .into_iter()
            .collect(),
        addresses: vec![address],
        listed_on,
        remarks,
        ..Default::default()
    })
}

/// `dpl-` and 16 hex digits of SHA-256 over the identifying fields, each ended by a 0x1F
/// (unit separator) so that moving text from one field to the next changes the id.
fn id(fields: &[String]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for field in fields {
        ctx.update(field.as_bytes());
        ctx.update(b"\x1f");
    }
    let hash = ctx.finish();
    format!("dpl-{}", hex::encode(&hash.as_ref()[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::{Format, import as import_list};

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/watchlists/dpl.txt")
    }

    #[test]
    fn dpl_fixture_maps_fields_and_keeps_the_impossible_date() {
        let got = import_list(Format::BisDpl, &fixture(), false).unwrap();
        // Six data rows: one repeats another exactly, one has a bad date.
        assert_eq!(got.entries.len(), 4);
        let first = &got.entries[0];
        assert_eq!(first.name, "JOHN \"JACK\" EXAMPLE");
        assert_eq!(first.r#type, pb::SubjectType::Person as i32);
        assert_eq!(first.listed_on, "2022-09-26");
        assert!(
            first.remarks.contains("Last update: 3033-09-30"),
            "{}",
            first.remarks
        );
        assert!(
            first.remarks.contains("Expires: 2030-02-03"),
            "{}",
            first.remarks
        );
        assert_eq!(first.addresses[0].city, "SAN ANTONIO, TX");
        assert!(
            first.id.starts_with("dpl-") && first.id.len() == 20,
            "{}",
            first.id
        );

        let company = &got.entries[1];
        assert_eq!(company.r#type, pb::SubjectType::Organisation as i32);
        assert_eq!(company.countries, ["CN"]);
        let unknown = &got.entries[2];
        assert_eq!(unknown.addresses[0].lines, ["1 MAIN STREET", "NM"]);
        assert!(unknown.countries.is_empty());
    }

    #[test]
    fn dpl_bad_date_is_reported_at_its_line() {
        let got = import_list(Format::BisDpl, &fixture(), false).unwrap();
        let file = fixture().display().to_string();
        let rejected: Vec<String> = got.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(
            rejected,
            [format!(
                "{file}:6: Effective_Date \"2022-13-01\" is not a MM/DD/YYYY date"
            )]
        );
    }

    #[test]
    fn dpl_ids_are_stable_across_imports_and_files() {
        let a = import_list(Format::BisDpl, &fixture(), false).unwrap();
        let b = import_list(Format::BisDpl, &fixture(), false).unwrap();
        let ids = |i: &Imported| i.entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let unique: std::collections::HashSet<String> = ids(&a).into_iter().collect();
        assert_eq!(unique.len(), a.entries.len());
    }
}
