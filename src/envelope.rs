//! Sealing and opening envelopes, and signing and checking receipts.
//!
//! An envelope carries one item from one agency to one other. Sealing signs, then encrypts:
//! the sender's Ed25519 signature covers a domain-separation label, the [`Header`] (sender,
//! recipient, item id, kind, creation time, both key ids) and the payload; the signature and
//! the payload are then encrypted with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, AES-256-GCM) to the recipient's static key, with the header encoding as
//! associated data. The header also travels in clear so that a receiver can refuse an
//! envelope that is not for it, or not from a registered key, before decrypting anything.
//!
//! A receipt is the receiver's Ed25519 signature over the ids and [`envelope_digest`]s of
//! the items it stored.
//!
//! The byte encodings are specified in `docs/envelope.md`, with test vectors in
//! `tests/vectors/envelope-v1.json`. This module is pure: it neither logs nor stores, and
//! no error or `Debug` output of it contains key material or item content.

use std::fmt;

use hpke::{
    Deserializable as _, HpkeError, OpModeR, OpModeS, Serializable as _, aead::AesGcm256,
    kdf::HkdfSha256,
};
use prost::Message as _;
use ring::digest;
use zeroize::Zeroizing;

use crate::identity::{self, EncryptionKey, Identity, Kem, KeyId, PublicKeys, SigningKey};
use crate::keys::{OwnKeys, PartnerKeys};
use crate::pb;

/// Version of the envelope format in this module; a receiver refuses any other.
pub const ENVELOPE_VERSION: u32 = 1;

/// Version of the receipt format in this module; a sender refuses any other.
pub const RECEIPT_VERSION: u32 = 1;

/// Domain-separation label of the sender's signature (with its terminating zero byte).
const SIGNATURE_LABEL: &[u8] = b"entente/v1/envelope\0";
/// HPKE `info`: binds the derived keys to this protocol and version.
const HPKE_INFO: &[u8] = b"entente/v1/envelope-hpke";
/// Label of the envelope digest named in receipts.
const DIGEST_LABEL: &[u8] = b"entente/v1/envelope-digest\0";
/// Label of the local-only digest of an envelope whose header does not parse; distinct from
/// [`DIGEST_LABEL`] so that such a digest can never equal the digest of a valid envelope.
const UNPARSED_DIGEST_LABEL: &[u8] = b"entente/v1/envelope-digest-unparsed\0";
/// Label of the receiver's signature on a receipt.
const RECEIPT_LABEL: &[u8] = b"entente/v1/receipt\0";

/// The one byte that [`ENVELOPE_VERSION`] occupies in the header encoding.
const ENVELOPE_VERSION_BYTE: u8 = 1;
/// The one byte that [`RECEIPT_VERSION`] occupies in the receipt encoding.
const RECEIPT_VERSION_BYTE: u8 = 1;
const _: () = assert!(ENVELOPE_VERSION_BYTE as u32 == ENVELOPE_VERSION);
const _: () = assert!(RECEIPT_VERSION_BYTE as u32 == RECEIPT_VERSION);

/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;
/// Length of a DHKEM(X25519) encapsulated key.
const ENCAPSULATED_KEY_LEN: usize = 32;
/// Length of an item id and of a key id.
const ID_LEN: usize = 16;
/// Length of a SHA-256 digest.
const DIGEST_LEN: usize = 32;

type HpkePublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// Header fields of an envelope (everything but `encapsulated_key` and `ciphertext`).
///
/// A parsed header has passed the field checks of [`Header::from_envelope`]; its encoding
/// ([`Header::encode`]) is both signed by the sender and the HPKE associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Agency id of the sender.
    pub sender: String,
    /// Agency id of the one recipient.
    pub recipient: String,
    /// Item id (a ULID).
    pub item_id: [u8; 16],
    /// Kind of the item inside.
    pub kind: pb::ItemKind,
    /// Creation time of the item, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Key id of the sender's Ed25519 signing key.
    pub sender_key_id: KeyId,
    /// Key id of the recipient's X25519 encryption key.
    pub recipient_key_id: KeyId,
}

impl Header {
    /// Parses and checks the clear header of `env`: the version first, then every field.
    pub fn from_envelope(env: &pb::Envelope) -> Result<Header, OpenError> {
        if env.version != ENVELOPE_VERSION {
            return Err(OpenError::UnsupportedVersion(env.version));
        }
        Ok(Header {
            sender: check_agency("sender", &env.sender)?,
            recipient: check_agency("recipient", &env.recipient)?,
            item_id: fixed("item_id", &env.item_id)?,
            kind: check_kind(env.kind)?,
            created_at_ms: env.created_at_ms,
            sender_key_id: KeyId(fixed("sender_key_id", &env.sender_key_id)?),
            recipient_key_id: KeyId(fixed("recipient_key_id", &env.recipient_key_id)?),
        })
    }

    /// The canonical bytes of the header: what the sender signs and the HPKE associated data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 2 * 34 + 16 + 4 + 8 + 2 * 16);
        out.push(ENVELOPE_VERSION_BYTE);
        put_str(&mut out, &self.sender);
        put_str(&mut out, &self.recipient);
        out.extend_from_slice(&self.item_id);
        out.extend_from_slice(&kind_number(self.kind).to_be_bytes());
        out.extend_from_slice(&self.created_at_ms.to_be_bytes());
        out.extend_from_slice(&self.sender_key_id.0);
        out.extend_from_slice(&self.recipient_key_id.0);
        out
    }

    fn into_envelope(self, encapsulated_key: Vec<u8>, ciphertext: Vec<u8>) -> pb::Envelope {
        pb::Envelope {
            version: ENVELOPE_VERSION,
            kind: self.kind as i32,
            sender: self.sender,
            recipient: self.recipient,
            item_id: self.item_id.to_vec(),
            created_at_ms: self.created_at_ms,
            sender_key_id: self.sender_key_id.0.to_vec(),
            recipient_key_id: self.recipient_key_id.0.to_vec(),
            encapsulated_key,
            ciphertext,
        }
    }
}

