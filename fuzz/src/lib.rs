//! Shared pieces of the fuzz targets: the fixed identities of the envelope target and the
//! scratch directory the watchlist importers read their input from.
//!
//! Every target must return normally on any input; a panic is a bug of the main crate.

#![forbid(unsafe_code)]

use std::{
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use entente::{
    identity::{EncryptionKey, Identity, SigningKey},
    watchlist::{self, Format},
};

/// The recipient of the test vector in `tests/vectors/envelope-v1.json` (DE-BAFA), so that
/// the vector's envelope, a seed of the corpus, opens.
pub fn recipient() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity {
        agency: "DE-BAFA".to_owned(),
        signing: SigningKey::from_seed(&[0x22; 32]),
        encryption: EncryptionKey::derive(b"entente test vector: DE-BAFA encryption key"),
    })
}

/// The sender of the test vector (US-BIS); its encryption key is not used by the vector.
pub fn sender() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity {
        agency: "US-BIS".to_owned(),
        signing: SigningKey::from_seed(&[0x11; 32]),
        encryption: EncryptionKey::derive(b"unused"),
    })
}

/// The byte that separates the four files of an OFAC list in one fuzz input.
pub const OFAC_SEPARATOR: u8 = 0;

/// Imports `data` as one list in `format`, and checks what can be checked of the result.
///
/// OFAC's lists are four files: `data` is split on [`OFAC_SEPARATOR`] into the main file,
/// the addresses, the aliases and the comments (missing parts are empty files). Every other
/// format reads `data` as its one file. Both a strict and a lenient import run.
pub fn import(format: Format, data: &[u8]) {
    let dir = scratch_dir();
    let path = match format {
        Format::OfacSdn => write_ofac(
            dir,
            ["sdn.csv", "add.csv", "alt.csv", "sdn_comments.csv"],
            data,
        ),
        Format::OfacCons => write_ofac(
            dir,
            [
                "cons_prim.csv",
                "cons_add.csv",
                "cons_alt.csv",
                "cons_comments.csv",
            ],
            data,
        ),
        Format::Csl | Format::BisDpl | Format::UnXml => {
            let path = dir.join("list");
            write(&path, data);
            path
        }
    };
    let lenient = watchlist::import(format, &path, false);
    let strict = watchlist::import(format, &path, true);
    if let Ok(imported) = &lenient {
        check_entries(&imported.entries);
        // A strict import succeeds exactly when the lenient one rejected nothing.
        assert_eq!(strict.is_ok(), imported.rejected.is_empty());
    }
}

/// The entries of an import are canonical, have unique ids, and make a delta that applies.
fn check_entries(entries: &[entente::pb::WatchlistEntry]) {
    let mut ids = std::collections::BTreeSet::new();
    for entry in entries {
        assert!(!entry.id.is_empty(), "an entry without an id");
        assert!(ids.insert(entry.id.as_str()), "two entries with one id");
        assert_eq!(
            &watchlist::canonical(entry.clone()),
            entry,
            "an entry not canonical"
        );
    }
    let delta = watchlist::diff(&[], entries);
    let mut applied = std::collections::BTreeMap::new();
    let mut digest = watchlist::Digest::default();
    delta.apply(&mut applied, &mut digest);
    assert!(
        digest == watchlist::Digest::of(entries),
        "a delta from nothing that does not make the list"
    );
}

fn write_ofac(dir: &Path, names: [&str; 4], data: &[u8]) -> PathBuf {
    let mut parts = data.splitn(4, |&b| b == OFAC_SEPARATOR);
    for name in names {
        write(&dir.join(name), parts.next().unwrap_or_default());
    }
    dir.to_owned()
}

fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).expect("writing the fuzz input to the scratch directory");
}

/// One directory per process, made on first use under the system's temporary directory.
///
/// A fuzzing process ends without running destructors, so directories of earlier processes
/// that are no longer running are removed here instead (on systems with `/proc`).
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir();
        remove_stale(&base);
        let dir = base.join(format!("{PREFIX}{}", std::process::id()));
        fs::create_dir_all(&dir).expect("creating the scratch directory");
        dir
    })
}

const PREFIX: &str = "entente-fuzz-";

fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
