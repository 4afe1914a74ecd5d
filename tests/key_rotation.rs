//! Key rotation between real nodes on 127.0.0.1 over mutual TLS: new keys take effect
//! without a restart, items sealed to a retired key still open, partners learn the new
//! keys only from an announcement signed by the current key, and learned keys survive a
//! restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use entente::{
    config::Config,
    identity::{EncryptionKey, PublicKeys, SigningKey},
    keys::{self, NewKeys, files},
    node::{Node, RotateRequest, Shared},
    pb::{self, peer_exchange_client::PeerExchangeClient},
    setup::Ca,
    store::Store,
    testbed::Member,
    tls,
};

fn ca(dir: &Path) -> Ca {
    Ca::load(&dir.join("ca.crt"), &dir.join("ca.key")).unwrap()
}

fn leaf_fingerprint(config: &Config) -> [u8; 32] {
    tls::fingerprint(&material(config).certs[0])
}

fn two(mut members: Vec<Member>) -> (Member, Member) {
    let b = members.pop().unwrap();
    let a = members.pop().unwrap();
    (a, b)
}

/// Calls `AnnounceKeys` at `endpoint` as the holder of `material`, expecting the server
/// to be `server` with a certificate whose fingerprint is `pin` when given.
async fn announce(
    material: &tls::TlsMaterial,
    server: &str,
    endpoint: &str,
    pin: Option<[u8; 32]>,
    announcement: pb::KeyAnnouncement,
) -> Result<pb::KeyAnnouncementResult, tonic::Status> {
    let config = tls::client_config(material, None, server, pin).unwrap();
    let channel = tls::channel(endpoint, config).unwrap();
    PeerExchangeClient::new(channel)
        .announce_keys(announcement)
        .await
        .map(tonic::Response::into_inner)
}

fn endpoint(node: &Node) -> String {
    format!("https://{}", node.addr())
}

