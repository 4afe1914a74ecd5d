//! What the importers share: reading and decoding a file, collecting entries and malformed
//! rows (strict or not), and small text helpers.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
};

use super::{RowError, WatchlistError, canonical};
use crate::pb;

/// Reads `path` as text: UTF-8 when it is valid UTF-8 (a byte-order mark is dropped),
/// Windows-1252 otherwise. CRLF line ends become LF (the csv crate counts the lines of
/// CRLF files wrongly), and a trailing Ctrl-Z end-of-file marker is dropped; line numbers
/// are unchanged.
pub(super) fn read_text(path: &Path) -> Result<String, WatchlistError> {
    let bytes = fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => WatchlistError::MissingFile {
            path: path.to_owned(),
        },
        _ => WatchlistError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    let mut text = decode(bytes, path);
    if text.contains('\r') {
        text = text.replace("\r\n", "\n");
    }
    let kept = text.trim_end_matches(['\u{1a}', '\r', '\n']).len();
    if kept < text.len() && text[kept..].contains('\u{1a}') {
        text.truncate(kept);
        text.push('\n');
    }
    Ok(text)
}

/// Decodes file bytes: UTF-8 if valid, else Windows-1252.
fn decode(bytes: Vec<u8>, path: &Path) -> String {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            tracing::debug!(file = %path.display(), "not UTF-8; decoding as Windows-1252");
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(err.as_bytes());
            text.into_owned()
        }
    }
}

/// Collects the entries of one import and its malformed rows.
pub(super) struct Collector {
    strict: bool,
    entries: Vec<pb::WatchlistEntry>,
    /// Where each id was first seen: index in `entries`, file and line.
    seen: HashMap<String, (usize, PathBuf, usize)>,
    rejected: Vec<RowError>,
}

impl Collector {
    /// An empty collector; `strict` makes the first malformed row an error.
    pub(super) fn new(strict: bool) -> Self {
        Self {
            strict,
            entries: Vec::new(),
            seen: HashMap::new(),
            rejected: Vec::new(),
        }
    }

    /// Records a malformed row: an error when strict, a rejected row otherwise.
    pub(super) fn reject(
        &mut self,
        file: &Path,
        line: usize,
        reason: impl Into<String>,
    ) -> Result<(), WatchlistError> {
        let err = RowError {
            file: file.to_owned(),
            line,
            reason: reason.into(),
        };
        if self.strict {
            return Err(WatchlistError::Row(err));
        }
        self.rejected.push(err);
        Ok(())
    }

    /// Adds the entry read from `file` at `line`, in canonical form. A repeat of an entry
    /// already added (same id, same content) is dropped; a different entry with an id
    /// already used is a malformed row.
    pub(super) fn add(
        &mut self,
        file: &Path,
        line: usize,
        entry: pb::WatchlistEntry,
    ) -> Result<(), WatchlistError> {
        let entry = canonical(entry);
        if let Some((index, first_file, first_line)) = self.seen.get(&entry.id) {
            if self.entries.get(*index) == Some(&entry) {
                tracing::debug!(file = %file.display(), line, "repeated row dropped");
                return Ok(());
            }
            let reason = format!(
                "id {:?} is already used by the entry at {}:{}",
                entry.id,
                first_file.display(),
                first_line
            );
            return self.reject(file, line, reason);
        }
        let at = (self.entries.len(), file.to_owned(), line);
        self.seen.insert(entry.id.clone(), at);
        self.entries.push(entry);
        Ok(())
    }

    /// The result of the import.
    pub(super) fn finish(self) -> super::Imported {
        super::Imported {
            entries: self.entries,
            rejected: self.rejected,
        }
    }
}

