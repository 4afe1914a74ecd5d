//! The UN Security Council Consolidated List as XML (schema `sc-sanctions.xsd`).
//!
//! The document is `CONSOLIDATED_LIST` holding `INDIVIDUALS/INDIVIDUAL` and
//! `ENTITIES/ENTITY` records. The mapping onto an entry:
//!
//! - id: `DATAID`. Type: a person for an `INDIVIDUAL`, an organisation for an `ENTITY`.
//! - name: an individual's `FIRST_NAME` to `FOURTH_NAME`, in that order, joined by spaces;
//!   an entity's `FIRST_NAME`.
//! - aliases: every non-empty `ALIAS_NAME`, whatever its `QUALITY` (`Good`, `Low`,
//!   `a.k.a.`, `f.k.a.`), and `NAME_ORIGINAL_SCRIPT`. The UN calls a `Low` alias too weak
//!   to identify someone on its own, but it is still the name a party may use, so it is
//!   screened; the remarks list the low-quality aliases so that an analyst can tell.
//! - countries: `NATIONALITY` values and address countries, converted from the UN's
//!   country names. A name without a code ("former Soviet Union") goes to the remarks.
//! - addresses: `STREET` and `STATE_PROVINCE` as lines, `CITY`, `ZIP_CODE`, `COUNTRY`.
//! - identifiers: each `INDIVIDUAL_DOCUMENT` with a `NUMBER`, its `TYPE_OF_DOCUMENT` as the
//!   scheme and `ISSUING_COUNTRY` (or `COUNTRY_OF_ISSUE`) as the country.
//! - programs: `UN_LIST_TYPE` (the sanctions regime, such as "DPRK"); listed on:
//!   `LISTED_ON`.
//! - remarks: `COMMENTS1`, then the reference number, titles, designations, dates and
//!   places of birth, and the low-quality aliases, each labelled.
//!
//! A malformed record (no `DATAID`, no name) is reported at the line where it starts; a
//! document that is not well-formed XML is refused as a whole. roxmltree reads no DTD and
//! expands no external entity.

use std::path::Path;

use roxmltree::{Document, Node};

use super::{
    Imported, WatchlistError, countries,
    source::{self, Collector, iso_date, push_remark, squeeze},
};
use crate::pb;

/// Reads the UN XML file at `path` (see [`super::import`]).
pub(super) fn import(path: &Path, strict: bool) -> Result<Imported, WatchlistError> {
    let text = source::read_text(path)?;
    let bad_file = |reason: String| WatchlistError::BadFile {
        path: path.to_owned(),
        reason,
    };
    let doc = Document::parse(&text).map_err(|err| bad_file(format!("not XML: {err}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "CONSOLIDATED_LIST" {
        let reason = format!(
            "the root element is <{}>; expected <CONSOLIDATED_LIST>",
            root.tag_name().name()
        );
        return Err(bad_file(reason));
    }
    let mut out = Collector::new(strict);
    let records = elements(root, "INDIVIDUALS")
        .flat_map(|group| elements(group, "INDIVIDUAL"))
        .chain(elements(root, "ENTITIES").flat_map(|group| elements(group, "ENTITY")));
    for node in records {
        let line = doc.text_pos_at(node.range().start).row as usize;
        match entry(node) {
            Ok(entry) => out.add(path, line, entry)?,
            Err(reason) => out.reject(path, line, reason)?,
        }
    }
    Ok(out.finish())
}

/// The child elements of `node` named `name`.
fn elements<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |child| child.is_element() && child.tag_name().name() == name)
}

/// The squeezed text of the first child element of `node` named `name`, or empty.
fn text(node: Node<'_, '_>, name: &'static str) -> String {
    let child = elements(node, name).next();
    squeeze(child.and_then(|c| c.text()).unwrap_or(""))
}

/// The non-empty `VALUE` texts of the child elements of `node` named `name`.
fn values(node: Node<'_, '_>, name: &'static str) -> Vec<String> {
    elements(node, name)
        .flat_map(|child| elements(child, "VALUE"))
        .map(|value| squeeze(value.text().unwrap_or("")))
        .filter(|value| !value.is_empty())
        .collect()
}

