//! Test vectors for the envelope and receipt formats (`tests/vectors/envelope-v1.json`).
//!
//! Every expected value in the vector file is recomputed here: the byte encodings by hand,
//! independently of `entente::envelope`, and the cryptographic outputs with the library. The
//! test also checks that every hex value of the file is quoted in `docs/envelope.md`, so that
//! the specification and the vectors cannot drift apart.
//!
//! The vector file was generated once by `write_vectors` below
//! (`cargo test --test envelope_vectors -- --ignored write_vectors`); regenerate it only when
//! the format version changes, and update the document with it.

use std::{convert::Infallible, path::Path};

use entente::{
    envelope::{self, ENVELOPE_VERSION},
    identity::{self, EncryptionKey, Identity, SigningKey},
    pb,
};
use hpke::{Deserializable as _, Serializable as _};
use prost::Message as _;
use ring::digest;
use serde_json::{Value, json};

const VECTORS: &str = include_str!("vectors/envelope-v1.json");
const DOC: &str = include_str!("../docs/envelope.md");

/// DER prefix of a PKCS#8 v1 X25519 private key (RFC 8410 §7), followed by the raw key.
const X25519_PKCS8_PREFIX: &str = "302e020100300506032b656e04220420";

/// An RNG that yields fixed bytes, so that the HPKE ephemeral key of the vector is known.
struct FixedRng {
    bytes: Vec<u8>,
}