/// Why an envelope could not be sealed. These are caller errors, never peer input.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The recipient's registered encryption key is not a usable X25519 public key.
    #[error("the recipient's encryption key is not a usable X25519 public key")]
    BadRecipientKey,
    /// A header field cannot be encoded: which field and why.
    #[error("cannot seal: {0}")]
    InvalidHeader(String),
    /// HPKE encryption failed.
    #[error("HPKE encryption failed")]
    Encrypt,
}

/// Seals `payload` (the protobuf encoding of a [`pb::Item`]) from `sender` for one recipient.
///
/// `recipient` holds the keys registered for `recipient_agency`. The HPKE ephemeral key comes
/// from the operating system's random number generator (and the call panics only if that
/// generator fails, as every key generation in this crate does).
pub fn seal(
    sender: &Identity,
    recipient_agency: &str,
    recipient: &PublicKeys,
    item_id: [u8; 16],
    kind: pb::ItemKind,
    created_at_ms: i64,
    payload: &[u8],
) -> Result<pb::Envelope, SealError> {
    let header = seal_header(
        sender,
        recipient_agency,
        recipient,
        item_id,
        kind,
        created_at_ms,
    )?;
    sign_and_encrypt(
        &sender.signing,
        header,
        recipient,
        payload,
        seal_from_os_rng,
    )
}

/// Same as [`seal`] with a caller-supplied RNG for the HPKE ephemeral key (test vectors only:
/// a predictable RNG makes the envelope decryptable by whoever knows it).
// The argument list is `seal`'s plus the RNG, so that the two read the same at call sites.
#[allow(clippy::too_many_arguments)]
pub fn seal_with_rng(
    sender: &Identity,
    recipient_agency: &str,
    recipient: &PublicKeys,
    item_id: [u8; 16],
    kind: pb::ItemKind,
    created_at_ms: i64,
    payload: &[u8],
    rng: &mut impl rand_core::CryptoRng,
) -> Result<pb::Envelope, SealError> {
    let header = seal_header(
        sender,
        recipient_agency,
        recipient,
        item_id,
        kind,
        created_at_ms,
    )?;
    sign_and_encrypt(
        &sender.signing,
        header,
        recipient,
        payload,
        |pk, plaintext, aad| {
            hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, Kem>(
                &OpModeS::Base,
                pk,
                HPKE_INFO,
                plaintext,
                aad,
                rng,
            )
        },
    )
}

/// Seals `payload` under a header built by the caller, signed by `signer`, encrypted to
/// `recipient`.
///
/// Nothing checks that the header names `signer`'s key or `recipient`'s key: this exists so
/// that tests and the demonstration can build forged, misaddressed or replayed envelopes and
/// watch a receiver refuse them. Nodes seal with [`seal`]. Header fields that no receiver would
/// parse are still refused.
pub fn seal_with_header(
    header: Header,
    signer: &SigningKey,
    recipient: &PublicKeys,
    payload: &[u8],
) -> Result<pb::Envelope, SealError> {
    let invalid = |FieldError(reason)| SealError::InvalidHeader(reason);
    check_agency("sender", &header.sender).map_err(invalid)?;
    check_agency("recipient", &header.recipient).map_err(invalid)?;
    check_kind(header.kind as i32).map_err(invalid)?;
    sign_and_encrypt(signer, header, recipient, payload, seal_from_os_rng)
}

/// HPKE single-shot seal with an ephemeral key from the operating system's RNG.
fn seal_from_os_rng(
    public: &HpkePublicKey,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<(EncappedKey, Vec<u8>), HpkeError> {
    hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem>(
        &OpModeS::Base,
        public,
        HPKE_INFO,
        plaintext,
        aad,
    )
}

/// Builds the header of a new envelope, refusing what a receiver would refuse to parse.
fn seal_header(
    sender: &Identity,
    recipient_agency: &str,
    recipient: &PublicKeys,
    item_id: [u8; 16],
    kind: pb::ItemKind,
    created_at_ms: i64,
) -> Result<Header, SealError> {
    let invalid = |FieldError(reason)| SealError::InvalidHeader(reason);
    Ok(Header {
        sender: check_agency("sender", &sender.agency).map_err(invalid)?,
        recipient: check_agency("recipient", recipient_agency).map_err(invalid)?,
        item_id,
        kind: check_kind(kind as i32).map_err(invalid)?,
        created_at_ms,
        sender_key_id: sender.signing.key_id(),
        recipient_key_id: recipient.encryption_key_id(),
    })
}

/// Signs `header` and `payload`, then encrypts signature and payload with `encrypt`.
fn sign_and_encrypt(
    signer: &SigningKey,
    header: Header,
    recipient: &PublicKeys,
    payload: &[u8],
    encrypt: impl FnOnce(&HpkePublicKey, &[u8], &[u8]) -> Result<(EncappedKey, Vec<u8>), HpkeError>,
) -> Result<pb::Envelope, SealError> {
    let public = recipient
        .hpke_public()
        .map_err(|_| SealError::BadRecipientKey)?;
    let aad = header.encode();
    // The signing input holds a copy of the plaintext.
    let message = Zeroizing::new(signing_input(&aad, payload));
    let signature = signer.sign(&message);
    let mut plaintext = Zeroizing::new(Vec::with_capacity(SIGNATURE_LEN + payload.len()));
    plaintext.extend_from_slice(&signature);
    plaintext.extend_from_slice(payload);
    let (encapsulated, ciphertext) = encrypt(&public, &plaintext, &aad).map_err(|e| match e {
        // Encapsulation fails only on a low-order public key, whose shared secret is zero.
        HpkeError::EncapError => SealError::BadRecipientKey,
        _ => SealError::Encrypt,
    })?;
    Ok(header.into_envelope(encapsulated.to_bytes().to_vec(), ciphertext))
}

/// The opened, verified content of an envelope.
pub struct Opened {
    /// The checked header.
    pub header: Header,
    /// The decoded item; its body is a report whose kind is the header's.
    pub item: pb::Item,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The item is the secret the envelope protected: show its size, never its content.
        f.debug_struct("Opened")
            .field("header", &self.header)
            .field(
                "item",
                &format_args!("<{} bytes hidden>", self.item.encoded_len()),
            )
            .finish()
    }
}

