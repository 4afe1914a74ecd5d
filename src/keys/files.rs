//! Key files across rotations.
//!
//! A rotation writes each new key next to the file it replaces, as `FILE.next`, keeps what
//! the old key is still needed for in a `retired/` directory beside the key file, and
//! only then, once the partners' announcements are queued in the store, renames
//! `FILE.next` over `FILE`. A node stopped between the two finishes or drops the staged
//! files at its next start ([`recover`]), so the key files and the announcements its
//! partners get never disagree.
//!
//! `retired/` holds:
//! - `x25519-KEYID.pem`: an old private encryption key (mode 0600), so that envelopes
//!   sealed to it before the partners learned the new key still open;
//! - `ed25519-KEYID.pub`: an old public signing key (`ed25519:BASE64`), so that `entente
//!   audit verify` can check the checkpoints it signed; the private key is not kept;
//! - `OLDNAME.TIME`: the replaced TLS certificate and key, for the operator.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{
    config::Config,
    identity::{self, EncryptionKey, IdentityError, SigningKey},
    pb, tls,
};

/// The directory of retired keys beside `key_file`.
pub fn retired_dir(key_file: &Path) -> PathBuf {
    key_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("retired")
}

/// Where the replacement of `key_file` is staged.
pub fn staged(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn create_retired_dir(key_file: &Path) -> Result<PathBuf, IdentityError> {
    let dir = retired_dir(key_file);
    fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_error(&dir))?;
    }
    Ok(dir)
}

/// Files in the retired directory beside `key_file` whose names start with `prefix` and
/// end with `suffix`, sorted by name.
fn retired_files(
    key_file: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<PathBuf>, IdentityError> {
    let dir = retired_dir(key_file);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error(&dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(prefix) && name.ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The retired private encryption keys beside `encryption_key`. Each file must be
/// readable by its owner only, as the current key file must.
pub fn load_retired_encryption(encryption_key: &Path) -> Result<Vec<EncryptionKey>, IdentityError> {
    let mut keys = Vec::new();
    for path in retired_files(encryption_key, "x25519-", ".pem")? {
        identity::check_private_file(&path)?;
        keys.push(EncryptionKey::load(&path)?);
    }
    Ok(keys)
}

/// The retired public signing keys beside `signing_key`.
pub fn load_retired_signing(signing_key: &Path) -> Result<Vec<[u8; 32]>, IdentityError> {
    let mut keys = Vec::new();
    for path in retired_files(signing_key, "ed25519-", ".pub")? {
        let text = fs::read_to_string(&path).map_err(io_error(&path))?;
        keys.push(
            identity::parse_public_key("ed25519", text.trim()).map_err(|e| {
                IdentityError::BadKeyFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?,
        );
    }
    Ok(keys)
}

/// Keeps the private encryption key `key`, replaced beside `encryption_key`.
pub fn retire_encryption(encryption_key: &Path, key: &EncryptionKey) -> Result<(), IdentityError> {
    let dir = create_retired_dir(encryption_key)?;
    key.save(&dir.join(format!("x25519-{}.pem", key.key_id())))
}

/// Keeps the public half of the signing key `key`, replaced beside `signing_key`.
pub fn retire_signing(signing_key: &Path, key: &SigningKey) -> Result<(), IdentityError> {
    let dir = create_retired_dir(signing_key)?;
    let path = dir.join(format!("ed25519-{}.pub", key.key_id()));
    let text = identity::public_key_text("ed25519", &key.public()) + "\n";
    fs::write(&path, text).map_err(io_error(&path))
}

/// Copies the TLS file `file` into the retired directory as `NAME.AT_MS`, readable by its
/// owner only (it may be a private key).
pub fn retire_copy(file: &Path, at_ms: i64) -> Result<(), IdentityError> {
    let dir = create_retired_dir(file)?;
    let bytes = zeroize::Zeroizing::new(fs::read(file).map_err(io_error(file))?);
    let name = file
        .file_name()
        .map_or_else(|| "tls".to_owned(), |n| n.to_string_lossy().into_owned());
    let copy = dir.join(format!("{name}.{at_ms}"));
    identity::write_private_file(&copy, &bytes).map_err(io_error(&copy))
}

/// Writes `bytes` as the staged replacement of `key_file`, readable by its owner only.
pub fn stage(key_file: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let path = staged(key_file);
    identity::write_private_file(&path, bytes).map_err(io_error(&path))
}

/// Renames the staged replacement of `key_file` over it, and makes the rename durable.
pub fn install(key_file: &Path) -> Result<(), IdentityError> {
    fs::rename(staged(key_file), key_file).map_err(io_error(key_file))?;
    if let Some(dir) = key_file.parent() {
        // Durability of the rename itself; a directory that cannot be opened for this
        // (some file systems) still has the rename, only without the fsync.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// At start-up: finishes a rotation that was stopped after its announcements were queued
/// (`newest` is the newest queued announcement) by installing the staged keys it names,
/// and removes staged files it does not name. Returns the files installed.
pub fn recover(
    config: &Config,
    newest: Option<&pb::KeyAnnouncement>,
) -> Result<Vec<PathBuf>, IdentityError> {
    let mut installed = Vec::new();
    let mut settle = |file: &Path, announced: bool| -> Result<(), IdentityError> {
        if announced {
            install(file)?;
            installed.push(file.to_owned());
        } else {
            fs::remove_file(staged(file)).map_err(io_error(file))?;
        }
        Ok(())
    };
    let signing = staged(&config.signing_key);
    if signing.exists() {
        let key = SigningKey::load(&signing)?;
        settle(
            &config.signing_key,
            newest.is_some_and(|a| a.signing_key == key.public()),
        )?;
    }
    let encryption = staged(&config.encryption_key);
    if encryption.exists() {
        let key = EncryptionKey::load(&encryption)?;
        settle(
            &config.encryption_key,
            newest.is_some_and(|a| a.encryption_key == key.public()),
        )?;
    }
    let cert = staged(&config.tls_cert);
    if cert.exists() {
        let certs = tls::load_certs(&cert).map_err(|e| IdentityError::BadKeyFile {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
        let announced = newest.is_some_and(|a| {
            certs
                .first()
                .is_some_and(|leaf| a.tls_cert_fingerprint == tls::fingerprint(leaf))
        });
        if staged(&config.tls_key).exists() {
            settle(&config.tls_key, announced)?;
        }
        settle(&config.tls_cert, announced)?;
    } else if staged(&config.tls_key).exists() {
        settle(&config.tls_key, false)?;
    }
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_keys_are_read_back_and_private_ones_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let (enc_file, sig_file) = (dir.path().join("enc.pem"), dir.path().join("sig.pem"));
        let old = EncryptionKey::generate();
        retire_encryption(&enc_file, &old).unwrap();
        let signing = SigningKey::from_seed(&[4; 32]);
        retire_signing(&sig_file, &signing).unwrap();
        let keys = load_retired_encryption(&enc_file).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].public(), old.public());
        assert_eq!(
            load_retired_signing(&sig_file).unwrap(),
            vec![signing.public()]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let file = retired_dir(&enc_file).join(format!("x25519-{}.pem", old.key_id()));
            fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
            let err = load_retired_encryption(&enc_file).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn a_staged_key_replaces_the_file_only_when_installed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.pem");
        fs::write(&file, "old").unwrap();
        stage(&file, b"new").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"old");
        install(&file).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"new");
        assert!(!staged(&file).exists());
    }
}