impl rand_core::TryRng for FixedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut buf = [0; 4];
        self.try_fill_bytes(&mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut buf = [0; 8];
        self.try_fill_bytes(&mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(
            dst.len() <= self.bytes.len(),
            "the fixed randomness ran out"
        );
        let rest = self.bytes.split_off(dst.len());
        dst.copy_from_slice(&self.bytes);
        self.bytes = rest;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}

/// The parsed vector file.
struct Vectors {
    envelope: Value,
    receipt: Value,
}

fn vectors() -> Vectors {
    let mut all: Value = serde_json::from_str(VECTORS).expect("vector file is JSON");
    Vectors {
        envelope: all["envelope"].take(),
        receipt: all["receipt"].take(),
    }
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    let text = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string"));
    hex::decode(text).unwrap_or_else(|e| panic!("{field} is hex: {e}"))
}

fn array<const N: usize>(v: &Value, field: &str) -> [u8; N] {
    bytes(v, field)
        .try_into()
        .unwrap_or_else(|_| panic!("{field} is {N} bytes"))
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string"))
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is an integer"))
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// Writes `s` as the encodings do: u16 big-endian length, then the UTF-8 bytes.
fn len16(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

fn sender(v: &Value) -> Identity {
    Identity {
        agency: text(v, "sender").to_owned(),
        signing: SigningKey::from_seed(&array(v, "sender_signing_seed")),
        // The sender's encryption key plays no part in sealing.
        encryption: EncryptionKey::derive(b"unused"),
    }
}

fn recipient(v: &Value, receipt: &Value) -> Identity {
    Identity {
        agency: text(v, "recipient").to_owned(),
        signing: SigningKey::from_seed(&array(receipt, "receiver_signing_seed")),
        encryption: EncryptionKey::derive(&bytes(v, "recipient_encryption_ikm")),
    }
}

fn kind(v: &Value) -> pb::ItemKind {
    let number = i32::try_from(int(v, "kind")).expect("kind fits an i32");
    pb::ItemKind::try_from(number).expect("kind is an ItemKind")
}

/// The envelope exactly as recorded in the vector file.
fn recorded_envelope(v: &Value) -> pb::Envelope {
    pb::Envelope {
        version: ENVELOPE_VERSION,
        sender: text(v, "sender").to_owned(),
        recipient: text(v, "recipient").to_owned(),
        item_id: bytes(v, "item_id"),
        kind: int(v, "kind") as i32,
        created_at_ms: int(v, "created_at_ms"),
        sender_key_id: bytes(v, "sender_key_id"),
        recipient_key_id: bytes(v, "recipient_key_id"),
        encapsulated_key: bytes(v, "encapsulated_key"),
        ciphertext: bytes(v, "ciphertext"),
    }
}

fn seal_vector(v: &Value) -> pb::Envelope {
    let recipient_keys = identity::PublicKeys {
        signing: [0; 32],
        encryption: array(v, "recipient_encryption_public"),
    };
    let mut rng = FixedRng {
        bytes: bytes(v, "hpke_ephemeral_ikm"),
    };
    envelope::seal_with_rng(
        &sender(v),
        text(v, "recipient"),
        &recipient_keys,
        array(v, "item_id"),
        kind(v),
        int(v, "created_at_ms"),
        &bytes(v, "payload"),
        &mut rng,
    )
    .expect("the vector seals")
}

#[test]
fn the_vector_keys_derive_from_the_vector_secrets() {
    let Vectors {
        envelope: v,
        receipt: r,
    } = vectors();
    let signing = SigningKey::from_seed(&array(&v, "sender_signing_seed"));
    assert_eq!(
        signing.public().to_vec(),
        bytes(&v, "sender_signing_public")
    );
    assert_eq!(signing.key_id().0.to_vec(), bytes(&v, "sender_key_id"));

    let derived = EncryptionKey::derive(&bytes(&v, "recipient_encryption_ikm"));
    let private = derived.hpke_private().to_bytes().to_vec();
    assert_eq!(private, bytes(&v, "recipient_encryption_private"));
    let mut pkcs8 = hex::decode(X25519_PKCS8_PREFIX).expect("hex");
    pkcs8.extend_from_slice(&private);
    let loaded = EncryptionKey::from_pkcs8(&pkcs8).expect("raw private key loads");
    assert_eq!(
        loaded.public().to_vec(),
        bytes(&v, "recipient_encryption_public")
    );
    assert_eq!(derived.key_id().0.to_vec(), bytes(&v, "recipient_key_id"));

    let receiver = SigningKey::from_seed(&array(&r, "receiver_signing_seed"));
    assert_eq!(
        receiver.public().to_vec(),
        bytes(&r, "receiver_signing_public")
    );
    assert_eq!(receiver.key_id().0.to_vec(), bytes(&r, "receiver_key_id"));
}

#[test]
fn the_key_ids_are_built_as_documented() {
    let v = vectors().envelope;
    let mut input = b"entente/v1/key-id\0ed25519\0".to_vec();
    input.extend(bytes(&v, "sender_signing_public"));
    assert_eq!(sha256(&input)[..16], bytes(&v, "sender_key_id"));
    let mut input = b"entente/v1/key-id\0x25519\0".to_vec();
    input.extend(bytes(&v, "recipient_encryption_public"));
    assert_eq!(sha256(&input)[..16], bytes(&v, "recipient_key_id"));
}

#[test]
fn the_header_encoding_is_built_as_documented() {
    let v = vectors().envelope;
    let mut expected = vec![1u8];
    expected.extend(len16(text(&v, "sender")));
    expected.extend(len16(text(&v, "recipient")));
    expected.extend(bytes(&v, "item_id"));
    expected.extend((int(&v, "kind") as u32).to_be_bytes());
    expected.extend(int(&v, "created_at_ms").to_be_bytes());
    expected.extend(bytes(&v, "sender_key_id"));
    expected.extend(bytes(&v, "recipient_key_id"));
    assert_eq!(hex::encode(&expected), text(&v, "header"));

    let header = envelope::Header::from_envelope(&recorded_envelope(&v)).expect("parses");
    assert_eq!(hex::encode(header.encode()), text(&v, "header"));
}

#[test]
fn the_signature_covers_the_documented_signing_input() {
    let v = vectors().envelope;
    let payload = bytes(&v, "payload");
    let mut input = b"entente/v1/envelope\0".to_vec();
    input.extend(bytes(&v, "header"));
    input.extend((payload.len() as u64).to_be_bytes());
    input.extend(&payload);
    assert_eq!(
        hex::encode(sha256(&input)),
        text(&v, "signing_input_sha256")
    );

    // Ed25519 is deterministic (RFC 8032 §5.1.6), so the seed fixes the signature.
    let signing = SigningKey::from_seed(&array(&v, "sender_signing_seed"));
    assert_eq!(hex::encode(signing.sign(&input)), text(&v, "signature"));
    let public = array(&v, "sender_signing_public");
    assert!(identity::verify_signature(
        &public,
        &input,
        &bytes(&v, "signature")
    ));
}

#[test]
fn sealing_with_the_vector_randomness_reproduces_the_envelope() {
    let v = vectors().envelope;
    let sealed = seal_vector(&v);
    assert_eq!(sealed, recorded_envelope(&v));
    assert_eq!(
        hex::encode(&sealed.encapsulated_key),
        text(&v, "encapsulated_key")
    );
    assert_eq!(hex::encode(&sealed.ciphertext), text(&v, "ciphertext"));
}

#[test]
fn the_ciphertext_decrypts_to_the_signature_and_the_payload() {
    let v = vectors().envelope;
    let private = <identity::Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes(
        &v,
        "recipient_encryption_private",
    ))
    .expect("private key");
    let encapsulated =
        <identity::Kem as hpke::Kem>::EncappedKey::from_bytes(&bytes(&v, "encapsulated_key"))
            .expect("encapsulated key");
    let plaintext =
        hpke::single_shot_open::<hpke::aead::AesGcm256, hpke::kdf::HkdfSha256, identity::Kem>(
            &hpke::OpModeR::Base,
            &private,
            &encapsulated,
            b"entente/v1/envelope-hpke",
            &bytes(&v, "ciphertext"),
            &bytes(&v, "header"),
        )
        .expect("decrypts");
    let mut expected = bytes(&v, "signature");
    expected.extend(bytes(&v, "payload"));
    assert_eq!(plaintext, expected);
}

/// HPKE suite ids (RFC 9180 §4.1, §5.1): DHKEM(X25519, HKDF-SHA256) = 0x0020,
/// HKDF-SHA256 = 0x0001, AES-256-GCM = 0x0002.
const KEM_SUITE_ID: &[u8] = b"KEM\x00\x20";
const HPKE_SUITE_ID: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x02";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx =
        ring::hmac::Context::with_key(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key));
    parts.iter().for_each(|part| ctx.update(part));
    ctx.sign().as_ref().to_vec()
}

