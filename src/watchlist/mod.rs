//! Watchlists: names, importers for the published list formats, the canonical form of an
//! entry, the list digest and the delta between two versions of a list.
//!
//! The module is pure: it reads the files given to [`import`] and does no other I/O, keeps
//! no state, and never panics on file content. Storing lists, versioning and syncing them
//! with partners, and screening names are built on top of it.
//!
//! - A watchlist is owned by one agency and named `AGENCY/list` ([`validate_list_name`]).
//! - [`import`] reads one published list in a [`Format`] into [`pb::WatchlistEntry`] values.
//!   Each importer's module documents how the publisher's fields map onto an entry.
//! - [`canonical`] puts an entry in the one form that is hashed and compared, [`Digest`]
//!   summarises a list's entries, and [`diff`] computes the [`Delta`] between two versions.
//! - [`split`] cuts a delta into parts that fit a message, and [`assemble`] joins them.
//!
//! What holds for every importer:
//!
//! - Text may be UTF-8 (with or without a byte-order mark) or Windows-1252: a file that is
//!   not valid UTF-8 is decoded as Windows-1252, which maps every byte to a character.
//! - A trailing Ctrl-Z (0x1A) end-of-file marker is dropped, as are blank lines.
//! - A malformed row becomes a [`RowError`] naming the file, the 1-based line at which the
//!   row starts and the reason, and the rest of the file is imported; with `strict`, the
//!   first one ends the import with [`WatchlistError::Row`].
//! - Every entry has a stable, non-empty id taken from the publisher where it gives one. Two
//!   rows with the same id and the same content are one entry (published lists do repeat
//!   rows); two rows with the same id and different content make the second a [`RowError`].
//! - Country codes are ISO 3166-1 alpha-2 (and `XK` for Kosovo, as the publishers write it).
//!   A country the publisher names in words is converted by a table of the names the lists
//!   use; a name the table does not know is never put in a country field: it stays in the
//!   address lines or the remarks.
//! - When the publisher does not say whether a party is a person or an organisation (the
//!   Denied Persons List, and some rows of the Consolidated Screening List), the type is
//!   inferred from the name: one that holds a legal-form or organisation word (`LTD`,
//!   `GMBH`, `COMPANY`, `UNIVERSITY` ...) is an organisation, any other takes the list's
//!   usual type.

mod countries;
mod csl;
mod digest;
mod dpl;
mod ofac;
mod parts;
mod source;
mod un;

use std::{
    fmt,
    path::{Path, PathBuf},
};

pub use digest::{Delta, Digest, canonical, diff};
pub use parts::{assemble, split};

use crate::{identity::validate_agency_id, pb};

/// The ISO 3166-1 alpha-2 code of a code or country name, as the importers read them.
pub(crate) use countries::code as country_code;

/// The rule for a watchlist name, as error messages state it.
pub const LIST_NAME_RULE: &str = "AGENCY/list: an agency id (2 to 32 upper-case letters, digits \
     and '-', starting with a letter), '/', then 1 to 64 characters of a-z, 0-9 and '-' \
     (for example \"US-TREAS/sdn\")";

/// Longest list part of a watchlist name (after the `/`), in characters.
const MAX_LIST_PART: usize = 64;

/// Errors of the watchlist module.
#[derive(Debug, thiserror::Error)]
pub enum WatchlistError {
    /// A file as a whole cannot be read as the format says (no header, not XML ...).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A watchlist name does not follow [`LIST_NAME_RULE`].
    #[error("watchlist name {name:?} is invalid: expected {LIST_NAME_RULE}")]
    BadListName {
        /// The name as given.
        name: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file that the import needs does not exist.
    #[error("{}: file not found", path.display())]
    MissingFile {
        /// The file.
        path: PathBuf,
    },
    /// A strict import met a malformed row.
    #[error("{0} (strict import stops at the first malformed row)")]
    Row(RowError),
}

/// Checks that `name` is a watchlist name: `AGENCY/list` as [`LIST_NAME_RULE`] states.
pub fn validate_list_name(name: &str) -> Result<(), WatchlistError> {
    let bad = || WatchlistError::BadListName {
        name: name.to_owned(),
    };
    let (agency, list) = name.split_once('/').ok_or_else(bad)?;
    validate_agency_id(agency).map_err(|_| bad())?;
    let list_ok = (1..=MAX_LIST_PART).contains(&list.len())
        && list
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if list_ok { Ok(()) } else { Err(bad()) }
}

/// The agency that owns the watchlist `name` (`US-TREAS` for `US-TREAS/sdn`), or `None`
/// when `name` is not a valid watchlist name.
pub fn list_owner(name: &str) -> Option<&str> {
    validate_list_name(name).ok()?;
    name.split_once('/').map(|(agency, _)| agency)
}

/// A published list format that [`import`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OFAC's SDN list in its CSV files: sdn.csv, add.csv, alt.csv, sdn_comments.csv.
    OfacSdn,
    /// OFAC's consolidated (non-SDN) list in its CSV files: cons_prim.csv, cons_add.csv,
    /// cons_alt.csv, cons_comments.csv.
    OfacCons,
    /// The Consolidated Screening List of trade.gov, as CSV.
    Csl,
    /// The BIS Denied Persons List, as tab-separated text (dpl.txt).
    BisDpl,
    /// The UN Security Council Consolidated List, as XML.
    UnXml,
}

