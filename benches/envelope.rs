//! Benchmarks of the envelope hot paths: sealing and opening a report of about 2 KiB (a
//! typical suspicious-transaction report with a few subjects, goods and a narrative), and
//! signing and verifying a receipt for a batch of 128 items.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_main};
use entente::{
    envelope,
    identity::{EncryptionKey, Identity, SigningKey},
    pb,
};
use prost::Message as _;

/// Size the benchmark report is padded to, in bytes of encoded `Item`.
const REPORT_SIZE: usize = 2048;
const RECEIPT_ENTRIES: usize = 128;

fn identity(agency: &str, seed: u8) -> Identity {
    Identity {
        agency: agency.to_owned(),
        signing: SigningKey::from_seed(&[seed; 32]),
        encryption: EncryptionKey::derive(&[seed; 32]),
    }
}

fn subject(kind: pb::SubjectType, name: &str, country: &str, role: &str) -> pb::Subject {
    pb::Subject {
        r#type: kind as i32,
        name: name.into(),
        aliases: vec![format!("{name} LLC"), name.to_uppercase()],
        countries: vec![country.into()],
        identifiers: vec![pb::Identifier {
            scheme: "registration".into(),
            value: "CR-2019-448812".into(),
            country: country.into(),
        }],
        addresses: vec![pb::Address {
            lines: vec!["Office 1204, Tower B".into(), "Business Bay".into()],
            city: "Dubai".into(),
            postal_code: "00000".into(),
            country: country.into(),
        }],
        role: role.into(),
    }
}

fn goods(description: &str, hs_code: &str, control_entry: &str, quantity: f64) -> pb::Goods {
    pb::Goods {
        description: description.into(),
        hs_code: hs_code.into(),
        control_entry: control_entry.into(),
        quantity,
        unit: "pcs".into(),
        value: Some(pb::Money {
            minor_units: 18_450_000,
            currency: "EUR".into(),
        }),
    }
}

/// A suspicious-transaction report whose encoded `Item` is exactly [`REPORT_SIZE`] bytes.
fn report_item() -> pb::Item {
    let mut report = pb::Report {
        kind: pb::ItemKind::SuspiciousTransaction as i32,
        title: "Frequency changers routed through a free zone to an undeclared end user".into(),
        reference: "STR-2025-004417".into(),
        subjects: vec![
            subject(
                pb::SubjectType::Organisation,
                "Example Trading FZE",
                "AE",
                "consignee",
            ),
            subject(
                pb::SubjectType::Organisation,
                "Northwind Machinery",
                "TR",
                "broker",
            ),
            subject(pb::SubjectType::Person, "J. Example", "AE", "financier"),
        ],
        goods: vec![
            goods("Frequency changers, 600 Hz output", "850440", "3A225", 40.0),
            goods("Vacuum pumps, corrosion resistant", "841410", "2B231", 12.0),
        ],
        route: Some(pb::Route {
            origin: "DE".into(),
            transit: vec!["AE".into(), "TR".into()],
            destination: "AE".into(),
            end_user_country: "IR".into(),
        }),
        red_flags: vec![
            "end user declined installation support".into(),
            "payment from a third country".into(),
            "freight forwarder listed as final consignee".into(),
        ],
        narrative: String::new(),
        handling: Some(pb::Handling {
            tlp: pb::TlpLevel::Amber as i32,
            originator_control: true,
            releasable_to: vec!["DE-BAFA".into(), "JP-METI".into()],
            retention_days: 1825,
        }),
        denial_date: String::new(),
    };
    let sentence = "The consignee asked for delivery in unmarked crates and for invoices \
                    that describe the goods as pump controllers. ";
    let mut item = wrap(report.clone());
    while item.encoded_len() < REPORT_SIZE {
        report.narrative.push_str(sentence);
        item = wrap(report.clone());
    }
    let excess = item.encoded_len() - REPORT_SIZE;
    report.narrative.truncate(report.narrative.len() - excess);
    wrap(report)
}

fn wrap(report: pb::Report) -> pb::Item {
    pb::Item {
        body: Some(pb::item::Body::Report(report)),
        originator: String::new(),
    }
}

fn seal_and_open(c: &mut Criterion) {
    let (us, de) = (identity("US-BIS", 1), identity("DE-BAFA", 2));
    let payload = report_item().encode_to_vec();
    assert_eq!(
        payload.len(),
        REPORT_SIZE,
        "the benchmark report has drifted in size"
    );
    let (item_id, kind) = ([7u8; 16], pb::ItemKind::SuspiciousTransaction);
    let de_keys = de.public_keys();
    let seal = || envelope::seal(&us, "DE-BAFA", &de_keys, item_id, kind, 0, &payload);

    c.bench_function("seal 2 KiB report", |b| b.iter(|| seal().map(black_box)));
    let sealed = seal().expect("the benchmark report seals");
    let us_keys = us.public_keys();
    c.bench_function("open 2 KiB report", |b| {
        b.iter(|| envelope::open(&de, &us_keys, black_box(&sealed)).map(black_box))
    });
    c.bench_function("digest 2 KiB envelope", |b| {
        b.iter(|| envelope::envelope_digest(black_box(&sealed)))
    });
}

fn receipts(c: &mut Criterion) {
    let de = identity("DE-BAFA", 2);
    let entries: Vec<pb::ReceiptEntry> = (0..RECEIPT_ENTRIES)
        .map(|i| pb::ReceiptEntry {
            item_id: (i as u128).to_be_bytes().to_vec(),
            envelope_digest: vec![i as u8; 32],
        })
        .collect();
    c.bench_function("sign 128-entry receipt", |b| {
        // Cloning the entries is setup, not part of what is measured.
        b.iter_batched(
            || entries.clone(),
            |entries| envelope::sign_receipt(&de, "US-BIS", 0, black_box(entries)),
            BatchSize::SmallInput,
        )
    });
    let receipt = envelope::sign_receipt(&de, "US-BIS", 0, entries);
    let keys = de.public_keys();
    envelope::verify_receipt(&receipt, "DE-BAFA", &keys, "US-BIS").expect("receipt verifies");
    c.bench_function("verify 128-entry receipt", |b| {
        b.iter(|| envelope::verify_receipt(black_box(&receipt), "DE-BAFA", &keys, "US-BIS"))
    });
}

// The macro defines a public function that needs no documentation of its own.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::seal_and_open, super::receipts);
}
criterion_main!(group::benches);