/// RFC 9180 §4 LabeledExtract (HKDF-Extract is HMAC keyed with the salt).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Vec<u8> {
    hmac_sha256(salt, &[b"HPKE-v1", suite, label, ikm])
}

/// RFC 9180 §4 LabeledExpand, for outputs of one HKDF-Expand block (at most 32 bytes).
fn labeled_expand(suite: &[u8], prk: &[u8], label: &[u8], info: &[u8], len: u16) -> Vec<u8> {
    let okm = hmac_sha256(
        prk,
        &[&len.to_be_bytes(), b"HPKE-v1", suite, label, info, &[1]],
    );
    okm[..usize::from(len)].to_vec()
}

/// RFC 9180 §5.1 KeySchedule in base mode: the AEAD key and base nonce.
fn key_schedule(shared_secret: &[u8], info: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut context = vec![0u8]; // mode_base
    context.extend(labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b""));
    context.extend(labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info));
    let secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"");
    let key = labeled_expand(HPKE_SUITE_ID, &secret, b"key", &context, 32);
    let base_nonce = labeled_expand(HPKE_SUITE_ID, &secret, b"base_nonce", &context, 12);
    (key, base_nonce)
}

/// The KEM shared secret, from the hpke crate's DHKEM (a hidden but public trait method).
fn shared_secret(v: &Value) -> Vec<u8> {
    let private = <identity::Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes(
        v,
        "recipient_encryption_private",
    ))
    .expect("private key");
    let encapsulated =
        <identity::Kem as hpke::Kem>::EncappedKey::from_bytes(&bytes(v, "encapsulated_key"))
            .expect("encapsulated key");
    let secret = <identity::Kem as hpke::Kem>::decap(&private, None, &encapsulated).expect("decap");
    secret.0.to_vec()
}