/// Why an envelope was refused. Messages name the check that failed, never any content.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The envelope's format version is not [`ENVELOPE_VERSION`].
    #[error("envelope format version {0} is not supported (this node reads version 1)")]
    UnsupportedVersion(u32),
    /// A field is missing or malformed: which field and why.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope is addressed to another agency or to another encryption key.
    #[error("envelope is addressed to another agency or another encryption key")]
    WrongRecipient,
    /// The envelope names a signing key other than the sender's registered one.
    #[error("envelope names a signing key other than the sender's registered key")]
    UnknownKey,
    /// HPKE decryption failed: the ciphertext, the encapsulated key or the header was changed.
    #[error("envelope could not be decrypted")]
    Decrypt,
    /// The signature does not verify with the sender's registered signing key.
    #[error("envelope signature does not verify with the sender's registered key")]
    BadSignature,
    /// The body is missing, or is not of the kind the header names (a report of that kind,
    /// or a watchlist delta).
    #[error("item body is not of the kind named in the envelope")]
    KindMismatch,
}

impl OpenError {
    /// The refusal reason sent back to the sender for this error.
    pub fn reason(&self) -> pb::RefusalReason {
        match self {
            Self::UnsupportedVersion(_) => pb::RefusalReason::UnsupportedVersion,
            Self::Malformed(_) | Self::KindMismatch => pb::RefusalReason::Malformed,
            Self::WrongRecipient => pb::RefusalReason::WrongRecipient,
            Self::UnknownKey => pb::RefusalReason::UnknownKey,
            // One reason for both, so a sender cannot probe which step failed.
            Self::Decrypt | Self::BadSignature => pb::RefusalReason::BadSignature,
        }
    }
}

/// Opens an envelope received from the agency whose registered keys are `sender_keys`,
/// addressed to `me`.
///
/// The caller must already have checked that `env.sender` is the TLS peer and looked up
/// `sender_keys` under that agency id. The checks on the clear header come before any
/// decryption, and no plaintext leaves this function unless the signature verified.
pub fn open(
    me: &Identity,
    sender_keys: &PublicKeys,
    env: &pb::Envelope,
) -> Result<Opened, OpenError> {
    let header = Header::from_envelope(env)?;
    let encapsulated = parse_encapsulated_key(&env.encapsulated_key)?;
    check_addressing(me, sender_keys, &header)?;
    open_checked(
        header,
        &me.encryption,
        &sender_keys.signing,
        &encapsulated,
        env,
    )
}

/// Like [`open`], with the keys of both sides as they stand after key rotations: the
/// envelope may be sealed to this node's current encryption key or to one it retired
/// (chosen by the header's recipient key id), and signed by the sender's current signing
/// key or by one it retired after the item's creation time.
pub fn open_rotated(
    me: &OwnKeys,
    sender: &PartnerKeys,
    env: &pb::Envelope,
) -> Result<Opened, OpenError> {
    let header = Header::from_envelope(env)?;
    let encapsulated = parse_encapsulated_key(&env.encapsulated_key)?;
    if header.recipient != me.identity.agency {
        return Err(OpenError::WrongRecipient);
    }
    let decryption = me
        .decryption_key(header.recipient_key_id)
        .ok_or(OpenError::WrongRecipient)?;
    let signing = sender
        .signing_key(header.sender_key_id, header.created_at_ms)
        .ok_or(OpenError::UnknownKey)?;
    open_checked(header, decryption, &signing, &encapsulated, env)
}

/// Decrypts and verifies an envelope whose clear header passed the addressing checks.
fn open_checked(
    header: Header,
    decryption: &EncryptionKey,
    signing: &[u8; 32],
    encapsulated: &EncappedKey,
    env: &pb::Envelope,
) -> Result<Opened, OpenError> {
    let aad = header.encode();
    let plaintext = decrypt(decryption, encapsulated, &aad, &env.ciphertext)?;
    let payload = verify_signed(signing, &aad, &plaintext)?;
    let item = decode_item(&header, payload)?;
    Ok(Opened { header, item })
}

