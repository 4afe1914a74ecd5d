//! Key lifecycle: the keys a node holds for itself and for each partner across rotations,
//! and the key announcements by which partners learn a node's new keys.
//!
//! A node rotates its signing, encryption or TLS key without stopping (see
//! [`crate::node::Shared::rotate_keys`]). Its partners cannot be told out of band in
//! time, so the node sends each of them a [`pb::KeyAnnouncement`]: its complete new set
//! of public keys, signed by the signing key the partner holds for it now (only the owner
//! of the current key can announce a change) and by the new signing key (the owner holds
//! it). [`apply`] is the receiver's check; it is pure, like [`crate::envelope`].
//!
//! What each side keeps:
//! - [`OwnKeys`]: the node's current keys and the private encryption keys it rotated away
//!   from, so that an item sealed to an older key before the partner learned the new one
//!   still opens. The receiver picks the key by the key id in the envelope header.
//! - [`PartnerKeys`]: a partner's current public keys, its TLS pin, and the signing keys
//!   it rotated away from with the time of each rotation. A retired signing key is still
//!   accepted on items created (and receipts issued) before its rotation, so that items
//!   already queued when the partner rotated are not lost; the replay window bounds how
//!   old such an item can be.
//!
//! The signed encoding is specified in `docs/envelope.md` ("Key announcements").

use crate::{
    config::PartnerConfig,
    identity::{self, EncryptionKey, Identity, KeyId, PublicKeys, SigningKey},
    pb,
};

pub mod files;

/// Version of the key announcement format; a receiver refuses any other.
pub const ANNOUNCEMENT_VERSION: u32 = 1;

/// Domain-separation label of both announcement signatures (with its terminating zero).
const ANNOUNCEMENT_LABEL: &[u8] = b"entente/v1/key-announcement\0";

/// Most retired signing keys kept per partner; older ones are dropped first.
const MAX_RETIRED: usize = 16;

/// This node's keys: the current ones and the private encryption keys it rotated away
/// from.
#[derive(Debug)]
pub struct OwnKeys {
    /// Agency id and current private keys.
    pub identity: Identity,
    /// Older encryption keys, kept so that items sealed to them still open.
    pub retired: Vec<EncryptionKey>,
}

impl OwnKeys {
    /// The private encryption key whose key id is `id`: the current one or a retired one.
    pub fn decryption_key(&self, id: KeyId) -> Option<&EncryptionKey> {
        std::iter::once(&self.identity.encryption)
            .chain(&self.retired)
            .find(|key| key.key_id() == id)
    }
}

/// A signing key a partner rotated away from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// The Ed25519 public key.
    pub signing: [u8; 32],
    /// When the partner replaced it (its announcement's `issued_at_ms`).
    pub retired_at_ms: i64,
}

/// The keys a node holds for one partner: from its config entry until the partner
/// announces new ones, then the announced ones (kept in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerKeys {
    /// The keys in use now: envelopes are sealed to this encryption key, and this signing
    /// key is expected on new items and receipts.
    pub current: PublicKeys,
    /// SHA-256 of the partner's TLS certificate, when pinned.
    pub tls_pin: Option<[u8; 32]>,
    /// `issued_at_ms` of the last announcement applied; 0 while the config's keys hold.
    pub announced_at_ms: i64,
    /// Signing keys replaced by announcements, oldest first.
    pub retired: Vec<RetiredKey>,
}

impl PartnerKeys {
    /// The keys registered in the config entry `partner`.
    pub fn bootstrap(partner: &PartnerConfig) -> Self {
        Self {
            current: partner.keys.clone(),
            tls_pin: partner.cert_fingerprint,
            announced_at_ms: 0,
            retired: Vec::new(),
        }
    }

    /// The public signing key named by `id` that may sign something dated `at_ms`: the
    /// current key, or a retired one replaced after `at_ms`.
    pub fn signing_key(&self, id: KeyId, at_ms: i64) -> Option<[u8; 32]> {
        if self.current.signing_key_id() == id {
            return Some(self.current.signing);
        }
        self.retired
            .iter()
            .find(|r| at_ms < r.retired_at_ms && KeyId::derive("ed25519", &r.signing) == id)
            .map(|r| r.signing)
    }

    /// The stored form.
    pub fn to_record(&self) -> pb::LearnedKeys {
        pb::LearnedKeys {
            signing_key: self.current.signing.to_vec(),
            encryption_key: self.current.encryption.to_vec(),
            tls_cert_fingerprint: self.tls_pin.map(|p| p.to_vec()).unwrap_or_default(),
            announced_at_ms: self.announced_at_ms,
            retired: self
                .retired
                .iter()
                .map(|r| pb::RetiredSigningKey {
                    signing_key: r.signing.to_vec(),
                    retired_at_ms: r.retired_at_ms,
                })
                .collect(),
        }
    }