#[test]
fn the_recipient_key_pair_is_rfc_9180_derive_key_pair() {
    // RFC 9180 §7.1.3 for X25519, then the clamping of SerializePrivateKey (§7.1.2).
    let v = vectors().envelope;
    let ikm = bytes(&v, "recipient_encryption_ikm");
    let prk = labeled_extract(KEM_SUITE_ID, b"", b"dkp_prk", &ikm);
    let mut private = labeled_expand(KEM_SUITE_ID, &prk, b"sk", b"", 32);
    private[0] &= 248;
    private[31] = (private[31] & 127) | 64;
    assert_eq!(
        hex::encode(private),
        text(&v, "recipient_encryption_private")
    );
}

#[test]
fn the_hpke_key_schedule_is_rfc_9180_base_mode() {
    let v = vectors().envelope;
    assert_eq!(
        hex::encode(shared_secret(&v)),
        text(&v, "hpke_shared_secret")
    );
    let (key, base_nonce) = key_schedule(
        &bytes(&v, "hpke_shared_secret"),
        b"entente/v1/envelope-hpke",
    );
    assert_eq!(hex::encode(&key), text(&v, "hpke_key"));
    assert_eq!(hex::encode(&base_nonce), text(&v, "hpke_base_nonce"));

    // The one message of the context uses sequence number 0, so its nonce is the base nonce.
    let aead = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key).expect("AES-256 key"),
    );
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(&base_nonce).expect("nonce");
    let mut buffer = bytes(&v, "ciphertext");
    let header = bytes(&v, "header");
    let plaintext = aead
        .open_in_place(nonce, ring::aead::Aad::from(&header), &mut buffer)
        .expect("AES-256-GCM opens");
    let mut expected = bytes(&v, "signature");
    expected.extend(bytes(&v, "payload"));
    assert_eq!(plaintext, expected.as_slice());
}

#[test]
fn the_vector_envelope_opens() {
    let Vectors {
        envelope: v,
        receipt: r,
    } = vectors();
    let sender_keys = identity::PublicKeys {
        signing: array(&v, "sender_signing_public"),
        encryption: [9; 32],
    };
    let opened = envelope::open(&recipient(&v, &r), &sender_keys, &recorded_envelope(&v))
        .expect("the vector opens");
    let payload = pb::Item::decode(bytes(&v, "payload").as_slice()).expect("payload is an Item");
    assert_eq!(opened.item, payload);
    assert_eq!(opened.header.kind, kind(&v));
}

#[test]
fn the_envelope_digest_is_built_as_documented() {
    let v = vectors().envelope;
    let encapsulated_key = bytes(&v, "encapsulated_key");
    let ciphertext = bytes(&v, "ciphertext");
    let mut input = b"entente/v1/envelope-digest\0".to_vec();
    input.extend(bytes(&v, "header"));
    input.extend((encapsulated_key.len() as u32).to_be_bytes());
    input.extend(&encapsulated_key);
    input.extend((ciphertext.len() as u64).to_be_bytes());
    input.extend(&ciphertext);
    assert_eq!(hex::encode(sha256(&input)), text(&v, "envelope_digest"));
    let digest = envelope::envelope_digest(&recorded_envelope(&v));
    assert_eq!(hex::encode(digest), text(&v, "envelope_digest"));
}

#[test]
fn the_receipt_is_signed_over_the_documented_encoding() {
    let Vectors {
        envelope: v,
        receipt: r,
    } = vectors();
    let entries = r["entries"].as_array().expect("entries");
    let mut input = b"entente/v1/receipt\0".to_vec();
    input.push(1);
    input.extend(len16(text(&r, "receiver")));
    input.extend(bytes(&r, "receiver_key_id"));
    input.extend(len16(text(&r, "sender")));
    input.extend(int(&r, "issued_at_ms").to_be_bytes());
    input.extend((entries.len() as u32).to_be_bytes());
    for entry in entries {
        input.extend(bytes(entry, "item_id"));
        input.extend(bytes(entry, "envelope_digest"));
    }
    assert_eq!(hex::encode(&input), text(&r, "signing_input"));

    let me = recipient(&v, &r);
    let receipt = envelope::sign_receipt(
        &me,
        text(&r, "sender"),
        int(&r, "issued_at_ms"),
        receipt_entries(&r),
    );
    assert_eq!(hex::encode(&receipt.signature), text(&r, "signature"));
    let receiver_public = array(&r, "receiver_signing_public");
    assert!(identity::verify_signature(
        &receiver_public,
        &input,
        &receipt.signature
    ));
    let keys = identity::PublicKeys {
        signing: receiver_public,
        encryption: [9; 32],
    };
    envelope::verify_receipt(&receipt, text(&r, "receiver"), &keys, text(&r, "sender"))
        .expect("the vector receipt verifies");
}

