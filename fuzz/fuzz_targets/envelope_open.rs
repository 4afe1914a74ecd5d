//! Any bytes read as what a partner sends: an envelope, a batch of envelopes or a receipt.
//! Each is opened or verified with fixed keys (those of `tests/vectors/envelope-v1.json`),
//! and refused or accepted, never with a panic.
//!
//! A fuzzer cannot forge a ciphertext that decrypts, so the same bytes are also sealed as the
//! signed payload of an envelope and opened: that reaches the item decoding and the checks
//! that follow a valid signature, and the validation of the report inside.

#![no_main]

use entente::{envelope, pb, report, watchlist};
use entente_fuzz::{recipient, sender};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = pb::Envelope::decode(data) {
        open(&env);
    }
    if let Ok(batch) = pb::DeliverBatch::decode(data) {
        batch.envelopes.iter().for_each(open);
    }
    if let Ok(receipt) = pb::Receipt::decode(data) {
        let keys = recipient().public_keys();
        let _ = envelope::verify_receipt(&receipt, &recipient().agency, &keys, &sender().agency);
    }
    open_as_payload(data);
});

/// What a receiver does with an envelope: digest it (for the refusal record or the receipt),
/// then open it.
fn open(env: &pb::Envelope) {
    envelope::envelope_digest(env);
    let header = envelope::Header::from_envelope(env);
    match envelope::open(recipient(), &sender().public_keys(), env) {
        Ok(opened) => {
            assert_eq!(Some(&opened.header), header.as_ref().ok());
            check_item(&opened.item);
        }
        Err(err) => {
            err.reason();
        }
    }
}

fn open_as_payload(payload: &[u8]) {
    let me = recipient();
    let env = envelope::seal(
        sender(),
        &me.agency,
        &me.public_keys(),
        [7; 16],
        payload_kind(payload),
        1_750_000_000_000,
        payload,
    )
    .expect("sealing to a valid key");
    if let Ok(opened) = envelope::open(me, &sender().public_keys(), &env) {
        check_item(&opened.item);
    }
}

/// The kind the payload's body claims, so that one seal reaches the checks after the kind
/// agrees (a payload that is no item, or has no body, still goes through as a report).
fn payload_kind(payload: &[u8]) -> pb::ItemKind {
    let body = pb::Item::decode(payload).ok().and_then(|item| item.body);
    match body {
        Some(pb::item::Body::WatchlistDelta(_)) => pb::ItemKind::WatchlistDelta,
        Some(pb::item::Body::Report(report)) => match pb::ItemKind::try_from(report.kind) {
            Ok(kind @ (pb::ItemKind::DenialNotification | pb::ItemKind::EnforcementAlert)) => kind,
            _ => pb::ItemKind::SuspiciousTransaction,
        },
        None => pb::ItemKind::SuspiciousTransaction,
    }
}

/// A report that arrives in an envelope is validated before it is stored, and shown later;
/// a watchlist delta is joined with its other parts.
fn check_item(item: &pb::Item) {
    match &item.body {
        Some(pb::item::Body::Report(report)) => {
            if report::validate(report, "fuzz").is_ok() {
                report::report_to_json(report);
            }
        }
        Some(pb::item::Body::WatchlistDelta(delta)) => {
            watchlist::assemble(vec![delta.clone()]);
        }
        None => {}
    }
}