/// The entry of one `INDIVIDUAL` or `ENTITY` element.
fn entry(node: Node<'_, '_>) -> Result<pb::WatchlistEntry, String> {
    let is_person = node.tag_name().name() == "INDIVIDUAL";
    let id = text(node, "DATAID");
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("DATAID {id:?} is not a number"));
    }
    let name_parts = ["FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME"];
    let parts = if is_person {
        &name_parts[..]
    } else {
        &name_parts[..1]
    };
    let name = parts
        .iter()
        .map(|part| text(node, part))
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        return Err("the name is empty (FIRST_NAME)".into());
    }
    let kind = if is_person {
        pb::SubjectType::Person
    } else {
        pb::SubjectType::Organisation
    };
    let mut entry = pb::WatchlistEntry {
        id,
        r#type: kind as i32,
        name,
        programs: Some(text(node, "UN_LIST_TYPE"))
            .filter(|p| !p.is_empty())
            .into_iter()
            .collect(),
        remarks: text(node, "COMMENTS1"),
        ..Default::default()
    };
    let low_quality = add_aliases(node, &mut entry);
    add_places(node, &mut entry);
    add_documents(node, &mut entry);
    add_remarks(node, &mut entry, &low_quality);
    Ok(entry)
}

/// Adds the aliases and the original-script name; returns the low-quality aliases.
fn add_aliases(node: Node<'_, '_>, entry: &mut pb::WatchlistEntry) -> Vec<String> {
    let mut low = Vec::new();
    for alias in elements(node, "INDIVIDUAL_ALIAS").chain(elements(node, "ENTITY_ALIAS")) {
        let name = text(alias, "ALIAS_NAME");
        if name.is_empty() {
            continue;
        }
        if text(alias, "QUALITY").eq_ignore_ascii_case("low") {
            low.push(name.clone());
        }
        entry.aliases.push(name);
    }
    let original = text(node, "NAME_ORIGINAL_SCRIPT");
    if !original.is_empty() {
        entry.aliases.push(original);
    }
    low
}

/// Adds the nationalities and the addresses, with their countries.
fn add_places(node: Node<'_, '_>, entry: &mut pb::WatchlistEntry) {
    for nationality in values(node, "NATIONALITY") {
        match countries::code(&nationality) {
            Some(code) => entry.countries.push(code.to_owned()),
            None => push_remark(&mut entry.remarks, "Nationality", &nationality),
        }
    }
    for place in elements(node, "INDIVIDUAL_ADDRESS").chain(elements(node, "ENTITY_ADDRESS")) {
        let mut address = pb::Address {
            city: text(place, "CITY"),
            postal_code: text(place, "ZIP_CODE"),
            ..Default::default()
        };
        for line in [text(place, "STREET"), text(place, "STATE_PROVINCE")] {
            if !line.is_empty() {
                address.lines.push(line);
            }
        }
        let country = text(place, "COUNTRY");
        match countries::code(&country) {
            Some(code) => {
                address.country = code.to_owned();
                entry.countries.push(code.to_owned());
            }
            None if !country.is_empty() => address.lines.push(country),
            None => {}
        }
        if address != pb::Address::default() {
            entry.addresses.push(address);
        }
    }
}

/// Adds an identifier for each identity document that has a number.
fn add_documents(node: Node<'_, '_>, entry: &mut pb::WatchlistEntry) {
    for document in elements(node, "INDIVIDUAL_DOCUMENT") {
        let number = text(document, "NUMBER");
        if number.is_empty() {
            continue;
        }
        let kind = text(document, "TYPE_OF_DOCUMENT");
        let mut country = text(document, "ISSUING_COUNTRY");
        if country.is_empty() {
            country = text(document, "COUNTRY_OF_ISSUE");
        }
        entry.identifiers.push(pb::Identifier {
            scheme: source::scheme(if kind.is_empty() { "document" } else { &kind }),
            value: number,
            country: countries::code(&country).unwrap_or("").to_owned(),
        });
    }
}