fn parse_encapsulated_key(bytes: &[u8]) -> Result<EncappedKey, OpenError> {
    if bytes.len() != ENCAPSULATED_KEY_LEN {
        return Err(OpenError::Malformed(format!(
            "encapsulated_key: expected {ENCAPSULATED_KEY_LEN} bytes, found {}",
            bytes.len()
        )));
    }
    EncappedKey::from_bytes(bytes)
        .map_err(|_| OpenError::Malformed("encapsulated_key: not an X25519 public key".into()))
}

/// The cheap checks: is this envelope for my key, and from the sender's registered key?
fn check_addressing(
    me: &Identity,
    sender_keys: &PublicKeys,
    header: &Header,
) -> Result<(), OpenError> {
    if header.recipient != me.agency || header.recipient_key_id != me.encryption.key_id() {
        return Err(OpenError::WrongRecipient);
    }
    if header.sender_key_id != sender_keys.signing_key_id() {
        return Err(OpenError::UnknownKey);
    }
    Ok(())
}

fn decrypt(
    key: &EncryptionKey,
    encapsulated: &EncappedKey,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
        &OpModeR::Base,
        key.hpke_private(),
        encapsulated,
        HPKE_INFO,
        ciphertext,
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| OpenError::Decrypt)
}

/// Splits the decrypted `signature || payload` and returns the payload once the signature
/// verifies.
fn verify_signed<'a>(
    signing: &[u8; 32],
    aad: &[u8],
    plaintext: &'a [u8],
) -> Result<&'a [u8], OpenError> {
    // A plaintext too short to hold a signature is simply not signed.
    let (signature, payload) = plaintext
        .split_at_checked(SIGNATURE_LEN)
        .ok_or(OpenError::BadSignature)?;
    let message = Zeroizing::new(signing_input(aad, payload));
    if identity::verify_signature(signing, &message, signature) {
        Ok(payload)
    } else {
        Err(OpenError::BadSignature)
    }
}

/// Decodes the signed payload and checks that it is a report of the header's kind.
fn decode_item(header: &Header, payload: &[u8]) -> Result<pb::Item, OpenError> {
    let item = pb::Item::decode(payload)
        .map_err(|_| OpenError::Malformed("payload: not a valid Item encoding".into()))?;
    // A body added by a later version of the schema decodes as no body, and is refused here.
    let agrees = match &item.body {
        Some(body @ pb::item::Body::Report(_)) => {
            crate::lifecycle::body_kind(body) == header.kind && is_report_kind(header.kind)
        }
        Some(body) => crate::lifecycle::body_kind(body) == header.kind,
        None => false,
    };
    if agrees {
        Ok(item)
    } else {
        Err(OpenError::KindMismatch)
    }
}

fn is_report_kind(kind: pb::ItemKind) -> bool {
    matches!(
        kind,
        pb::ItemKind::SuspiciousTransaction
            | pb::ItemKind::DenialNotification
            | pb::ItemKind::EnforcementAlert
    )
}

/// What the sender signs: label, header encoding, then the length-prefixed payload.
fn signing_input(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_LABEL.len() + header.len() + 8 + payload.len());
    out.extend_from_slice(SIGNATURE_LABEL);
    out.extend_from_slice(header);
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// SHA-256 digest of an envelope, as named in receipts.
///
/// It covers a label, the header encoding, and the length-prefixed encapsulated key and
/// ciphertext, not the protobuf bytes, which are not canonical. An envelope whose header does
/// not parse has no such digest; for it this returns a local-only digest of its protobuf
/// encoding under another label, so that a refusal can still be recorded under a stable name.
pub fn envelope_digest(env: &pb::Envelope) -> [u8; 32] {
    canonical_digest(env).unwrap_or_else(|| sha256(&[UNPARSED_DIGEST_LABEL, &env.encode_to_vec()]))
}