    /// Reads the stored form; `None` if a field has the wrong length (a damaged record).
    pub fn from_record(record: &pb::LearnedKeys) -> Option<Self> {
        let pin = match record.tls_cert_fingerprint.len() {
            0 => None,
            _ => Some(record.tls_cert_fingerprint.as_slice().try_into().ok()?),
        };
        let mut retired = Vec::with_capacity(record.retired.len());
        for r in &record.retired {
            retired.push(RetiredKey {
                signing: r.signing_key.as_slice().try_into().ok()?,
                retired_at_ms: r.retired_at_ms,
            });
        }
        Some(Self {
            current: PublicKeys {
                signing: record.signing_key.as_slice().try_into().ok()?,
                encryption: record.encryption_key.as_slice().try_into().ok()?,
            },
            tls_pin: pin,
            announced_at_ms: record.announced_at_ms,
            retired,
        })
    }
}

/// The new public keys an announcement carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeys {
    /// The new public signing and encryption keys.
    pub keys: PublicKeys,
    /// SHA-256 of the new TLS certificate, when it changed.
    pub tls_fingerprint: Option<[u8; 32]>,
}

/// Builds the announcement of `new` by `agency`, signed by `previous` (the signing key its
/// partners hold now) and by `new_signing` (the key `new.keys.signing` belongs to).
pub fn announce(
    agency: &str,
    issued_at_ms: i64,
    previous: &SigningKey,
    new_signing: &SigningKey,
    new: &NewKeys,
) -> pb::KeyAnnouncement {
    let mut announcement = pb::KeyAnnouncement {
        version: ANNOUNCEMENT_VERSION,
        agency: agency.to_owned(),
        issued_at_ms,
        previous_signing_key_id: previous.key_id().0.to_vec(),
        signing_key: new_signing.public().to_vec(),
        encryption_key: new.keys.encryption.to_vec(),
        tls_cert_fingerprint: new.tls_fingerprint.map(|f| f.to_vec()).unwrap_or_default(),
        previous_signature: Vec::new(),
        new_signature: Vec::new(),
    };
    let message = signing_input(&announcement);
    announcement.previous_signature = previous.sign(&message).to_vec();
    announcement.new_signature = new_signing.sign(&message).to_vec();
    announcement
}

/// Why an announcement was refused. Messages name the check that failed; they hold key
/// ids at most, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum AnnouncementError {
    /// The format version is not [`ANNOUNCEMENT_VERSION`].
    #[error("key announcement format version {0} is not supported (this node reads version 1)")]
    UnsupportedVersion(u32),
    /// The announcement names another agency than the TLS peer.
    #[error("key announcement names agency {found:?}, but the TLS peer is {expected}")]
    WrongAgency {
        /// The agency in the announcement.
        found: String,
        /// The agency of the TLS client certificate.
        expected: String,
    },
    /// A field is missing or malformed.
    #[error("malformed key announcement: {0}")]
    Malformed(String),
    /// It is signed by a key other than the one held for the agency now.
    #[error(
        "key announcement is signed by key {found}, not by {agency}'s current signing key \
         {current}"
    )]
    NotCurrentKey {
        /// The agency.
        agency: String,
        /// The key id the announcement names.
        found: String,
        /// The key id held now.
        current: String,
    },
    /// The signature by the current key does not verify.
    #[error("key announcement signature by the current signing key does not verify")]
    BadPreviousSignature,
    /// The signature by the new key does not verify: possession is not proven.
    #[error("key announcement signature by the new signing key does not verify")]
    BadNewSignature,
    /// It is not newer than the last announcement applied for the agency.
    #[error(
        "key announcement issued at {issued_at_ms} ms is not newer than the last one \
         applied ({applied_at_ms} ms)"
    )]
    Stale {
        /// Its time.
        issued_at_ms: i64,
        /// The time of the last one applied.
        applied_at_ms: i64,
    },
    /// The TLS client certificate is neither the pinned one nor the announced one.
    #[error("TLS certificate matches neither the pinned nor the announced fingerprint")]
    PinMismatch,
}

/// What [`apply`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The announcement is genuine and new: these are the partner's keys from now on.
    New(PartnerKeys),
    /// This very announcement was applied before (a resend after a lost answer).
    Already,
}