/// Appends the labelled details that have no field of their own to the remarks.
fn add_remarks(node: Node<'_, '_>, entry: &mut pb::WatchlistEntry, low_quality: &[String]) {
    let remarks = &mut entry.remarks;
    match iso_date(&text(node, "LISTED_ON")) {
        Some(date) => entry.listed_on = date,
        None => push_remark(remarks, "Listed on", &text(node, "LISTED_ON")),
    }
    push_remark(remarks, "Reference", &text(node, "REFERENCE_NUMBER"));
    push_remark(remarks, "Title", &values(node, "TITLE").join(", "));
    push_remark(
        remarks,
        "Designation",
        &values(node, "DESIGNATION").join(", "),
    );
    let births: Vec<String> = elements(node, "INDIVIDUAL_DATE_OF_BIRTH")
        .map(birth_date)
        .collect();
    push_remark(remarks, "Date of birth", &births.join(", "));
    let places: Vec<String> = elements(node, "INDIVIDUAL_PLACE_OF_BIRTH")
        .map(|place| joined(place, &["CITY", "STATE_PROVINCE", "COUNTRY"]))
        .collect();
    push_remark(remarks, "Place of birth", &places.join("; "));
    push_remark(remarks, "Low-quality aliases", &low_quality.join(", "));
}

/// A date of birth as written: an exact date, a year, or a range of years.
fn birth_date(node: Node<'_, '_>) -> String {
    let date = text(node, "DATE");
    if !date.is_empty() {
        return date;
    }
    let year = text(node, "YEAR");
    if !year.is_empty() {
        return year;
    }
    joined(node, &["FROM_YEAR", "TO_YEAR"]).replace(", ", "-")
}

/// The non-empty texts of the named children of `node`, joined by commas.
fn joined(node: Node<'_, '_>, names: &[&'static str]) -> String {
    names
        .iter()
        .map(|name| text(node, name))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::{Format, import as import_list};

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/watchlists/un.xml")
    }

    #[test]
    fn un_individual_joins_its_names_and_keeps_every_alias() {
        let got = import_list(Format::UnXml, &fixture(), false).unwrap();
        let person = &got.entries[0];
        assert_eq!(person.id, "9000001");
        assert_eq!(person.name, "AHMAD SAMPLE MUHAMMAD EXAMPLE");
        assert_eq!(person.r#type, pb::SubjectType::Person as i32);
        assert_eq!(person.aliases, ["Abu Sample", "Ahmad Samplé", "أحمد مثال"]);
        assert_eq!(person.countries, ["AF", "PK"]);
        assert_eq!(person.programs, ["Al-Qaida"]);
        assert_eq!(person.listed_on, "2001-01-25");
        assert_eq!(person.identifiers[0].scheme, "national-id");
        assert_eq!(person.identifiers[1].country, "AF");
        assert!(
            person.remarks.contains("Low-quality aliases: Abu Sample"),
            "{}",
            person.remarks
        );
        assert!(person.remarks.contains("Nationality: former Soviet Union"));
        assert!(
            person.remarks.contains("Date of birth: 1960-1962"),
            "{}",
            person.remarks
        );
    }

    #[test]
    fn un_entity_uses_its_first_name_and_aliases() {
        let got = import_list(Format::UnXml, &fixture(), false).unwrap();
        let entity = got.entries.iter().find(|e| e.id == "9000100").unwrap();
        assert_eq!(entity.r#type, pb::SubjectType::Organisation as i32);
        assert_eq!(entity.name, "EXAMPLE FRONT COMPANY");
        assert_eq!(
            entity.aliases,
            ["Example Forces Démocratiques", "Old Example’s Name"]
        );
        assert_eq!(entity.addresses[0].lines, ["North Example Province"]);
        assert_eq!(entity.addresses[0].country, "CD");
    }

    #[test]
    fn un_record_without_dataid_is_reported_at_its_line() {
        let got = import_list(Format::UnXml, &fixture(), false).unwrap();
        assert_eq!(got.entries.len(), 3);
        let rejected: Vec<String> = got.rejected.iter().map(ToString::to_string).collect();
        let file = fixture().display().to_string();
        assert_eq!(
            rejected,
            [format!("{file}:65: DATAID \"\" is not a number")]
        );
    }

    #[test]
    fn not_xml_is_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("un.xml");
        std::fs::write(&path, "<CONSOLIDATED_LIST><INDIVIDUALS>").unwrap();
        let err = import_list(Format::UnXml, &path, false).unwrap_err();
        assert!(err.to_string().contains("not XML"), "{err}");
    }
}