fn titles_from(store: &Store, origin: &str) -> Vec<String> {
    store
        .list_items(usize::MAX)
        .unwrap()
        .iter()
        .filter(|i| i.origin == origin && !i.own)
        .filter_map(|i| i.report().map(|r| r.title.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_sealed_to_a_retired_key_still_open_and_new_items_use_the_new_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two(federation(dir.path(), &["AA-ONE", "BB-TWO"]).await);
    let b_config = b.config.clone();
    let b_addr = b.listener.local_addr().unwrap();
    drop(b.listener); // B is down while A seals for it.
    let a = Node::start_on(a.config, a.listener).await.unwrap();
    for i in 0..3 {
        a.shared()
            .submit(report(
                pb::ItemKind::EnforcementAlert,
                &format!("before {i}"),
            ))
            .await
            .unwrap();
    }
    let old_b_encryption = a
        .shared()
        .partner_keys("BB-TWO")
        .unwrap()
        .current
        .encryption;

    // B rotates while stopped: its announcement waits in its store.
    let rotated = {
        let b = Shared::open(b_config.clone()).unwrap();
        let r = b
            .rotate_keys(RotateRequest {
                signing: true,
                encryption: true,
                tls: None,
            })
            .await
            .unwrap();
        b.store.flush().await.unwrap();
        r
    };
    assert_eq!(rotated.announced_to, vec!["AA-ONE".to_owned()]);
    assert_eq!(rotated.retired_encryption_key_ids.len(), 1);
    let b_now = EncryptionKey::load(&b_config.encryption_key).unwrap();
    assert_ne!(
        b_now.public(),
        old_b_encryption,
        "a new key is in the key file"
    );

    let listener = tokio::net::TcpListener::bind(b_addr).await.unwrap();
    let b = Node::start_on(b_config, listener).await.unwrap();
    eventually(20, "the items sealed to B's old key open at B", || {
        received_from(&b.shared().store, "AA-ONE") == 3
    })
    .await;
    eventually(20, "A learned B's new keys", || {
        a.shared()
            .partner_keys("BB-TWO")
            .unwrap()
            .current
            .encryption
            == b_now.public()
    })
    .await;
    let held = a.shared().partner_keys("BB-TWO").unwrap();
    assert_eq!(
        held.current.signing,
        b.shared().own_keys().identity.signing.public()
    );

    // New items both ways: B's signed with its new key, A's sealed to B's new key.
    b.shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "from B after"))
        .await
        .unwrap();
    a.shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "after"))
        .await
        .unwrap();
    eventually(20, "new items arrive both ways", || {
        received_from(&a.shared().store, "BB-TWO") == 1
            && received_from(&b.shared().store, "AA-ONE") == 4
    })
    .await;
    eventually(10, "A's outbox drained", || {
        a.shared().store.outbox_depth("BB-TWO") == 0
    })
    .await;
    assert!(titles_from(&b.shared().store, "AA-ONE").contains(&"after".to_owned()));
    assert_eq!(audit_count(&a.shared().store, "key-learned"), 1);
    assert_eq!(audit_count(&b.shared().store, "key-rotated"), 1);
    eventually(10, "B recorded that A applied its announcement", || {
        audit_count(&b.shared().store, "key-announced") == 1
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_rotates_every_key_and_a_pinned_partner_follows_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, b) = two(federation(dir.path(), &["AA-ONE", "BB-TWO"]).await);
    // A pins B's certificate: after B's TLS rotation only the announcement can move it.
    let old_pin = leaf_fingerprint(&b.config);
    a.config.partners[0].cert_fingerprint = Some(old_pin);
    let nodes = start_all(vec![a, b]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "before"))
        .await
        .unwrap();
    eventually(20, "first item at B", || {
        received_from(&b.shared().store, "AA-ONE") == 1
    })
    .await;

    let before = b.shared().own_keys().identity.public_keys();
    let rotated = b
        .shared()
        .rotate_keys(RotateRequest {
            signing: true,
            encryption: true,
            tls: Some(ca(dir.path())),
        })
        .await
        .unwrap();
    let new_pin = leaf_fingerprint(&b.shared().config);
    assert_ne!(new_pin, old_pin);
    assert_eq!(rotated.tls_cert_fingerprint, hex::encode(new_pin));
    assert_ne!(b.shared().own_keys().identity.public_keys(), before);

    // The listener presents the new certificate at once, without a restart.
    let a_material = material(&a.shared().config);
    let probe = pb::KeyAnnouncement::default();
    let with_new = announce(
        &a_material,
        "BB-TWO",
        &endpoint(b),
        Some(new_pin),
        probe.clone(),
    )
    .await;
    assert_eq!(
        with_new.unwrap_err().code(),
        tonic::Code::InvalidArgument,
        "TLS with the new pin succeeds; the empty announcement is refused"
    );
    let with_old = announce(&a_material, "BB-TWO", &endpoint(b), Some(old_pin), probe).await;
    assert_eq!(with_old.unwrap_err().code(), tonic::Code::Unavailable);

    eventually(20, "A follows B's certificate and keys", || {
        let held = a.shared().partner_keys("BB-TWO").unwrap();
        held.tls_pin == Some(new_pin)
            && held.current.signing == b.shared().own_keys().identity.signing.public()
    })
    .await;
    a.shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "after"))
        .await
        .unwrap();
    b.shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "from B"))
        .await
        .unwrap();
    eventually(20, "items both ways under the new keys", || {
        received_from(&b.shared().store, "AA-ONE") == 2
            && received_from(&a.shared().store, "BB-TWO") == 1
    })
    .await;
    let detail = last_detail(&a.shared().store, "key-learned");
    assert!(detail.contains("new TLS certificate"), "{detail}");
    for node in nodes {
        node.shutdown().await;
    }
}