/// Checks `announcement`, received from the TLS peer `agency` whose certificate has the
/// fingerprint `peer_fingerprint`, against the keys held for it (`held`), and returns the
/// keys to hold from now on.
///
/// It must name `agency`, be signed by `held`'s current signing key and by the new signing
/// key it carries, and be newer than the last one applied. When the partner is pinned, its
/// certificate must match the pin or the fingerprint the (verified) announcement carries.
pub fn apply(
    announcement: &pb::KeyAnnouncement,
    agency: &str,
    peer_fingerprint: [u8; 32],
    held: &PartnerKeys,
) -> Result<Applied, AnnouncementError> {
    let parsed = Parsed::from(announcement, agency)?;
    let message = signing_input(announcement);
    let current_id = held.current.signing_key_id();
    if parsed.previous_id != current_id {
        // A resend of the announcement applied last: the new key is held already.
        if parsed.keys.keys.signing == held.current.signing
            && announcement.issued_at_ms == held.announced_at_ms
            && identity::verify_signature(&parsed.keys.keys.signing, &message, &parsed.new_sig)
        {
            check_pin(held, peer_fingerprint, parsed.keys.tls_fingerprint)?;
            return Ok(Applied::Already);
        }
        return Err(AnnouncementError::NotCurrentKey {
            agency: agency.to_owned(),
            found: parsed.previous_id.to_string(),
            current: current_id.to_string(),
        });
    }
    if !identity::verify_signature(&held.current.signing, &message, &parsed.previous_sig) {
        return Err(AnnouncementError::BadPreviousSignature);
    }
    if !identity::verify_signature(&parsed.keys.keys.signing, &message, &parsed.new_sig) {
        return Err(AnnouncementError::BadNewSignature);
    }
    check_pin(held, peer_fingerprint, parsed.keys.tls_fingerprint)?;
    if announcement.issued_at_ms <= held.announced_at_ms {
        if announcement.issued_at_ms == held.announced_at_ms && parsed.keys.keys == held.current {
            return Ok(Applied::Already);
        }
        return Err(AnnouncementError::Stale {
            issued_at_ms: announcement.issued_at_ms,
            applied_at_ms: held.announced_at_ms,
        });
    }
    Ok(Applied::New(successor(
        held,
        parsed.keys,
        announcement.issued_at_ms,
    )))
}

/// The keys held after a verified announcement of `new` at `at_ms`.
fn successor(held: &PartnerKeys, new: NewKeys, at_ms: i64) -> PartnerKeys {
    let mut retired = held.retired.clone();
    if new.keys.signing != held.current.signing {
        retired.push(RetiredKey {
            signing: held.current.signing,
            retired_at_ms: at_ms,
        });
    }
    let excess = retired.len().saturating_sub(MAX_RETIRED);
    retired.drain(..excess);
    // A pin follows the partner's certificate; a partner that was never pinned is not
    // pinned now: its CA and agency name still decide.
    let tls_pin = match (held.tls_pin, new.tls_fingerprint) {
        (Some(_), Some(new_pin)) => Some(new_pin),
        (pin, _) => pin,
    };
    PartnerKeys {
        current: new.keys,
        tls_pin,
        announced_at_ms: at_ms,
        retired,
    }
}

fn check_pin(
    held: &PartnerKeys,
    peer: [u8; 32],
    announced: Option<[u8; 32]>,
) -> Result<(), AnnouncementError> {
    match held.tls_pin {
        Some(pin) if pin != peer && announced != Some(peer) => Err(AnnouncementError::PinMismatch),
        _ => Ok(()),
    }
}

/// An announcement whose fields have the right lengths.
struct Parsed {
    previous_id: KeyId,
    keys: NewKeys,
    previous_sig: Vec<u8>,
    new_sig: Vec<u8>,
}

impl Parsed {
    fn from(a: &pb::KeyAnnouncement, agency: &str) -> Result<Self, AnnouncementError> {
        if a.version != ANNOUNCEMENT_VERSION {
            return Err(AnnouncementError::UnsupportedVersion(a.version));
        }
        if a.agency != agency {
            return Err(AnnouncementError::WrongAgency {
                found: a.agency.clone(),
                expected: agency.to_owned(),
            });
        }
        let keys = PublicKeys {
            signing: fixed("signing_key", &a.signing_key)?,
            encryption: fixed("encryption_key", &a.encryption_key)?,
        };
        keys.hpke_public()
            .map_err(|_| malformed("encryption_key: not an X25519 public key"))?;
        let tls_fingerprint = match a.tls_cert_fingerprint.len() {
            0 => None,
            _ => Some(fixed("tls_cert_fingerprint", &a.tls_cert_fingerprint)?),
        };
        let previous_sig: [u8; 64] = fixed("previous_signature", &a.previous_signature)?;
        let new_sig: [u8; 64] = fixed("new_signature", &a.new_signature)?;
        Ok(Self {
            previous_id: KeyId(fixed(
                "previous_signing_key_id",
                &a.previous_signing_key_id,
            )?),
            keys: NewKeys {
                keys,
                tls_fingerprint,
            },
            previous_sig: previous_sig.to_vec(),
            new_sig: new_sig.to_vec(),
        })
    }
}