fn canonical_digest(env: &pb::Envelope) -> Option<[u8; 32]> {
    let header = Header::from_envelope(env).ok()?;
    let key_len = u32::try_from(env.encapsulated_key.len()).ok()?;
    let ciphertext_len = env.ciphertext.len() as u64;
    Some(sha256(&[
        DIGEST_LABEL,
        &header.encode(),
        &key_len.to_be_bytes(),
        &env.encapsulated_key,
        &ciphertext_len.to_be_bytes(),
        &env.ciphertext,
    ]))
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Why a receipt was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt's format version is not [`RECEIPT_VERSION`].
    #[error("receipt format version {0} is not supported (this node reads version 1)")]
    UnsupportedVersion(u32),
    /// The receipt names a receiver other than the partner it came from.
    #[error("receipt names a receiver other than the partner it came from")]
    WrongReceiver,
    /// The receipt is addressed to another sender.
    #[error("receipt is addressed to another sender")]
    WrongSender,
    /// The receipt names a signing key other than the receiver's registered one.
    #[error("receipt names a signing key other than the receiver's registered key")]
    UnknownKey,
    /// The signature does not verify with the receiver's registered signing key.
    #[error("receipt signature does not verify with the receiver's registered key")]
    BadSignature,
    /// An entry does not hold a 16-byte item id and a 32-byte envelope digest.
    #[error("receipt entry {index}: {reason}")]
    MalformedEntry {
        /// Position of the entry in the receipt.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Signs, as `me`, a receipt for `sender_agency` naming the items in `entries`.
///
/// Each entry must hold a 16-byte item id and the 32-byte [`envelope_digest`] of the stored
/// envelope; a receipt with any other entry is refused by [`verify_receipt`].
pub fn sign_receipt(
    me: &Identity,
    sender_agency: &str,
    issued_at_ms: i64,
    entries: Vec<pb::ReceiptEntry>,
) -> pb::Receipt {
    let mut receipt = pb::Receipt {
        version: RECEIPT_VERSION,
        receiver: me.agency.clone(),
        sender: sender_agency.to_owned(),
        issued_at_ms,
        entries,
        receiver_key_id: me.signing.key_id().0.to_vec(),
        signature: Vec::new(),
    };
    receipt.signature = me.signing.sign(&receipt_signing_input(&receipt)).to_vec();
    receipt
}

/// Checks that `receipt` was signed by `expected_receiver` with its registered key
/// (`receiver_keys`) and is addressed to `expected_sender` (this node).
pub fn verify_receipt(
    receipt: &pb::Receipt,
    expected_receiver: &str,
    receiver_keys: &PublicKeys,
    expected_sender: &str,
) -> Result<(), ReceiptError> {
    let key_id = receiver_keys.signing_key_id();
    verify_receipt_with(receipt, expected_receiver, expected_sender, |id, _| {
        (id == key_id).then_some(receiver_keys.signing)
    })
}

/// Like [`verify_receipt`], with the receiver's keys as they stand after key rotations:
/// its current signing key, or one it retired after the receipt was issued.
pub fn verify_receipt_rotated(
    receipt: &pb::Receipt,
    expected_receiver: &str,
    receiver: &PartnerKeys,
    expected_sender: &str,
) -> Result<(), ReceiptError> {
    verify_receipt_with(receipt, expected_receiver, expected_sender, |id, at| {
        receiver.signing_key(id, at)
    })
}

fn verify_receipt_with(
    receipt: &pb::Receipt,
    expected_receiver: &str,
    expected_sender: &str,
    signing_key: impl Fn(KeyId, i64) -> Option<[u8; 32]>,
) -> Result<(), ReceiptError> {
    if receipt.version != RECEIPT_VERSION {
        return Err(ReceiptError::UnsupportedVersion(receipt.version));
    }
    if receipt.receiver != expected_receiver {
        return Err(ReceiptError::WrongReceiver);
    }
    if receipt.sender != expected_sender {
        return Err(ReceiptError::WrongSender);
    }
    let key = KeyId::from_slice(&receipt.receiver_key_id)
        .and_then(|id| signing_key(id, receipt.issued_at_ms))
        .ok_or(ReceiptError::UnknownKey)?;
    check_entries(&receipt.entries)?;
    let message = receipt_signing_input(receipt);
    if identity::verify_signature(&key, &message, &receipt.signature) {
        Ok(())
    } else {
        Err(ReceiptError::BadSignature)
    }
}

fn check_entries(entries: &[pb::ReceiptEntry]) -> Result<(), ReceiptError> {
    for (index, entry) in entries.iter().enumerate() {
        let reason = if entry.item_id.len() != ID_LEN {
            "item_id must be 16 bytes"
        } else if entry.envelope_digest.len() != DIGEST_LEN {
            "envelope_digest must be 32 bytes"
        } else {
            continue;
        };
        return Err(ReceiptError::MalformedEntry { index, reason });
    }
    Ok(())
}

/// What the receiver signs. Entries are written as they are: [`verify_receipt`] checks their
/// lengths first, so only well-formed entries are ever verified against this encoding.
fn receipt_signing_input(receipt: &pb::Receipt) -> Vec<u8> {
    let entries = &receipt.entries;
    let mut out = Vec::with_capacity(RECEIPT_LABEL.len() + 100 + entries.len() * 48);
    out.extend_from_slice(RECEIPT_LABEL);
    out.push(RECEIPT_VERSION_BYTE);
    put_str(&mut out, &receipt.receiver);
    out.extend_from_slice(&receipt.receiver_key_id);
    put_str(&mut out, &receipt.sender);
    out.extend_from_slice(&receipt.issued_at_ms.to_be_bytes());
    // More than u32::MAX entries would need a message of hundreds of GiB, far past any
    // transport limit; saturating keeps this function total.
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        out.extend_from_slice(&entry.item_id);
        out.extend_from_slice(&entry.envelope_digest);
    }
    out
}

/// Writes `s` as a u16 big-endian length and its UTF-8 bytes.
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Agency ids are checked to be 2 to 32 bytes before anything is sealed or opened; the
    // clamp only keeps the encoding self-delimiting for a hand-built value that skipped it.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// The proto enum number of `kind`, as written in the header.
fn kind_number(kind: pb::ItemKind) -> u32 {
    // Proto enum numbers of `ItemKind` are all non-negative.
    kind as i32 as u32
}

/// A header field that a receiver would refuse: which field and why, never its value.
struct FieldError(String);

impl From<FieldError> for OpenError {
    fn from(FieldError(reason): FieldError) -> Self {
        OpenError::Malformed(reason)
    }
}

fn check_agency(field: &str, id: &str) -> Result<String, FieldError> {
    identity::validate_agency_id(id)
        .map(|()| id.to_owned())
        .map_err(|_| {
            FieldError(format!(
                "{field}: not an agency id (2 to 32 upper-case letters, digits and '-')"
            ))
        })
}

fn check_kind(raw: i32) -> Result<pb::ItemKind, FieldError> {
    match pb::ItemKind::try_from(raw) {
        Ok(pb::ItemKind::Unspecified) => Err(FieldError("kind: unspecified".into())),
        Ok(kind) => Ok(kind),
        Err(_) => Err(FieldError(format!("kind: unknown value {raw}"))),
    }
}

fn fixed<const N: usize>(field: &str, bytes: &[u8]) -> Result<[u8; N], FieldError> {
    bytes.try_into().map_err(|_| {
        FieldError(format!(
            "{field}: expected {N} bytes, found {}",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{EncryptionKey, SigningKey};

    const ITEM_ID: [u8; 16] = [
        0x01, 0x97, 0x5a, 0x3c, 0x4e, 0x21, 0x7b, 0x88, 9, 10, 11, 12, 13, 14, 15, 16,
    ];
    const CREATED_AT_MS: i64 = 1_750_000_000_000;

    fn identity(agency: &str, seed: u8) -> Identity {
        Identity {
            agency: agency.to_owned(),
            signing: SigningKey::from_seed(&[seed; 32]),
            encryption: EncryptionKey::derive(&[seed; 32]),
        }
    }

    fn report_item(kind: pb::ItemKind) -> pb::Item {
        pb::Item {
            body: Some(pb::item::Body::Report(pb::Report {
                kind: kind as i32,
                title: "Frequency changers declared as pump controllers".into(),
                narrative: "Consignee declined installation support.".into(),
                ..Default::default()
            })),
            originator: String::new(),
        }
    }

    fn seal_report(
        from: &Identity,
        to: &Identity,
        kind: pb::ItemKind,
        item: &pb::Item,
    ) -> pb::Envelope {
        let payload = item.encode_to_vec();
        seal(
            from,
            &to.agency,
            &to.public_keys(),
            ITEM_ID,
            kind,
            CREATED_AT_MS,
            &payload,
        )
        .expect("sealing a valid item")
    }

    /// US-BIS seals a denial notification for DE-BAFA.
    fn sealed() -> (Identity, Identity, pb::Envelope) {
        let (us, de) = (identity("US-BIS", 1), identity("DE-BAFA", 2));
        let kind = pb::ItemKind::DenialNotification;
        let env = seal_report(&us, &de, kind, &report_item(kind));
        (us, de, env)
    }

    fn open_err(me: &Identity, from: &Identity, env: &pb::Envelope) -> OpenError {
        open(me, &from.public_keys(), env).expect_err("the envelope must be refused")
    }

    #[test]
    fn a_sealed_envelope_opens_to_the_same_header_and_item() {
        let (us, de, env) = sealed();
        let opened = open(&de, &us.public_keys(), &env).expect("opens");
        assert_eq!(opened.item, report_item(pb::ItemKind::DenialNotification));
        assert_eq!(opened.header, Header::from_envelope(&env).expect("parses"));
        assert_eq!(opened.header.sender, "US-BIS");
        assert_eq!(opened.header.recipient, "DE-BAFA");
        assert_eq!(opened.header.item_id, ITEM_ID);
        assert_eq!(opened.header.created_at_ms, CREATED_AT_MS);
        assert_eq!(opened.header.sender_key_id, us.signing.key_id());
        assert_eq!(opened.header.recipient_key_id, de.encryption.key_id());
        assert_eq!(env.encapsulated_key.len(), ENCAPSULATED_KEY_LEN);
    }

    #[test]
    fn two_seals_of_the_same_item_use_fresh_ephemeral_keys() {
        let (us, de, first) = sealed();
        let second = seal_report(
            &us,
            &de,
            pb::ItemKind::DenialNotification,
            &report_item(pb::ItemKind::DenialNotification),
        );
        assert_ne!(first.encapsulated_key, second.encapsulated_key);
        assert_ne!(envelope_digest(&first), envelope_digest(&second));
    }

    #[test]
    fn a_changed_sender_item_id_kind_or_time_fails_decryption() {
        let (us, de, env) = sealed();
        let tampered: [fn(&mut pb::Envelope); 4] = [
            |e| e.sender = "FR-DGDDI".into(),
            |e| e.item_id[15] ^= 1,
            |e| e.kind = pb::ItemKind::EnforcementAlert as i32,
            |e| e.created_at_ms += 1,
        ];
        for tamper in tampered {
            let mut env = env.clone();
            tamper(&mut env);
            assert!(matches!(open_err(&de, &us, &env), OpenError::Decrypt));
        }
    }

    #[test]
    fn a_changed_recipient_is_refused_before_decryption() {
        let (us, de, mut env) = sealed();
        env.recipient = "JP-METI".into();
        assert!(matches!(
            open_err(&de, &us, &env),
            OpenError::WrongRecipient
        ));
    }

    #[test]
    fn a_changed_ciphertext_or_encapsulated_key_fails_decryption() {
        let (us, de, env) = sealed();
        let mut changed = env.clone();
        changed.ciphertext[70] ^= 0x80;
        assert!(matches!(open_err(&de, &us, &changed), OpenError::Decrypt));
        let mut changed = env.clone();
        changed.ciphertext.truncate(10);
        assert!(matches!(open_err(&de, &us, &changed), OpenError::Decrypt));
        let mut changed = env;
        changed.encapsulated_key[0] ^= 1;
        assert!(matches!(open_err(&de, &us, &changed), OpenError::Decrypt));
    }

    #[test]
    fn an_envelope_for_another_node_is_refused() {
        let (us, _de, env) = sealed();
        let jp = identity("JP-METI", 3);
        assert!(matches!(
            open_err(&jp, &us, &env),
            OpenError::WrongRecipient
        ));
        // Same agency id, but the node has since rotated its encryption key.
        let rotated = identity("DE-BAFA", 4);
        assert!(matches!(
            open_err(&rotated, &us, &env),
            OpenError::WrongRecipient
        ));
    }

    #[test]
    fn an_envelope_signed_by_an_unregistered_key_is_refused() {
        let (_us, de, env) = sealed();
        let impostor = identity("US-BIS", 9);
        assert!(matches!(
            open_err(&de, &impostor, &env),
            OpenError::UnknownKey
        ));
    }

    #[test]
    fn a_spoofed_key_id_with_another_key_s_signature_is_refused() {
        // Anyone can encrypt to DE-BAFA; the impostor names US-BIS's key id but signs with
        // its own key.
        let (us, de, env) = sealed();
        let header = Header::from_envelope(&env).expect("parses");
        let impostor = SigningKey::from_seed(&[9; 32]);
        let payload = report_item(pb::ItemKind::DenialNotification).encode_to_vec();
        let forged = seal_with_header(header, &impostor, &de.public_keys(), &payload);
        let forged = forged.expect("seals");
        assert!(matches!(
            open_err(&de, &us, &forged),
            OpenError::BadSignature
        ));
    }

    #[test]
    fn seal_with_header_and_the_right_key_matches_seal() {
        let (us, de, env) = sealed();
        let header = Header::from_envelope(&env).expect("parses");
        let payload = report_item(pb::ItemKind::DenialNotification).encode_to_vec();
        let resealed = seal_with_header(header, &us.signing, &de.public_keys(), &payload);
        let opened = open(&de, &us.public_keys(), &resealed.expect("seals")).expect("opens");
        assert_eq!(opened.header, Header::from_envelope(&env).expect("parses"));
    }

    #[test]
    fn a_recipient_cannot_forward_a_genuine_item_as_if_addressed_to_a_third_party() {
        // DE-BAFA decrypts what US-BIS sent it and re-encrypts the signed plaintext to JP-METI
        // under a header naming JP-METI; the signature still names DE-BAFA.
        let (us, de, env) = sealed();
        let jp = identity("JP-METI", 3);
        let header = Header::from_envelope(&env).expect("parses");
        let signed = decrypt(
            &de.encryption,
            &parse_encapsulated_key(&env.encapsulated_key).expect("key"),
            &header.encode(),
            &env.ciphertext,
        )
        .expect("decrypts");
        let forged = Header {
            recipient: jp.agency.clone(),
            recipient_key_id: jp.encryption.key_id(),
            ..header
        };
        let aad = forged.encode();
        let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem>(
            &OpModeS::Base,
            &jp.public_keys().hpke_public().expect("key"),
            HPKE_INFO,
            &signed,
            &aad,
        )
        .expect("seals");
        let forwarded = forged.into_envelope(enc.to_bytes().to_vec(), ciphertext);
        assert!(matches!(
            open_err(&jp, &us, &forwarded),
            OpenError::BadSignature
        ));
    }

    #[test]
    fn an_unknown_version_is_refused_before_anything_else() {
        let (us, de, mut env) = sealed();
        env.version = 2;
        env.item_id.clear();
        let err = open_err(&de, &us, &env);
        assert!(matches!(err, OpenError::UnsupportedVersion(2)));
        assert_eq!(err.reason(), pb::RefusalReason::UnsupportedVersion);
    }

    #[test]
    fn malformed_header_fields_are_named() {
        let (us, de, env) = sealed();
        type Case = (fn(&mut pb::Envelope), &'static str);
        let cases: [Case; 6] = [
            (|e| e.sender = "us-bis".into(), "sender:"),
            (|e| e.recipient = "X".into(), "recipient:"),
            (
                |e| e.item_id.push(0),
                "item_id: expected 16 bytes, found 17",
            ),
            (|e| e.kind = 0, "kind: unspecified"),
            (|e| e.kind = 99, "kind: unknown value 99"),
            (
                |e| e.encapsulated_key.pop().map_or((), drop),
                "encapsulated_key: expected 32",
            ),
        ];
        for (tamper, expected) in cases {
            let mut env = env.clone();
            tamper(&mut env);
            match open_err(&de, &us, &env) {
                OpenError::Malformed(why) => assert!(why.starts_with(expected), "{why}"),
                other => panic!("expected Malformed({expected}), got {other:?}"),
            }
        }
    }

    #[test]
    fn a_body_that_disagrees_with_the_header_kind_is_refused() {
        let (us, de) = (identity("US-BIS", 1), identity("DE-BAFA", 2));
        let cases = [
            (
                pb::ItemKind::EnforcementAlert,
                report_item(pb::ItemKind::DenialNotification),
            ),
            (
                pb::ItemKind::WatchlistDelta,
                report_item(pb::ItemKind::WatchlistDelta),
            ),
            (
                pb::ItemKind::SuspiciousTransaction,
                pb::Item {
                    body: None,
                    originator: String::new(),
                },
            ),
        ];
        for (kind, item) in cases {
            let env = seal_report(&us, &de, kind, &item);
            let err = open_err(&de, &us, &env);
            assert!(matches!(err, OpenError::KindMismatch), "{kind:?}: {err:?}");
            assert_eq!(err.reason(), pb::RefusalReason::Malformed);
        }
    }

    #[test]
    fn a_signed_payload_that_is_not_an_item_is_malformed() {
        let (us, de) = (identity("US-BIS", 1), identity("DE-BAFA", 2));
        let kind = pb::ItemKind::SuspiciousTransaction;
        let env = seal(
            &us,
            &de.agency,
            &de.public_keys(),
            ITEM_ID,
            kind,
            0,
            &[0xff; 8],
        )
        .expect("seals");
        assert!(matches!(open_err(&de, &us, &env), OpenError::Malformed(_)));
    }

    #[test]
    fn seal_refuses_headers_a_receiver_would_refuse() {
        let (us, de) = (identity("US-BIS", 1), identity("DE-BAFA", 2));
        let keys = de.public_keys();
        let kind = pb::ItemKind::SuspiciousTransaction;
        let bad_recipient = seal(&us, "de-bafa", &keys, ITEM_ID, kind, 0, b"");
        assert!(matches!(bad_recipient, Err(SealError::InvalidHeader(_))));
        let unspecified = seal(
            &us,
            "DE-BAFA",
            &keys,
            ITEM_ID,
            pb::ItemKind::Unspecified,
            0,
            b"",
        );
        assert!(matches!(unspecified, Err(SealError::InvalidHeader(_))));
        let low_order = PublicKeys {
            encryption: [0; 32],
            ..keys
        };
        let err = seal(&us, "DE-BAFA", &low_order, ITEM_ID, kind, 0, b"");
        assert!(matches!(err, Err(SealError::BadRecipientKey)), "{err:?}");
    }

    #[test]
    fn refusal_reasons_do_not_tell_decryption_from_signature_failures() {
        assert_eq!(
            OpenError::Decrypt.reason(),
            OpenError::BadSignature.reason()
        );
        assert_eq!(
            OpenError::WrongRecipient.reason(),
            pb::RefusalReason::WrongRecipient
        );
        assert_eq!(
            OpenError::UnknownKey.reason(),
            pb::RefusalReason::UnknownKey
        );
    }

    #[test]
    fn debug_output_of_an_opened_item_hides_its_content() {
        let (us, de, env) = sealed();
        let opened = open(&de, &us.public_keys(), &env).expect("opens");
        let shown = format!("{opened:?}");
        assert!(shown.contains("hidden"), "{shown}");
        assert!(!shown.contains("Frequency changers"), "{shown}");
        assert!(!shown.contains("declined"), "{shown}");
    }

    #[test]
    fn the_digest_covers_every_part_of_the_envelope() {
        let (_, _, env) = sealed();
        let digest = envelope_digest(&env);
        assert_eq!(digest, envelope_digest(&env.clone()));
        let changes: [fn(&mut pb::Envelope); 4] = [
            |e| e.created_at_ms -= 1,
            |e| e.encapsulated_key[31] ^= 1,
            |e| e.ciphertext[0] ^= 1,
            |e| e.version = 7,
        ];
        for change in changes {
            let mut env = env.clone();
            change(&mut env);
            assert_ne!(envelope_digest(&env), digest);
        }
    }

    fn entries(n: u8) -> Vec<pb::ReceiptEntry> {
        (0..n)
            .map(|i| pb::ReceiptEntry {
                item_id: vec![i; 16],
                envelope_digest: vec![i ^ 0x5a; 32],
            })
            .collect()
    }

    #[test]
    fn a_signed_receipt_verifies() {
        let de = identity("DE-BAFA", 2);
        let receipt = sign_receipt(&de, "US-BIS", CREATED_AT_MS, entries(3));
        verify_receipt(&receipt, "DE-BAFA", &de.public_keys(), "US-BIS").expect("verifies");
    }

    #[test]
    fn any_change_to_a_receipt_is_refused() {
        let de = identity("DE-BAFA", 2);
        let keys = de.public_keys();
        let receipt = sign_receipt(&de, "US-BIS", CREATED_AT_MS, entries(3));
        let check =
            |r: &pb::Receipt| verify_receipt(r, "DE-BAFA", &keys, "US-BIS").expect_err("refused");
        let bad_signature: [fn(&mut pb::Receipt); 6] = [
            |r| r.entries[1].envelope_digest[0] ^= 1,
            |r| r.entries[2].item_id[15] ^= 1,
            |r| r.entries.swap(0, 1),
            |r| drop(r.entries.pop()),
            |r| r.issued_at_ms += 1,
            |r| r.signature[0] ^= 1,
        ];
        for change in bad_signature {
            let mut r = receipt.clone();
            change(&mut r);
            assert!(matches!(check(&r), ReceiptError::BadSignature));
        }
        let mut r = receipt.clone();
        r.receiver = "JP-METI".into();
        assert!(matches!(check(&r), ReceiptError::WrongReceiver));
        let mut r = receipt.clone();
        r.sender = "JP-METI".into();
        assert!(matches!(check(&r), ReceiptError::WrongSender));
        let mut r = receipt.clone();
        r.version = 2;
        assert!(matches!(check(&r), ReceiptError::UnsupportedVersion(2)));
        let mut r = receipt.clone();
        r.receiver_key_id[0] ^= 1;
        assert!(matches!(check(&r), ReceiptError::UnknownKey));
        let mut r = receipt;
        r.entries[1].envelope_digest.pop();
        assert!(matches!(
            check(&r),
            ReceiptError::MalformedEntry { index: 1, .. }
        ));
    }

    #[test]
    fn a_receipt_signed_by_another_key_is_refused() {
        let de = identity("DE-BAFA", 2);
        let impostor = identity("DE-BAFA", 8);
        let mut receipt = sign_receipt(&impostor, "US-BIS", CREATED_AT_MS, entries(1));
        let keys = de.public_keys();
        let err = verify_receipt(&receipt, "DE-BAFA", &keys, "US-BIS").expect_err("refused");
        assert!(matches!(err, ReceiptError::UnknownKey));
        receipt.receiver_key_id = keys.signing_key_id().0.to_vec();
        let err = verify_receipt(&receipt, "DE-BAFA", &keys, "US-BIS").expect_err("refused");
        assert!(matches!(err, ReceiptError::BadSignature));
    }
}
