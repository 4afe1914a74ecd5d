//! Keys, key ids, agency ids and the partner registry.
//!
//! A node holds two long-lived private keys: an Ed25519 signing key (ring) and an X25519
//! key for HPKE (RFC 9180) encryption. Both are stored as PKCS#8 in PEM files. Partners are
//! known by their public keys, written in the config as `ed25519:BASE64` and
//! `x25519:BASE64`. A key id is derived from the public key, never chosen.
//!
//! Nothing in this module logs or prints key material: `Debug` shows key ids only.

use std::{fmt, fs, io, path::Path};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hpke::{Deserializable as _, Kem as _, Serializable as _};
use ring::{
    digest,
    rand::SystemRandom,
    signature::{self, Ed25519KeyPair, KeyPair as _},
};
use zeroize::Zeroizing;

/// The HPKE KEM Entente uses: DHKEM(X25519, HKDF-SHA256).
pub type Kem = hpke::kem::X25519HkdfSha256;

/// Errors about keys and agency ids.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A key file does not hold the expected kind of key.
    #[error("key file {path}: {reason}")]
    BadKeyFile {
        /// The file.
        path: String,
        /// What was wrong, without any key bytes.
        reason: String,
    },
    /// A public key in text form is malformed.
    #[error("public key: {0}")]
    BadPublicKey(String),
    /// An agency id does not follow the rules.
    #[error(
        "agency id {0:?} is invalid: expected 2 to 32 characters, upper-case letters, digits \
         and '-', starting with a letter (for example \"US-BIS\")"
    )]
    BadAgencyId(String),
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// A private key file can be read or written by accounts other than its owner.
    #[error(
        "key file {path} is open to other accounts (mode {mode:04o}); a private key must be \
         readable by its owner only: run `chmod 600 {path}`"
    )]
    ExposedKeyFile {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// Checks that the private key file at `path` grants nothing to its group or to other
/// accounts (mode 0600 or stricter), as `entente init` writes it. A node refuses to start
/// otherwise: a key others can read is a key that may already be copied.
pub fn check_private_file(path: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)
            .map_err(|source| IdentityError::Io {
                path: path.display().to_string(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::ExposedKeyFile {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    Ok(())
}

/// Checks that `id` is a valid agency id (such as `US-BIS` or `DE-BAFA`).
pub fn validate_agency_id(id: &str) -> Result<(), IdentityError> {
    let ok = (2..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_uppercase())
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadAgencyId(id.to_owned()))
    }
}

/// A 16-byte key id: the first 16 bytes of SHA-256 over a label, the algorithm name and
/// the public key (see `docs/envelope.md`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Derives the key id of `public` for algorithm `alg` (`"ed25519"` or `"x25519"`).
    pub fn derive(alg: &str, public: &[u8]) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"entente/v1/key-id\0");
        ctx.update(alg.as_bytes());
        ctx.update(b"\0");
        ctx.update(public);
        let mut id = [0u8; 16];
        id.copy_from_slice(&ctx.finish().as_ref()[..16]);
        Self(id)
    }

    /// Parses a key id from its 16 raw bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// An Ed25519 signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl SigningKey {
    /// Generates a new key from the system random number generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| IdentityError::Random)?;
        Self::from_pkcs8(pkcs8.as_ref()).map_err(|_| IdentityError::Random)
    }

    /// Builds the key from a 32-byte seed (used for test vectors).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        // A 32-byte seed is always a valid Ed25519 private key.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("32-byte Ed25519 seed");
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&ED25519_PKCS8_PREFIX);
        der.extend_from_slice(seed);
        Self {
            pair,
            pkcs8: Zeroizing::new(der),
        }
    }

    /// Reads the key from PKCS#8 DER (v1 or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key ({e})"))?;
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// The raw 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// The key id of the public key.
    pub fn key_id(&self) -> KeyId {
        KeyId::derive("ed25519", &self.public())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }

    /// A second handle on the same key, for a part that signs on its own (the audit
    /// log's checkpoints).
    pub fn duplicate(&self) -> Self {
        // The bytes were accepted as this very key when it was built.
        Self::from_pkcs8(&self.pkcs8).expect("a key's own PKCS#8 bytes read again")
    }

    /// Reads a PEM file holding a PKCS#8 Ed25519 private key.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let der = read_pem(path)?;
        Self::from_pkcs8(&der).map_err(|reason| IdentityError::BadKeyFile {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Writes the key as a PEM file readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        write_pem(path, &self.pkcs8)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(id {}, private key hidden)", self.key_id())
    }
}