/// `s` with surrounding white space removed and inner runs of white space made one space.
pub(super) fn squeeze(s: &str) -> String {
    let trimmed = s.trim();
    let mut after_space = false;
    let tidy = trimmed.chars().all(|c| {
        let ok = !c.is_whitespace() || (c == ' ' && !after_space);
        after_space = c.is_whitespace();
        ok
    });
    if tidy {
        // Most published fields need no change: copy them once.
        return trimmed.to_owned();
    }
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The non-empty, squeezed parts of a `;`-separated multi-value field.
pub(super) fn split_list(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(';').map(squeeze).filter(|part| !part.is_empty())
}

/// Appends `label: value` to a `; `-separated remarks text when `value` is not empty.
pub(super) fn push_remark(remarks: &mut String, label: &str, value: &str) {
    let value = squeeze(value);
    if value.is_empty() {
        return;
    }
    if !remarks.is_empty() {
        remarks.push_str("; ");
    }
    if !label.is_empty() {
        remarks.push_str(label);
        remarks.push_str(": ");
    }
    remarks.push_str(&value);
}

/// The identifier scheme for the kind of identifier a publisher names ("Passport",
/// "National ID No.", "SWIFT/BIC" ...): one of the agreed schemes when the kind is one of
/// them, otherwise the kind in lower case with every run of other characters made a `-`.
pub(super) fn scheme(kind: &str) -> String {
    let lower = squeeze(kind).to_lowercase();
    let known = match lower.trim_end_matches(':') {
        "passport"
        | "passport no."
        | "numéro de passeport"
        | "número de pasaporte"
        | "diplomatic passport"
        | "british national overseas passport" => "passport",
        "national id no."
        | "national id"
        | "national identification number"
        | "cedula no."
        | "d.n.i."
        | "c.u.r.p."
        | "personal id card" => "national-id",
        "tax id no."
        | "nit #"
        | "ruc #"
        | "r.f.c."
        | "rfc"
        | "c.u.i.t."
        | "us fein"
        | "italian fiscal code" => "tax-id",
        "registration id"
        | "registration number"
        | "company number"
        | "uk company number"
        | "business registration number"
        | "public registration number" => "registration",
        "vessel registration identification" | "imo" => "imo",
        "legal entity number" | "le number" => "lei",
        "swift/bic" => "swift-bic",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let slug = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if slug.is_empty() {
        "other".to_owned()
    } else {
        slug
    }
}

/// Words that mark a name as an organisation's, compared in upper case without dots.
const ORGANISATION_WORDS: &[&str] = &[
    "AB",
    "AG",
    "ACADEMY",
    "AGENCY",
    "AIRLINES",
    "ASSOCIATION",
    "BANK",
    "BV",
    "CENTER",
    "CENTRE",
    "CO",
    "COMPANY",
    "CORP",
    "CORPORATION",
    "ENTERPRISE",
    "ENTERPRISES",
    "EST",
    "ESTABLISHMENT",
    "FACTORY",
    "FOUNDATION",
    "FZC",
    "FZCO",
    "FZE",
    "GMBH",
    "GROUP",
    "INC",
    "INCORPORATED",
    "INDUSTRIES",
    "INDUSTRY",
    "INSTITUTE",
    "INTERNATIONAL",
    "JSC",
    "KG",
    "LABORATORY",
    "LIMITED",
    "LLC",
    "LLP",
    "LP",
    "LTD",
    "NV",
    "OAO",
    "OOO",
    "OJSC",
    "PAO",
    "PJSC",
    "PLC",
    "PTE",
    "PTY",
    "SA",
    "SARL",
    "SAS",
    "SL",
    "SPA",
    "SRL",
    "SERVICES",
    "SHIPPING",
    "SOLUTIONS",
    "SYSTEMS",
    "TECHNOLOGIES",
    "TECHNOLOGY",
    "TRADING",
    "UNIVERSITY",
    "ZAO",
];

/// The type of a party whose publisher does not give one: an organisation when the name
/// holds an organisation word, `otherwise` when it does not.
pub(super) fn infer_type(name: &str, otherwise: pb::SubjectType) -> pb::SubjectType {
    let upper = name.to_uppercase().replace('.', "");
    let is_org = upper
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| ORGANISATION_WORDS.contains(&word));
    if is_org {
        pb::SubjectType::Organisation
    } else {
        otherwise
    }
}

/// `YYYY-MM-DD` from a `MM/DD/YYYY` date, or `None` when `s` is not one.
pub(super) fn us_date(s: &str) -> Option<String> {
    let mut parts = s.split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    let month: u32 = number(m, 2)?;
    let day: u32 = number(d, 2)?;
    let year: u32 = number(y, 4)?;
    let valid = parts.next().is_none() && (1..=12).contains(&month) && (1..=31).contains(&day);
    valid.then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// `s` when it has the shape `YYYY-MM-DD`, else `None`.
pub(super) fn iso_date(s: &str) -> Option<String> {
    let s = s.trim();
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shape.then(|| s.to_owned())
}

/// `s` as a number of at most `max_digits` ASCII digits.
fn number(s: &str, max_digits: usize) -> Option<u32> {
    let ok = (1..=max_digits).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if ok { s.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_legal_form_are_organisations() {
        let person = pb::SubjectType::Person;
        assert_eq!(
            infer_type("ACME TRADING CO., LTD.", person),
            pb::SubjectType::Organisation
        );
        assert_eq!(
            infer_type("Nordlicht GmbH", person),
            pb::SubjectType::Organisation
        );
        assert_eq!(infer_type("JOHN Q. PUBLIC", person), person);
        // "Costa" holds "co" but is not the word "CO".
        assert_eq!(infer_type("MARIA COSTA", person), person);
    }

    #[test]
    fn identifier_kinds_become_schemes() {
        assert_eq!(scheme("Passport"), "passport");
        assert_eq!(scheme("National Identification\n   Number"), "national-id");
        assert_eq!(scheme("Número de pasaporte"), "passport");
        assert_eq!(
            scheme("Unified Social Credit Code (USCC)"),
            "unified-social-credit-code-uscc"
        );
        assert_eq!(scheme("¿?"), "other");
    }

    #[test]
    fn us_dates_become_iso_dates() {
        assert_eq!(us_date("09/26/2022").as_deref(), Some("2022-09-26"));
        assert_eq!(us_date("9/6/2022").as_deref(), Some("2022-09-06"));
        for bad in [
            "2022-09-26",
            "13/01/2020",
            "01/32/2020",
            "1/2",
            "a/b/c",
            "01/01/2020/1",
        ] {
            assert_eq!(us_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso_date_checks_the_shape_only() {
        assert_eq!(iso_date(" 3033-09-30 ").as_deref(), Some("3033-09-30"));
        assert_eq!(iso_date("30-09-3033"), None);
    }

    #[test]
    fn windows_1252_is_decoded_when_the_bytes_are_not_utf8() {
        let path = Path::new("x");
        assert_eq!(decode(b"Bogot\xe1 \x93x\x94".to_vec(), path), "Bogotá “x”");
        assert_eq!(decode("Bogotá".as_bytes().to_vec(), path), "Bogotá");
        assert_eq!(decode(b"\xEF\xBB\xBFa".to_vec(), path), "a");
    }

    #[test]
    fn squeeze_trims_and_joins_runs_of_white_space() {
        assert_eq!(squeeze("  a b  "), "a b");
        assert_eq!(squeeze("a  b\n\tc\u{a0}d"), "a b c d");
        assert_eq!(squeeze(" \r\n "), "");
    }

    #[test]
    fn remarks_join_labelled_parts() {
        let mut r = String::new();
        push_remark(&mut r, "", " DOB 1960. ");
        push_remark(&mut r, "Title", "");
        push_remark(&mut r, "Title", "Director\n  General");
        assert_eq!(r, "DOB 1960.; Title: Director General");
    }
}
