//! Bad input from the network: each kind is refused with a clear error, recorded in the
//! receiver's audit log with the peer and the reason, and stores nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use entente::{
    demo::send_raw,
    envelope::{self, Header},
    identity::SigningKey,
    node::{Node, Shared},
    pb, testbed,
};
use prost::Message as _;

/// A running receiver BB-TWO and two stopped would-be senders AA-ONE and CC-THREE whose
/// stores the tests use to seal genuine envelopes.
struct Fixture {
    _dir: tempfile::TempDir,
    receiver: Node,
    a: Shared,
    c: Shared,
    endpoint: String,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut entente::config::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO", "CC-THREE"]).await;
        let c = members.pop().unwrap();
        let mut b = members.pop().unwrap();
        let a = members.pop().unwrap();
        adjust(&mut b.config);
        let receiver = Node::start_on(b.config, b.listener).await.unwrap();
        let endpoint = format!("https://{}", receiver.addr());
        Self {
            _dir: dir,
            a: Shared::open(a.config).unwrap(),
            c: Shared::open(c.config).unwrap(),
            receiver,
            endpoint,
        }
    }

    fn b(&self) -> &Shared {
        self.receiver.shared()
    }

    /// A genuine envelope from `from` to BB-TWO.
    async fn genuine(&self, from: &Shared) -> pb::Envelope {
        from.submit(report(pb::ItemKind::EnforcementAlert, "genuine"))
            .await
            .unwrap();
        let queued = from.store.outbox_batch("BB-TWO", None, 1000).unwrap();
        queued.last().unwrap().envelope.clone()
    }

    async fn send(
        &self,
        as_: &Shared,
        envelopes: Vec<pb::Envelope>,
    ) -> Result<pb::BatchResult, String> {
        send_raw(&material(&as_.config), "BB-TWO", &self.endpoint, envelopes).await
    }

    /// Asserts one refusal with `reason`, nothing stored, and an audit record naming the
    /// peer and the reason.
    async fn assert_refused(&self, result: pb::BatchResult, reason: pb::RefusalReason, peer: &str) {
        assert!(
            result.receipt.is_none(),
            "no receipt for a refused envelope"
        );
        assert_eq!(result.refusals.len(), 1, "{result:?}");
        assert_eq!(result.refusals[0].reason, reason as i32, "{result:?}");
        assert!(!result.refusals[0].detail.is_empty());
        assert_eq!(self.b().store.item_count(), 0, "a refusal stores nothing");
        let last = last_audit(&self.b().store);
        assert_eq!(last.action, "refused");
        assert_eq!(last.peer, peer);
        assert!(
            last.detail.contains(reason.as_str_name()),
            "{}",
            last.detail
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_is_refused() {
    let f = Fixture::new().await;
    let mut env = f.genuine(&f.a).await;
    let header = Header::from_envelope(&env).unwrap();
    let rogue = SigningKey::generate().unwrap();
    let payload = pb::Item {
        body: Some(pb::item::Body::Report(report(
            pb::ItemKind::EnforcementAlert,
            "forged",
        ))),
        originator: String::new(),
    }
    .encode_to_vec();
    env = envelope::seal_with_header(
        header,
        &rogue,
        &f.b().own_keys().identity.public_keys(),
        &payload,
    )
    .unwrap();
    let result = f.send(&f.a, vec![env]).await.unwrap();
    f.assert_refused(result, pb::RefusalReason::BadSignature, "AA-ONE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_ciphertext_is_refused() {
    let f = Fixture::new().await;
    let mut env = f.genuine(&f.a).await;
    let last = env.ciphertext.len() - 1;
    env.ciphertext[last] ^= 1;
    let result = f.send(&f.a, vec![env]).await.unwrap();
    f.assert_refused(result, pb::RefusalReason::BadSignature, "AA-ONE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_encrypted_to_another_node_is_refused() {
    let f = Fixture::new().await;
    // A seals for CC-THREE, then relabels the envelope for BB-TWO: B cannot decrypt it.
    f.a.submit(report(pb::ItemKind::EnforcementAlert, "for C"))
        .await
        .unwrap();
    let for_c = f.a.store.outbox_batch("CC-THREE", None, 1).unwrap()[0]
        .envelope
        .clone();
    let mut relabelled = for_c.clone();
    relabelled.recipient = "BB-TWO".into();
    relabelled.recipient_key_id = f.b().own_keys().identity.encryption.key_id().0.to_vec();
    let result = f.send(&f.a, vec![relabelled]).await.unwrap();
    f.assert_refused(result, pb::RefusalReason::BadSignature, "AA-ONE")
        .await;
    // Unchanged, it is plainly addressed to someone else.
    let result = f.send(&f.a, vec![for_c]).await.unwrap();
    f.assert_refused(result, pb::RefusalReason::WrongRecipient, "AA-ONE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_differs_from_the_tls_peer_is_refused() {
    let f = Fixture::new().await;
    // A genuine envelope from C, sent over A's TLS connection.
    let from_c = f.genuine(&f.c).await;
    let result = f.send(&f.a, vec![from_c]).await.unwrap();
    f.assert_refused(result, pb::RefusalReason::SenderMismatch, "AA-ONE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_item_id_with_other_content_is_refused() {
    let f = Fixture::new().await;
    let first = f.genuine(&f.a).await;
    let accepted = f.send(&f.a, vec![first.clone()]).await.unwrap();
    assert!(accepted.receipt.is_some());
    // A second, genuinely signed envelope reusing the item id.
    let header = Header::from_envelope(&first).unwrap();
    let payload = pb::Item {
        body: Some(pb::item::Body::Report(report(
            pb::ItemKind::EnforcementAlert,
            "other",
        ))),
        originator: String::new(),
    }
    .encode_to_vec();
    let replay = envelope::seal_with_header(
        header,
        &f.a.own_keys().identity.signing,
        &f.b().own_keys().identity.public_keys(),
        &payload,
    )
    .unwrap();
    let result = f.send(&f.a, vec![replay]).await.unwrap();
    assert_eq!(result.refusals.len(), 1);
    assert_eq!(result.refusals[0].reason, pb::RefusalReason::Replay as i32);
    assert_eq!(
        f.b().store.item_count(),
        1,
        "the original stays, the replay is not stored"
    );
    let stored = &f.b().store.list_items(1).unwrap()[0];
    assert_eq!(stored.report().unwrap().title, "genuine");
    let last = last_audit(&f.b().store);
    assert_eq!(
        (last.action.as_str(), last.peer.as_str()),
        ("refused", "AA-ONE")
    );
    assert!(last.detail.contains("replay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_ends_the_stream_and_is_recorded() {
    let f = Fixture::new().await;
    let garbage = vec![0xff; 64];
    let status = send_raw_bytes(&material(&f.a.config), "BB-TWO", &f.endpoint, garbage)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status.message().contains("unreadable message"),
        "{status:?}"
    );
    assert_eq!(f.b().store.item_count(), 0);
    let last = last_audit(&f.b().store);
    assert_eq!(
        (last.action.as_str(), last.peer.as_str()),
        ("refused", "AA-ONE")
    );
    assert!(last.detail.contains("unreadable message"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_over_the_size_limit_is_refused() {
    let f = Fixture::with(|c| c.max_message_bytes = 64 * 1024).await;
    let mut env = f.genuine(&f.a).await;
    env.ciphertext = vec![0; 100 * 1024];
    let err = f.send(&f.a, vec![env]).await.unwrap_err();
    assert!(
        err.contains("OutOfRange") || err.contains("ResourceExhausted"),
        "{err}"
    );
    assert_eq!(f.b().store.item_count(), 0);
    let last = last_audit(&f.b().store);
    assert_eq!(last.action, "refused");
    assert!(
        last.detail.contains("unreadable message"),
        "{}",
        last.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_more_envelopes_than_allowed_is_refused_before_any_is_opened() {
    let f = Fixture::new().await;
    // Empty envelopes: the count alone is over the cap, the message far under its size.
    let envelopes = vec![pb::Envelope::default(); 4097];
    let err = f.send(&f.a, envelopes).await.unwrap_err();
    assert!(err.contains("ResourceExhausted"), "{err}");
    assert!(
        err.contains("batch of 4097 envelopes exceeds 4096"),
        "{err}"
    );
    assert_eq!(f.b().store.item_count(), 0);
    let last = last_audit(&f.b().store);
    assert_eq!(
        (last.action.as_str(), last.peer.as_str()),
        ("refused", "AA-ONE")
    );
    assert!(last.detail.contains("exceeds 4096"), "{}", last.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_releasable_to_more_agencies_than_the_limit_is_refused() {
    let f = Fixture::with(|c| c.limits.max_recipients = 2).await;
    let mut wide = report(pb::ItemKind::EnforcementAlert, "wide");
    wide.handling.as_mut().unwrap().releasable_to =
        vec!["BB-TWO".into(), "CC-THREE".into(), "DD-FOUR".into()];
    // BB-TWO's analysts cannot submit it either: the error names the field and the limit.
    let err = f.b().submit(wide.clone()).await.unwrap_err().to_string();
    assert!(
        err.contains("handling.releasable_to") && err.contains("limits.max_recipients"),
        "{err}"
    );
    let last = last_audit(&f.b().store);
    assert_eq!(
        (last.action.as_str(), last.peer.as_str()),
        ("refused", "local")
    );
    assert!(
        last.detail
            .starts_with("submission: submitted report 1: handling.releasable_to"),
        "{}",
        last.detail
    );
    assert_eq!(f.b().store.item_count(), 0, "nothing was stored");
    // AA-ONE's own limit (the default) lets it through; BB-TWO's does not.
    f.a.submit(wide).await.unwrap();
    let queued = f.a.store.outbox_batch("BB-TWO", None, 10).unwrap();
    let result = f
        .send(&f.a, vec![queued[0].envelope.clone()])
        .await
        .unwrap();
    assert!(
        result.refusals[0]
            .detail
            .contains("names 3 agencies, more than the 2 allowed"),
        "{result:?}"
    );
    f.assert_refused(result, pb::RefusalReason::Malformed, "AA-ONE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_that_is_not_a_registered_partner_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    // ZZ-STRANGER has a certificate from the same CA but is nobody's partner.
    let stranger_dir = tempfile::tempdir().unwrap();
    let b = members.pop().unwrap();
    let ca_dir = b.config.tls_ca.clone();
    let receiver = Node::start_on(b.config, b.listener).await.unwrap();
    let stranger = stranger_cert_from_federation_ca(dir.path(), stranger_dir.path());
    let tls = entente::tls::TlsMaterial::load(&stranger.0, &stranger.1, &ca_dir).unwrap();
    let err = send_raw(
        &tls,
        "BB-TWO",
        &format!("https://{}", receiver.addr()),
        vec![],
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("PermissionDenied") && err.contains("ZZ-STRANGER is not a registered partner"),
        "{err}"
    );
    let last = last_audit(&receiver.shared().store);
    assert_eq!(last.action, "refused");
    assert!(
        last.peer.starts_with("ZZ-STRANGER@127.0.0.1:"),
        "{}",
        last.peer
    );
    assert_eq!(receiver.shared().store.item_count(), 0);
    receiver.shutdown().await;
}

/// Issues a ZZ-STRANGER certificate from the CA the testbed left in `federation_dir`.
fn stranger_cert_from_federation_ca(
    federation_dir: &std::path::Path,
    out: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca = entente::setup::Ca::load(
        &federation_dir.join("ca.crt"),
        &federation_dir.join("ca.key"),
    )
    .unwrap();
    let cert = entente::setup::issue_node_cert(&ca, "ZZ-STRANGER", &[]).unwrap();
    let (c, k) = (out.join("node.crt"), out.join("node.key"));
    std::fs::write(&c, &cert.cert_pem).unwrap();
    std::fs::write(&k, &cert.key_pem).unwrap();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_fails_the_handshake_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let b = members.pop().unwrap();
    let receiver = Node::start_on(b.config, b.listener).await.unwrap();
    // A whole second federation with its own CA; its AA-ONE is an impostor.
    let other = tempfile::tempdir().unwrap();
    let impostors = testbed::federation(other.path(), &["AA-ONE", "BB-TWO"], &[])
        .await
        .unwrap();
    let impostor = material(&impostors[0].config);
    let err = send_raw(
        &impostor,
        "BB-TWO",
        &format!("https://{}", receiver.addr()),
        vec![],
    )
    .await
    .unwrap_err();
    assert!(!err.is_empty());
    eventually(5, "the refused handshake is recorded", || {
        receiver
            .shared()
            .store
            .audit_entries()
            .unwrap()
            .iter()
            .any(|e| {
                e.action == "refused"
                    && e.peer.starts_with("127.0.0.1:")
                    && e.detail.contains("TLS handshake")
            })
    })
    .await;
    assert_eq!(receiver.shared().store.item_count(), 0);
    receiver.shutdown().await;
}

/// A genuine envelope from AA-ONE to BB-TWO, signed with A's registered key, created
/// `offset_ms` from now.
fn dated(f: &Fixture, offset_ms: i64, title: &str) -> pb::Envelope {
    let payload = pb::Item {
        body: Some(pb::item::Body::Report(report(
            pb::ItemKind::EnforcementAlert,
            title,
        ))),
        originator: String::new(),
    }
    .encode_to_vec();
    envelope::seal(
        &f.a.own_keys().identity,
        "BB-TWO",
        &f.b().own_keys().identity.public_keys(),
        ulid::Ulid::new().to_bytes(),
        pb::ItemKind::EnforcementAlert,
        entente::now_ms() + offset_ms,
        &payload,
    )
    .unwrap()
}

const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_older_than_the_replay_window_is_refused() {
    let f = Fixture::new().await;
    let env = dated(&f, -31 * DAY_MS, "old");
    let result = f.send(&f.a, vec![env]).await.unwrap();
    assert!(
        result.refusals[0]
            .detail
            .contains("replay window of 30 days"),
        "{result:?}"
    );
    f.assert_refused(result, pb::RefusalReason::OutOfTimeWindow, "AA-ONE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_dated_beyond_the_clock_skew_is_refused() {
    let f = Fixture::with(|b| b.limits.max_clock_skew_secs = 60).await;
    let env = dated(&f, 120_000, "future");
    let result = f.send(&f.a, vec![env]).await.unwrap();
    assert!(
        result.refusals[0]
            .detail
            .contains("more than the 60 s allowed"),
        "{result:?}"
    );
    f.assert_refused(result, pb::RefusalReason::OutOfTimeWindow, "AA-ONE")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_inside_the_window_and_the_skew_are_stored() {
    let f = Fixture::with(|b| b.limits.max_clock_skew_secs = 60).await;
    let envelopes = vec![
        dated(&f, -29 * DAY_MS, "a month old, nearly"),
        dated(&f, 30_000, "half a minute ahead"),
    ];
    let result = f.send(&f.a, envelopes).await.unwrap();
    assert!(result.refusals.is_empty(), "{result:?}");
    assert!(result.receipt.is_some());
    assert_eq!(f.b().store.item_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_certificate_on_the_revocation_list_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO", "CC-THREE"]).await;
    let ca =
        entente::setup::Ca::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key")).unwrap();
    let revoked = std::fs::read_to_string(&members[0].config.tls_cert).unwrap();
    let crl = ca
        .revocation_list(&[("aa-one.crt".into(), revoked)], 1, 30)
        .unwrap();
    let crl_path = dir.path().join("crl.pem");
    std::fs::write(&crl_path, crl).unwrap();
    members[1].config.tls_crl = Some(crl_path);
    let c = members.pop().unwrap();
    let b = members.pop().unwrap();
    let a = members.pop().unwrap();
    let receiver = Node::start_on(b.config, b.listener).await.unwrap();
    let endpoint = format!("https://{}", receiver.addr());
    let (a, c) = (
        Shared::open(a.config).unwrap(),
        Shared::open(c.config).unwrap(),
    );

    a.submit(report(
        pb::ItemKind::EnforcementAlert,
        "from a revoked node",
    ))
    .await
    .unwrap();
    let env = a.store.outbox_batch("BB-TWO", None, 1).unwrap()[0]
        .envelope
        .clone();
    let err = send_raw(&material(&a.config), "BB-TWO", &endpoint, vec![env])
        .await
        .unwrap_err();
    assert!(!err.is_empty());
    eventually(10, "the refused handshake is recorded", || {
        // The log may still be empty: the refusal is recorded a moment after the handshake.
        let entries = receiver.shared().store.audit_entries().unwrap();
        entries.last().is_some_and(|last| {
            last.action == "refused" && last.detail.to_lowercase().contains("revoked")
        })
    })
    .await;
    assert_eq!(receiver.shared().store.item_count(), 0);

    // CC-THREE's certificate is not on the list.
    c.submit(report(pb::ItemKind::EnforcementAlert, "from a good node"))
        .await
        .unwrap();
    let env = c.store.outbox_batch("BB-TWO", None, 1).unwrap()[0]
        .envelope
        .clone();
    let result = send_raw(&material(&c.config), "BB-TWO", &endpoint, vec![env])
        .await
        .unwrap();
    assert!(result.receipt.is_some(), "{result:?}");
    receiver.shutdown().await;
}