/// Checks an Ed25519 signature by `public` over `message`.
pub fn verify_signature(public: &[u8; 32], message: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(message, sig)
        .is_ok()
}

/// DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER prefix of a PKCS#8 v1 X25519 private key (RFC 8410), followed by the 32-byte key.
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// An X25519 private key for HPKE.
pub struct EncryptionKey {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; 32],
}

impl EncryptionKey {
    /// Generates a new key from the system random number generator.
    pub fn generate() -> Self {
        let (private, public) = Kem::gen_keypair();
        Self::from_pair(private, public)
    }

    /// Derives a key deterministically from input keying material (RFC 9180 DeriveKeyPair;
    /// used for test vectors).
    pub fn derive(ikm: &[u8]) -> Self {
        let (private, public) = Kem::derive_keypair(ikm);
        Self::from_pair(private, public)
    }

    fn from_pair(
        private: <Kem as hpke::Kem>::PrivateKey,
        public: <Kem as hpke::Kem>::PublicKey,
    ) -> Self {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&public.to_bytes());
        Self {
            private,
            public: raw,
        }
    }

    /// Reads the key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let raw = der
            .strip_prefix(&X25519_PKCS8_PREFIX[..])
            .filter(|raw| raw.len() == 32)
            .ok_or("not an X25519 PKCS#8 private key")?;
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(raw)
            .map_err(|_| "not a valid X25519 private key")?;
        let public = Kem::sk_to_pk(&private);
        Ok(Self::from_pair(private, public))
    }

    /// The raw 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The key id of the public key.
    pub fn key_id(&self) -> KeyId {
        KeyId::derive("x25519", &self.public)
    }

    /// The HPKE private key.
    pub fn hpke_private(&self) -> &<Kem as hpke::Kem>::PrivateKey {
        &self.private
    }

    /// Reads a PEM file holding a PKCS#8 X25519 private key.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let der = read_pem(path)?;
        Self::from_pkcs8(&der).map_err(|reason| IdentityError::BadKeyFile {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Writes the key as a PEM file readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        let mut der = Zeroizing::new(X25519_PKCS8_PREFIX.to_vec());
        der.extend_from_slice(&self.private.to_bytes());
        write_pem(path, &der)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey(id {}, private key hidden)", self.key_id())
    }
}

fn read_pem(path: &Path) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
    let text = Zeroizing::new(fs::read(path).map_err(|source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    })?);
    let block = pem::parse(&*text).map_err(|e| IdentityError::BadKeyFile {
        path: path.display().to_string(),
        reason: format!("not a PEM file ({e})"),
    })?;
    if block.tag() != "PRIVATE KEY" {
        return Err(IdentityError::BadKeyFile {
            path: path.display().to_string(),
            reason: format!(
                "expected a \"PRIVATE KEY\" PEM block, found {:?}",
                block.tag()
            ),
        });
    }
    Ok(Zeroizing::new(block.into_contents()))
}