fn last_detail(store: &Store, action: &str) -> String {
    store
        .audit_entries()
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.action == action)
        .map(|e| e.detail)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_not_signed_by_the_current_key_is_refused_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_all(federation(dir.path(), &["AA-ONE", "BB-TWO"]).await).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let held_before = b.shared().partner_keys("AA-ONE").unwrap();
    // The thief has A's TLS identity but not A's signing key.
    let a_material = material(&a.shared().config);
    let rogue = SigningKey::generate().unwrap();
    let new = NewKeys {
        keys: PublicKeys {
            signing: rogue.public(),
            encryption: EncryptionKey::generate().public(),
        },
        tls_fingerprint: None,
    };
    let forged = keys::announce("AA-ONE", entente::now_ms(), &rogue, &rogue, &new);
    let refused = announce(&a_material, "BB-TWO", &endpoint(b), None, forged.clone()).await;
    let status = refused.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("not by AA-ONE's current signing key"),
        "{status:?}"
    );

    // Naming A's current key id, with both signatures by the thief's key over that, fails
    // on the signature of the current key.
    let mut relabelled = forged;
    relabelled.previous_signing_key_id = held_before.current.signing_key_id().0.to_vec();
    let input = keys::signing_input(&relabelled);
    relabelled.previous_signature = rogue.sign(&input).to_vec();
    relabelled.new_signature = rogue.sign(&input).to_vec();
    let status = announce(&a_material, "BB-TWO", &endpoint(b), None, relabelled)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("by the current signing key does not verify"),
        "{status:?}"
    );

    // An announcement for another agency than the TLS peer is refused too.
    let a_signing = SigningKey::load(&a.shared().config.signing_key).unwrap();
    let other = keys::announce("CC-THREE", entente::now_ms(), &a_signing, &a_signing, &new);
    let status = announce(&a_material, "BB-TWO", &endpoint(b), None, other)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    // An announcement over 4 KiB is refused before any signature is checked.
    let mut oversized = keys::announce("AA-ONE", entente::now_ms(), &a_signing, &a_signing, &new);
    oversized.new_signature = vec![0; 5000];
    let status = announce(&a_material, "BB-TWO", &endpoint(b), None, oversized)
        .await
        .unwrap_err();
    assert!(
        status.message().contains("larger than 4096 bytes"),
        "{status:?}"
    );

    assert_eq!(b.shared().partner_keys("AA-ONE").unwrap(), held_before);
    assert!(
        b.shared().store.learned_keys("AA-ONE").unwrap().is_none(),
        "nothing stored"
    );
    let refusals: Vec<String> = b
        .shared()
        .store
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "refused" && e.detail.starts_with("key announcement"))
        .map(|e| e.detail)
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    assert_eq!(audit_count(&b.shared().store, "key-learned"), 0);
    // A's genuine traffic is unaffected.
    a.shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "genuine"))
        .await
        .unwrap();
    eventually(20, "A's item still reaches B", || {
        received_from(&b.shared().store, "AA-ONE") == 1
    })
    .await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_keys_survive_a_restart_and_the_audit_log_verifies_across_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two(federation(dir.path(), &["AA-ONE", "BB-TWO"]).await);
    let (a_config, a_addr) = (a.config.clone(), a.listener.local_addr().unwrap());
    let b_config = b.config.clone();
    let a_node = Node::start_on(a.config, a.listener).await.unwrap();
    let b_node = Node::start_on(b.config, b.listener).await.unwrap();
    b_node
        .shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "before"))
        .await
        .unwrap();
    eventually(20, "first item at A", || {
        received_from(&a_node.shared().store, "BB-TWO") == 1
    })
    .await;
    b_node
        .shared()
        .rotate_keys(RotateRequest {
            signing: true,
            encryption: true,
            tls: None,
        })
        .await
        .unwrap();
    let b_keys = b_node.shared().own_keys().identity.public_keys();
    eventually(20, "A learned B's keys", || {
        a_node.shared().partner_keys("BB-TWO").unwrap().current == b_keys
    })
    .await;

    // A restarts: the config still lists B's old keys, the store the learned ones.
    a_node.shutdown().await;
    assert_ne!(a_config.partner("BB-TWO").unwrap().keys, b_keys);
    let listener = tokio::net::TcpListener::bind(a_addr).await.unwrap();
    let a_node = Node::start_on(a_config, listener).await.unwrap();
    assert_eq!(
        a_node.shared().partner_keys("BB-TWO").unwrap().current,
        b_keys
    );
    b_node
        .shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "after restart"))
        .await
        .unwrap();
    a_node
        .shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "to B after restart"))
        .await
        .unwrap();
    eventually(20, "items both ways after A's restart", || {
        received_from(&a_node.shared().store, "BB-TWO") == 2
            && received_from(&b_node.shared().store, "AA-ONE") == 1
    })
    .await;
    a_node.shutdown().await;
    b_node.shutdown().await;

    // B's log holds checkpoints by its old and its new signing key.
    let store = Store::open_with_key_file(&b_config.data_dir, &b_config.data_key).unwrap();
    let current = SigningKey::load(&b_config.signing_key).unwrap().public();
    let retired = files::load_retired_signing(&b_config.signing_key).unwrap();
    assert_eq!(retired.len(), 1);
    let mut both = vec![current];
    both.extend(retired);
    let done = store.verify_audit_any(&both).unwrap();
    assert_eq!(done.first_bad, None);
    assert!(done.checkpoints >= 2, "{done:?}");
    let only_new = store.verify_audit(&current).unwrap();
    assert!(
        only_new.first_bad.is_some(),
        "the old key's checkpoint needs the old key"
    );
}