#[test]
fn the_receipt_names_the_vector_envelope() {
    let Vectors {
        envelope: v,
        receipt: r,
    } = vectors();
    let entry = &r["entries"][0];
    assert_eq!(text(entry, "item_id"), text(&v, "item_id"));
    assert_eq!(text(entry, "envelope_digest"), text(&v, "envelope_digest"));
}

#[test]
fn every_vector_value_is_quoted_in_the_specification() {
    // Long values are wrapped in the document, so compare with its whitespace removed.
    let doc: String = DOC.chars().filter(|c| !c.is_whitespace()).collect();
    let mut values = Vec::new();
    hex_values(&serde_json::from_str(VECTORS).expect("JSON"), &mut values);
    assert!(values.len() > 20, "found only {} hex values", values.len());
    for value in values {
        assert!(
            doc.contains(&value),
            "docs/envelope.md does not quote {value}"
        );
    }
}

fn hex_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            out.push(s.clone())
        }
        Value::Array(items) => items.iter().for_each(|item| hex_values(item, out)),
        Value::Object(map) => map.values().for_each(|item| hex_values(item, out)),
        _ => {}
    }
}

fn receipt_entries(r: &Value) -> Vec<pb::ReceiptEntry> {
    let entries = r["entries"].as_array().expect("entries");
    entries
        .iter()
        .map(|e| pb::ReceiptEntry {
            item_id: bytes(e, "item_id"),
            envelope_digest: bytes(e, "envelope_digest"),
        })
        .collect()
}

/// The inputs of the vectors: arbitrary, but fixed forever.
fn vector_payload() -> pb::Item {
    pb::Item {
        body: Some(pb::item::Body::Report(pb::Report {
            kind: pb::ItemKind::DenialNotification as i32,
            title: "Licence denied: frequency changers".into(),
            reference: "D-2025-0117".into(),
            subjects: vec![pb::Subject {
                r#type: pb::SubjectType::Organisation as i32,
                name: "Example Trading FZE".into(),
                countries: vec!["AE".into()],
                role: "consignee".into(),
                ..Default::default()
            }],
            goods: vec![pb::Goods {
                description: "Frequency changers, 600 Hz output".into(),
                hs_code: "850440".into(),
                control_entry: "3A225".into(),
                quantity: 40.0,
                unit: "pcs".into(),
                value: None,
            }],
            handling: Some(pb::Handling {
                tlp: pb::TlpLevel::Amber as i32,
                originator_control: true,
                releasable_to: vec![],
                retention_days: 0,
            }),
            denial_date: "2025-06-02".into(),
            ..Default::default()
        })),
        originator: String::new(),
    }
}