fn write_pem(path: &Path, der: &[u8]) -> Result<(), IdentityError> {
    let text = Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", der)));
    write_private_file(path, text.as_bytes()).map_err(|source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes `bytes` to a new file that only its owner can read (mode 0600 on Unix).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The node's data key: an AES-256-GCM key that encrypts report content in the store, so
/// that a copy of the data directory without the key file reveals none of it.
///
/// A sealed value is a format byte (1), a random 96-bit nonce, and the ciphertext with its
/// tag. The associated data binds the value to its tree and key in the store, so a value
/// moved to another record does not open. Random nonces are safe for far more values than
/// a node stores under one key (NIST SP 800-38D, section 8.3).
pub struct DataKey {
    key: ring::aead::LessSafeKey,
}

/// The PEM label of a data key file.
const DATA_KEY_LABEL: &str = "ENTENTE DATA KEY";

/// The format byte of a value sealed with a [`DataKey`].
const AT_REST_FORMAT: u8 = 1;

/// The domain-separation label before the associated data of a value sealed at rest.
const AT_REST_LABEL: &[u8] = b"entente/v1/at-rest\0";

impl DataKey {
    /// A new random key, kept in memory only.
    pub fn generate() -> Result<Self, IdentityError> {
        Self::from_bytes(&random_key()?[..]).ok_or(IdentityError::Random)
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, bytes).ok()?;
        Some(Self {
            key: ring::aead::LessSafeKey::new(unbound),
        })
    }

    /// Reads a data key file (a PEM block `ENTENTE DATA KEY` holding 32 bytes).
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let bad = |reason: String| IdentityError::BadKeyFile {
            path: path.display().to_string(),
            reason,
        };
        let text = Zeroizing::new(fs::read(path).map_err(|source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        })?);
        let block = pem::parse(&*text).map_err(|e| bad(format!("not a PEM file ({e})")))?;
        if block.tag() != DATA_KEY_LABEL {
            return Err(bad(format!(
                "expected a \"{DATA_KEY_LABEL}\" PEM block, found {:?}",
                block.tag()
            )));
        }
        let bytes = Zeroizing::new(block.into_contents());
        if bytes.len() != 32 {
            return Err(bad(format!(
                "a data key is 32 bytes, found {}",
                bytes.len()
            )));
        }
        Self::from_bytes(&bytes).ok_or_else(|| bad("not an AES-256 key".into()))
    }

    /// Writes a new random key to `path`, readable by its owner only.
    pub fn create(path: &Path) -> Result<Self, IdentityError> {
        let bytes = random_key()?;
        let text = Zeroizing::new(pem::encode(&pem::Pem::new(DATA_KEY_LABEL, bytes.to_vec())));
        write_private_file(path, text.as_bytes()).map_err(|source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes[..]).ok_or(IdentityError::Random)
    }

    /// Encrypts `plaintext`, the value of record `key` in store tree `tree`.
    pub fn seal(&self, tree: &str, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let mut nonce = [0u8; 12];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut nonce)
            .map_err(|_| IdentityError::Random)?;
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(at_rest_aad(tree, key)),
                &mut body,
            )
            // Sealing fails only for inputs beyond AES-GCM's 64 GiB limit.
            .map_err(|_| IdentityError::Random)?;
        let mut out = Vec::with_capacity(1 + nonce.len() + body.len());
        out.push(AT_REST_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts a value sealed by [`DataKey::seal`] for record `key` of tree `tree`; `None`
    /// if it was sealed with another key, for another record, or was changed.
    pub fn open(&self, tree: &str, key: &[u8], value: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&format, rest) = value.split_first()?;
        if format != AT_REST_FORMAT || rest.len() < 12 + 16 {
            return None;
        }
        let (nonce, sealed) = rest.split_at(12);
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(
                nonce,
                ring::aead::Aad::from(at_rest_aad(tree, key)),
                &mut body,
            )
            .ok()?
            .len();
        body.truncate(len);
        Some(body)
    }
}

fn random_key() -> Result<Zeroizing<[u8; 32]>, IdentityError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes[..])
        .map_err(|_| IdentityError::Random)?;
    Ok(bytes)
}

fn at_rest_aad(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AT_REST_LABEL.len() + tree.len() + 1 + key.len());
    aad.extend_from_slice(AT_REST_LABEL);
    aad.extend_from_slice(tree.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(hidden)")
    }
}

/// A partner's public keys, as registered in the config.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKeys {
    /// Raw Ed25519 public key.
    pub signing: [u8; 32],
    /// Raw X25519 public key.
    pub encryption: [u8; 32],
}

impl PublicKeys {
    /// Key id of the signing key.
    pub fn signing_key_id(&self) -> KeyId {
        KeyId::derive("ed25519", &self.signing)
    }

    /// Key id of the encryption key.
    pub fn encryption_key_id(&self) -> KeyId {
        KeyId::derive("x25519", &self.encryption)
    }

    /// The HPKE public key.
    pub fn hpke_public(&self) -> Result<<Kem as hpke::Kem>::PublicKey, IdentityError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.encryption)
            .map_err(|_| IdentityError::BadPublicKey("not a valid X25519 public key".into()))
    }
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKeys(signing {}, encryption {})",
            self.signing_key_id(),
            self.encryption_key_id()
        )
    }
}

/// Formats a public key as `ALG:BASE64`, the form used in config files.
pub fn public_key_text(alg: &str, public: &[u8; 32]) -> String {
    format!("{alg}:{}", B64.encode(public))
}

/// Parses `ALG:BASE64` for the given algorithm into 32 raw bytes.
pub fn parse_public_key(alg: &str, text: &str) -> Result<[u8; 32], IdentityError> {
    let body = text
        .strip_prefix(alg)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(|| IdentityError::BadPublicKey(format!("expected \"{alg}:BASE64\"")))?;
    let raw = B64
        .decode(body.trim())
        .map_err(|_| IdentityError::BadPublicKey(format!("{alg} key is not valid base64")))?;
    raw.try_into().map_err(|_| {
        IdentityError::BadPublicKey(format!("{alg} key must be 32 bytes once decoded"))
    })
}