// ----- the command line, on `entente serve` processes -----

fn submit(config: &Path, dir: &Path, title: &str) {
    let file = dir.join(format!("{title}.json"));
    let mut r = entente::bench::sample_report();
    r.title = title.to_owned();
    std::fs::write(&file, entente::report::report_to_json(&r).to_string()).unwrap();
    let out = entente(&[
        "report",
        "submit",
        "--config",
        config.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn listed(config: &Path) -> usize {
    let out = entente(&[
        "report",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn keys_rotate_works_on_a_serving_node_and_audit_verify_accepts_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (a_config, b_config) = two_nodes(dir.path());
    let (ca_cert, ca_key) = (
        dir.path().join("a/tls/ca.crt"),
        dir.path().join("a/tls/ca.key"),
    );
    let mut a = serve(&a_config);
    let mut b = serve(&b_config);
    wait_for("A's control socket", || {
        dir.path().join("a/data/control.sock").exists()
    });
    submit(&a_config, dir.path(), "before");
    wait_for("the first report at B", || listed(&b_config) == 1);

    let out = entente(&[
        "keys",
        "rotate",
        "--config",
        a_config.to_str().unwrap(),
        "--signing",
        "--encryption",
        "--tls",
        "--ca-cert",
        ca_cert.to_str().unwrap(),
        "--ca-key",
        ca_key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("key announcement queued for BB-TWO; sent now"),
        "{shown}"
    );
    assert!(shown.contains("kept to open older items"), "{shown}");

    submit(&a_config, dir.path(), "after");
    submit(&a_config, dir.path(), "after-2");
    wait_for("the reports after the rotation at B", || {
        listed(&b_config) == 3
    });
    terminate(&mut a);
    terminate(&mut b);
    for config in [&a_config, &b_config] {
        let out = entente(&["audit", "verify", "--config", config.to_str().unwrap()]);
        assert!(out.status.success(), "{config:?}: {}", text(&out.stderr));
    }
    let out = entente(&[
        "audit",
        "search",
        "--config",
        b_config.to_str().unwrap(),
        "--action",
        "key-learned",
    ]);
    assert!(
        text(&out.stdout).contains("AA-ONE"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn keys_rotate_explains_what_it_needs() {
    let out = entente(&["keys", "rotate", "--config", "none.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing to rotate"),
        "{}",
        text(&out.stderr)
    );
    let out = entente(&["keys", "rotate", "--config", "none.toml", "--tls"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--ca-cert"),
        "{}",
        text(&out.stderr)
    );
}