fn malformed(reason: &str) -> AnnouncementError {
    AnnouncementError::Malformed(reason.to_owned())
}

fn fixed<const N: usize>(field: &str, bytes: &[u8]) -> Result<[u8; N], AnnouncementError> {
    bytes.try_into().map_err(|_| {
        AnnouncementError::Malformed(format!(
            "{field}: expected {N} bytes, found {}",
            bytes.len()
        ))
    })
}

/// What both signatures cover (`docs/envelope.md`): the label, the version byte, the
/// agency (u16 length and bytes), the time (i64 big-endian), the previous key id, the new
/// signing and encryption keys, and the TLS fingerprint (a length byte, 0 or 32, then its
/// bytes). Fields are written as they are; [`apply`] checks their lengths first.
pub fn signing_input(a: &pb::KeyAnnouncement) -> Vec<u8> {
    let mut out = Vec::with_capacity(ANNOUNCEMENT_LABEL.len() + 200);
    out.extend_from_slice(ANNOUNCEMENT_LABEL);
    out.push(1);
    // Agency ids are at most 32 bytes; the clamp keeps the encoding total for any input.
    let len = u16::try_from(a.agency.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&a.agency.as_bytes()[..usize::from(len)]);
    out.extend_from_slice(&a.issued_at_ms.to_be_bytes());
    out.extend_from_slice(&a.previous_signing_key_id);
    out.extend_from_slice(&a.signing_key);
    out.extend_from_slice(&a.encryption_key);
    out.push(u8::try_from(a.tls_cert_fingerprint.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&a.tls_cert_fingerprint);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(signing: &SigningKey, encryption: &EncryptionKey) -> PartnerKeys {
        PartnerKeys {
            current: PublicKeys {
                signing: signing.public(),
                encryption: encryption.public(),
            },
            tls_pin: None,
            announced_at_ms: 0,
            retired: Vec::new(),
        }
    }

    fn new_keys(signing: &SigningKey, encryption: &EncryptionKey) -> NewKeys {
        NewKeys {
            keys: PublicKeys {
                signing: signing.public(),
                encryption: encryption.public(),
            },
            tls_fingerprint: None,
        }
    }

    #[test]
    fn a_genuine_announcement_replaces_the_keys_and_retires_the_old_signing_key() {
        let (old, new) = (
            SigningKey::from_seed(&[1; 32]),
            SigningKey::from_seed(&[2; 32]),
        );
        let (enc0, enc1) = (EncryptionKey::derive(b"e0"), EncryptionKey::derive(b"e1"));
        let held = held(&old, &enc0);
        let a = announce("US-BIS", 1_000, &old, &new, &new_keys(&new, &enc1));
        let Applied::New(next) = apply(&a, "US-BIS", [0; 32], &held).unwrap() else {
            panic!("not applied");
        };
        assert_eq!(next.current.signing, new.public());
        assert_eq!(next.current.encryption, enc1.public());
        assert_eq!(next.announced_at_ms, 1_000);
        assert_eq!(next.signing_key(new.key_id(), 5_000), Some(new.public()));
        assert_eq!(next.signing_key(old.key_id(), 999), Some(old.public()));
        assert_eq!(
            next.signing_key(old.key_id(), 1_000),
            None,
            "not after rotation"
        );
        assert_eq!(
            PartnerKeys::from_record(&next.to_record()),
            Some(next.clone())
        );
        assert_eq!(
            apply(&a, "US-BIS", [0; 32], &next).unwrap(),
            Applied::Already
        );
    }

    #[test]
    fn an_announcement_not_signed_by_the_current_key_is_refused() {
        let (old, new, rogue) = (
            SigningKey::from_seed(&[1; 32]),
            SigningKey::from_seed(&[2; 32]),
            SigningKey::from_seed(&[3; 32]),
        );
        let enc = EncryptionKey::derive(b"e0");
        let held = held(&old, &enc);
        let forged = announce("US-BIS", 1_000, &rogue, &new, &new_keys(&new, &enc));
        let err = apply(&forged, "US-BIS", [0; 32], &held).unwrap_err();
        assert!(
            matches!(err, AnnouncementError::NotCurrentKey { .. }),
            "{err}"
        );
        // Naming the current key id does not help without its signature.
        let mut relabelled = forged.clone();
        relabelled.previous_signing_key_id = old.key_id().0.to_vec();
        let err = apply(&relabelled, "US-BIS", [0; 32], &held).unwrap_err();
        assert!(
            matches!(err, AnnouncementError::BadPreviousSignature),
            "{err}"
        );
        // Possession of the new key must be proven.
        let mut unproven = announce("US-BIS", 1_000, &old, &new, &new_keys(&new, &enc));
        unproven.new_signature = rogue.sign(&signing_input(&unproven)).to_vec();
        let err = apply(&unproven, "US-BIS", [0; 32], &held).unwrap_err();
        assert!(matches!(err, AnnouncementError::BadNewSignature), "{err}");
        let genuine = announce("US-BIS", 1_000, &old, &new, &new_keys(&new, &enc));
        let err = apply(&genuine, "DE-BAFA", [0; 32], &held).unwrap_err();
        assert!(
            matches!(err, AnnouncementError::WrongAgency { .. }),
            "{err}"
        );
    }

    #[test]
    fn an_older_announcement_cannot_roll_the_keys_back() {
        let signing = SigningKey::from_seed(&[1; 32]);
        let (enc0, enc1, enc2) = (
            EncryptionKey::derive(b"e0"),
            EncryptionKey::derive(b"e1"),
            EncryptionKey::derive(b"e2"),
        );
        let first = announce(
            "US-BIS",
            1_000,
            &signing,
            &signing,
            &new_keys(&signing, &enc1),
        );
        let second = announce(
            "US-BIS",
            2_000,
            &signing,
            &signing,
            &new_keys(&signing, &enc2),
        );
        let Applied::New(after_first) =
            apply(&first, "US-BIS", [0; 32], &held(&signing, &enc0)).unwrap()
        else {
            panic!("first not applied");
        };
        let Applied::New(after_second) = apply(&second, "US-BIS", [0; 32], &after_first).unwrap()
        else {
            panic!("second not applied");
        };
        let err = apply(&first, "US-BIS", [0; 32], &after_second).unwrap_err();
        assert!(matches!(err, AnnouncementError::Stale { .. }), "{err}");
    }

    #[test]
    fn a_pinned_partner_may_present_only_the_pinned_or_the_announced_certificate() {
        let signing = SigningKey::from_seed(&[1; 32]);
        let enc = EncryptionKey::derive(b"e0");
        let mut pinned = held(&signing, &enc);
        pinned.tls_pin = Some([7; 32]);
        let mut keys = new_keys(&signing, &enc);
        keys.tls_fingerprint = Some([8; 32]);
        let a = announce("US-BIS", 1_000, &signing, &signing, &keys);
        let Applied::New(next) = apply(&a, "US-BIS", [8; 32], &pinned).unwrap() else {
            panic!("not applied");
        };
        assert_eq!(next.tls_pin, Some([8; 32]));
        let err = apply(&a, "US-BIS", [9; 32], &pinned).unwrap_err();
        assert!(matches!(err, AnnouncementError::PinMismatch), "{err}");
        let unpinned = held(&signing, &enc);
        let Applied::New(next) = apply(&a, "US-BIS", [9; 32], &unpinned).unwrap() else {
            panic!("not applied");
        };
        assert_eq!(next.tls_pin, None, "an unpinned partner stays unpinned");
    }

    #[test]
    fn malformed_announcements_name_the_field() {
        let signing = SigningKey::from_seed(&[1; 32]);
        let enc = EncryptionKey::derive(b"e0");
        let mut a = announce("US-BIS", 1, &signing, &signing, &new_keys(&signing, &enc));
        a.encryption_key.truncate(5);
        let err = apply(&a, "US-BIS", [0; 32], &held(&signing, &enc)).unwrap_err();
        assert!(
            err.to_string()
                .contains("encryption_key: expected 32 bytes"),
            "{err}"
        );
        a.version = 2;
        let err = apply(&a, "US-BIS", [0; 32], &held(&signing, &enc)).unwrap_err();
        assert!(
            matches!(err, AnnouncementError::UnsupportedVersion(2)),
            "{err}"
        );
    }
}