/// This node's own identity: its agency id and private keys.
#[derive(Debug)]
pub struct Identity {
    /// Agency id, such as `US-BIS`.
    pub agency: String,
    /// Ed25519 signing key.
    pub signing: SigningKey,
    /// X25519 encryption key.
    pub encryption: EncryptionKey,
}

impl Identity {
    /// This node's public keys.
    pub fn public_keys(&self) -> PublicKeys {
        PublicKeys {
            signing: self.signing.public(),
            encryption: self.encryption.public(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_sealed_at_rest_opens_only_with_its_key_tree_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let key = DataKey::create(&path).unwrap();
        let sealed = key.seal("items", b"record-1", b"report content").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"report"));
        let loaded = DataKey::load(&path).unwrap();
        assert_eq!(
            &loaded.open("items", b"record-1", &sealed).unwrap()[..],
            b"report content"
        );
        assert!(
            loaded.open("items", b"record-2", &sealed).is_none(),
            "another record"
        );
        assert!(
            loaded.open("screening", b"record-1", &sealed).is_none(),
            "another tree"
        );
        let other = DataKey::generate().unwrap();
        assert!(
            other.open("items", b"record-1", &sealed).is_none(),
            "another key"
        );
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(
            loaded.open("items", b"record-1", &changed).is_none(),
            "changed"
        );
        assert!(
            loaded.open("items", b"record-1", &sealed[..20]).is_none(),
            "cut short"
        );
        let again = key.seal("items", b"record-1", b"report content").unwrap();
        assert_ne!(sealed, again, "a fresh nonce each time");
        assert_eq!(format!("{key:?}"), "DataKey(hidden)");
    }

    #[test]
    fn a_bad_data_key_file_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        for (text, reason) in [
            ("not pem".to_owned(), "not a PEM file"),
            (
                pem::encode(&pem::Pem::new("PRIVATE KEY", vec![0u8; 32])),
                "expected a \"ENTENTE DATA KEY\" PEM block",
            ),
            (
                pem::encode(&pem::Pem::new("ENTENTE DATA KEY", vec![0u8; 16])),
                "a data key is 32 bytes, found 16",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = DataKey::load(&path).unwrap_err().to_string();
            assert!(err.contains("data.key") && err.contains(reason), "{err}");
        }
        let missing = DataKey::load(&dir.path().join("none.key")).unwrap_err();
        assert!(missing.to_string().contains("none.key"), "{missing}");
    }

    #[test]
    fn keys_survive_a_round_trip_through_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let signing = SigningKey::generate().unwrap();
        let encryption = EncryptionKey::generate();
        signing.save(&dir.path().join("s.pem")).unwrap();
        encryption.save(&dir.path().join("e.pem")).unwrap();
        let signing2 = SigningKey::load(&dir.path().join("s.pem")).unwrap();
        let encryption2 = EncryptionKey::load(&dir.path().join("e.pem")).unwrap();
        assert_eq!(signing.public(), signing2.public());
        assert_eq!(encryption.public(), encryption2.public());
        let sig = signing2.sign(b"m");
        assert!(verify_signature(&signing.public(), b"m", &sig));
        assert!(!verify_signature(&signing.public(), b"n", &sig));
    }

    #[test]
    fn a_signing_key_file_is_not_accepted_as_an_encryption_key() {
        let dir = tempfile::tempdir().unwrap();
        SigningKey::generate()
            .unwrap()
            .save(&dir.path().join("s.pem"))
            .unwrap();
        let err = EncryptionKey::load(&dir.path().join("s.pem")).unwrap_err();
        assert!(err.to_string().contains("not an X25519"), "{err}");
    }

    #[test]
    fn debug_output_hides_private_keys() {
        let key = SigningKey::from_seed(&[7; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("hidden"));
        assert!(!shown.contains(&hex::encode([7u8; 32])));
    }

    #[test]
    fn public_keys_parse_from_their_text_form() {
        let key = SigningKey::from_seed(&[1; 32]);
        let text = public_key_text("ed25519", &key.public());
        assert_eq!(parse_public_key("ed25519", &text).unwrap(), key.public());
        assert!(parse_public_key("x25519", &text).is_err());
        assert!(parse_public_key("ed25519", "ed25519:AAAA").is_err());
    }

    #[test]
    fn agency_ids_are_checked() {
        assert!(validate_agency_id("US-BIS").is_ok());
        assert!(validate_agency_id("us-bis").is_err());
        assert!(validate_agency_id("-X").is_err());
        assert!(validate_agency_id("A").is_err());
    }
}