/// Regenerates `tests/vectors/envelope-v1.json` from fixed inputs and this crate's code.
#[test]
#[ignore = "writes the vector file; run by hand when the format version changes"]
fn write_vectors() {
    let created_at_ms: i64 = 1_748_865_600_000; // 2025-06-02T12:00:00Z
    let mut item_id = [0u8; 16];
    // A ULID: 48-bit big-endian milliseconds, then 80 fixed "random" bits.
    item_id[..6].copy_from_slice(&created_at_ms.to_be_bytes()[2..]);
    item_id[6..].copy_from_slice(&[0x5e, 0x11, 0xa7, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a]);
    let sender_seed = [0x11u8; 32];
    let receiver_seed = [0x22u8; 32];
    let recipient_ikm = b"entente test vector: DE-BAFA encryption key".to_vec();
    let ephemeral_ikm = [0x33u8; 32];
    let payload = vector_payload().encode_to_vec();

    let sender_key = SigningKey::from_seed(&sender_seed);
    let recipient_key = EncryptionKey::derive(&recipient_ikm);
    let mut v = json!({
        "sender": "US-BIS",
        "recipient": "DE-BAFA",
        "sender_signing_seed": hex::encode(sender_seed),
        "sender_signing_public": hex::encode(sender_key.public()),
        "sender_key_id": hex::encode(sender_key.key_id().0),
        "recipient_encryption_ikm": hex::encode(&recipient_ikm),
        "recipient_encryption_private": hex::encode(recipient_key.hpke_private().to_bytes()),
        "recipient_encryption_public": hex::encode(recipient_key.public()),
        "recipient_key_id": hex::encode(recipient_key.key_id().0),
        "item_id": hex::encode(item_id),
        "kind": pb::ItemKind::DenialNotification as i32,
        "created_at_ms": created_at_ms,
        "payload": hex::encode(&payload),
        "hpke_ephemeral_ikm": hex::encode(ephemeral_ikm),
    });
    let sealed = seal_vector(&v);
    let header = envelope::Header::from_envelope(&sealed)
        .expect("parses")
        .encode();
    let mut input = b"entente/v1/envelope\0".to_vec();
    input.extend(&header);
    input.extend((payload.len() as u64).to_be_bytes());
    input.extend(&payload);
    let digest = envelope::envelope_digest(&sealed);
    let computed = json!({
        "header": hex::encode(&header),
        "signing_input_sha256": hex::encode(sha256(&input)),
        "signature": hex::encode(sender_key.sign(&input)),
        "encapsulated_key": hex::encode(&sealed.encapsulated_key),
        "ciphertext": hex::encode(&sealed.ciphertext),
        "envelope_digest": hex::encode(digest),
    });
    merge(&mut v, computed);
    let (key, base_nonce) = key_schedule(&shared_secret(&v), b"entente/v1/envelope-hpke");
    let hpke = json!({
        "hpke_shared_secret": hex::encode(shared_secret(&v)),
        "hpke_key": hex::encode(key),
        "hpke_base_nonce": hex::encode(base_nonce),
    });
    merge(&mut v, hpke);
    let receipt = write_receipt(&v, receiver_seed, item_id, digest);
    let all = json!({
        "description": "Entente envelope and receipt format version 1; see docs/envelope.md",
        "envelope": v,
        "receipt": receipt,
    });
    let text = serde_json::to_string_pretty(&all).expect("JSON") + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/envelope-v1.json");
    std::fs::write(path, text).expect("vector file written");
}

fn write_receipt(v: &Value, seed: [u8; 32], item_id: [u8; 16], digest: [u8; 32]) -> Value {
    let issued_at_ms: i64 = 1_748_865_601_500;
    let mut r = json!({
        "receiver": text(v, "recipient"),
        "sender": text(v, "sender"),
        "receiver_signing_seed": hex::encode(seed),
        "receiver_signing_public": hex::encode(SigningKey::from_seed(&seed).public()),
        "receiver_key_id": hex::encode(SigningKey::from_seed(&seed).key_id().0),
        "issued_at_ms": issued_at_ms,
        "entries": [{ "item_id": hex::encode(item_id), "envelope_digest": hex::encode(digest) }],
    });
    let me = recipient(v, &r);
    let receipt = envelope::sign_receipt(&me, text(v, "sender"), issued_at_ms, receipt_entries(&r));
    let mut input = b"entente/v1/receipt\0".to_vec();
    input.push(1);
    input.extend(len16(&receipt.receiver));
    input.extend(&receipt.receiver_key_id);
    input.extend(len16(&receipt.sender));
    input.extend(issued_at_ms.to_be_bytes());
    input.extend(1u32.to_be_bytes());
    input.extend(item_id);
    input.extend(digest);
    let computed = json!({
        "signing_input": hex::encode(&input),
        "signature": hex::encode(&receipt.signature),
    });
    merge(&mut r, computed);
    r
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}