/// A malformed row: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The file that holds the row.
    pub file: PathBuf,
    /// The 1-based line at which the row starts.
    pub line: usize,
    /// What is wrong, and what was expected.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

impl std::error::Error for RowError {}

/// The result of an import: the entries read, in file order, and the rows left out.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// The entries, each in [`canonical`] form, with unique ids.
    pub entries: Vec<pb::WatchlistEntry>,
    /// The malformed rows, in the order met (always empty after a strict import).
    pub rejected: Vec<RowError>,
}

/// Reads the list at `path` in `format`.
///
/// `path`: for [`Format::OfacSdn`] and [`Format::OfacCons`], a directory holding the four
/// files of the list (sdn.csv, add.csv, alt.csv, sdn_comments.csv, or cons_prim.csv,
/// cons_add.csv, cons_alt.csv, cons_comments.csv), or the main CSV file with the other
/// three beside it under those names; for the other formats, the file. `strict`: the first
/// malformed row ends the import with [`WatchlistError::Row`]; otherwise malformed rows are
/// returned in [`Imported::rejected`] and the rest is imported.
pub fn import(format: Format, path: &Path, strict: bool) -> Result<Imported, WatchlistError> {
    match format {
        Format::OfacSdn => ofac::import(ofac::Set::Sdn, path, strict),
        Format::OfacCons => ofac::import(ofac::Set::Cons, path, strict),
        Format::Csl => csl::import(path, strict),
        Format::BisDpl => dpl::import(path, strict),
        Format::UnXml => un::import(path, strict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_follow_the_rule() {
        for good in [
            "US-TREAS/sdn",
            "UN/sc-consolidated",
            "DE-BAFA/a",
            "US-BIS/dpl-2023",
        ] {
            assert!(validate_list_name(good).is_ok(), "{good}");
        }
        let long = format!("US-BIS/{}", "a".repeat(65));
        for bad in [
            "sdn",
            "US-TREAS/",
            "/sdn",
            "us-treas/sdn",
            "US-TREAS/SDN",
            "US/a/b",
            &long,
        ] {
            assert!(validate_list_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_owner_is_the_agency_part_of_a_valid_name() {
        assert_eq!(list_owner("US-TREAS/sdn"), Some("US-TREAS"));
        assert_eq!(list_owner("US-TREAS/SDN"), None);
        assert_eq!(list_owner("nothing"), None);
    }

    #[test]
    fn bad_list_name_message_states_the_rule() {
        let err = validate_list_name("sdn").unwrap_err().to_string();
        assert!(
            err.contains("\"sdn\"") && err.contains("US-TREAS/sdn"),
            "{err}"
        );
    }

    #[test]
    fn format_names_on_the_command_line() {
        use clap::ValueEnum as _;
        let names: Vec<String> = Format::value_variants()
            .iter()
            .filter_map(|f| f.to_possible_value().map(|v| v.get_name().to_owned()))
            .collect();
        assert_eq!(names, ["ofac-sdn", "ofac-cons", "csl", "bis-dpl", "un-xml"]);
    }

    #[test]
    fn row_error_displays_file_line_reason() {
        let err = RowError {
            file: PathBuf::from("x/sdn.csv"),
            line: 7,
            reason: "bad".into(),
        };
        assert_eq!(err.to_string(), "x/sdn.csv:7: bad");
    }
}
