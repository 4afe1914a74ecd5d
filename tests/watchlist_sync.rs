//! Watchlist sync between real nodes on 127.0.0.1 over mutual TLS: publish, deliver,
//! update, converge; a lost delta recovered by pull; a forged owner refused; a delta whose
//! digest disagrees not applied, and the list restored by a snapshot; a partner
//! restarted mid-sync; a list the policy withholds; and the CLI's refusals of bad input.

#![allow(clippy::unwrap_used)]

mod common;

use std::{path::Path, process::Command};

use common::*;
use entente::{
    demo::send_raw,
    node::{Node, Shared},
    pb,
    store::Store,
    testbed::Member,
    watchlist::{self, Format},
};
use prost::Message as _;

const LIST: &str = "AA-ONE/dpl";
const V1: &str = include_str!("../examples/watchlists/dpl-2026-11.txt");
const V2: &str = include_str!("../examples/watchlists/dpl-2026-12.txt");

/// A policy giving each partner every report kind and every watchlist delta, both ways;
/// `lists` narrows the outbound watchlist rule to these patterns.
fn list_policy(partners: &[&str], lists: Option<&str>) -> String {
    let mut text = String::from("version = 1\n");
    for p in partners {
        let narrow = lists.map_or(String::new(), |l| format!("  watchlists = [{l}]\n"));
        text.push_str(&format!(
            "\n[[partner]]\nagency = \"{p}\"\naccept = [\"suspicious-transaction\", \
             \"denial-notification\", \"enforcement-alert\", \"watchlist-delta\"]\n\
             \n  [[partner.rule]]\n  id = \"lists\"\n  kinds = [\"watchlist-delta\"]\n{narrow}  \
             action = \"share\"\n"
        ));
    }
    text
}

/// A federation where every member shares watchlists with every other.
async fn list_federation(dir: &Path, agencies: &[&str]) -> Vec<Member> {
    let members = federation(dir, agencies).await;
    for m in &members {
        let others: Vec<&str> = agencies
            .iter()
            .copied()
            .filter(|a| *a != m.config.agency)
            .collect();
        std::fs::write(&m.config.policy, list_policy(&others, None)).unwrap();
    }
    members
}

/// The entries of a DPL text.
fn dpl(dir: &Path, name: &str, text: &str) -> Vec<pb::WatchlistEntry> {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let imported = watchlist::import(Format::BisDpl, &path, true).unwrap();
    imported.entries
}

/// `n` synthetic entries, version `v` of each (a different remark per version).
fn synthetic(n: usize, v: u32) -> Vec<pb::WatchlistEntry> {
    (0..n)
        .map(|i| pb::WatchlistEntry {
            id: format!("e{i:05}"),
            r#type: pb::SubjectType::Organisation as i32,
            name: format!("Example Trading Company Number {i} Limited"),
            aliases: vec![format!("Example Trading {i}")],
            countries: vec!["HK".into()],
            remarks: format!("version {v}"),
            ..Default::default()
        })
        .collect()
}

/// `delta` sealed by `from` for `to`, as a genuine envelope of `from`'s.
fn seal_delta(from: &Shared, to: &Shared, delta: pb::WatchlistDelta) -> pb::Envelope {
    let payload = pb::Item {
        body: Some(pb::item::Body::WatchlistDelta(delta)),
        originator: String::new(),
    }
    .encode_to_vec();
    entente::envelope::seal(
        &from.own_keys().identity,
        &to.config.agency,
        &to.own_keys().identity.public_keys(),
        ulid::Ulid::new().to_bytes(),
        pb::ItemKind::WatchlistDelta,
        entente::now_ms(),
        &payload,
    )
    .unwrap()
}

fn version(store: &Store, list: &str) -> u64 {
    store.list_meta(list).unwrap().map_or(0, |m| m.version)
}

/// Waits until `to` holds `list` at `v` with the same digest and entry count as `from`.
async fn converged(from: &Shared, to: &Shared, list: &str, v: u64, secs: u64) {
    eventually(
        secs,
        &format!("{list} v{v} at {}", to.config.agency),
        || {
            let (a, b) = (
                from.store.list_meta(list).unwrap(),
                to.store.list_meta(list).unwrap(),
            );
            matches!((a, b), (Some(a), Some(b))
            if a.version == v && b.version == v && a.digest == b.digest
                && a.entry_count == b.entry_count && b.state == "in-sync")
        },
    )
    .await;
    let entries = |s: &Shared| s.store.list_entries(list).unwrap();
    assert_eq!(entries(from), entries(to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_list_reaches_the_partner_and_an_update_converges() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_all(list_federation(dir.path(), &["AA-ONE", "BB-TWO"]).await).await;
    let (a, b) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    let first = a
        .import_list(LIST, dpl(dir.path(), "v1.txt", V1), "v1.txt")
        .await
        .unwrap();
    assert!(first.published);
    assert_eq!((first.version, first.entry_count), (1, 5));
    assert_eq!(first.decisions[0].state, "queued");
    converged(&a, &b, LIST, 1, 20).await;
    eventually(10, "the index follows the applied snapshot", || {
        b.screening_entries() == 5
    })
    .await;

    let second = a
        .import_list(LIST, dpl(dir.path(), "v2.txt", V2), "v2.txt")
        .await
        .unwrap();
    assert_eq!(
        (second.version, second.upserts, second.removals),
        (2, 2, 1),
        "one added, one changed, one removed"
    );
    converged(&a, &b, LIST, 2, 20).await;
    assert_eq!(b.screening_entries(), 5);
    let again = a
        .import_list(LIST, dpl(dir.path(), "v2.txt", V2), "v2.txt")
        .await
        .unwrap();
    assert!(!again.published, "the same file publishes nothing");
    assert_eq!(version(&a.store, LIST), 2);
    assert_eq!(audit_count(&a.store, "list-published"), 2);
    assert_eq!(audit_count(&b.store, "list-applied"), 2);
    eventually(10, "both versions confirmed by receipts", || {
        let rows = a.store.list_sync(LIST).unwrap();
        rows.len() == 1 && rows[0].confirmed == 2
    })
    .await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delta_is_recovered_by_pull() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = list_federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    // The owner publishes three versions while not serving, and version 2 never leaves
    // its outbox.
    let a_config = members[0].config.clone();
    {
        let a = Shared::open(a_config.clone()).unwrap();
        for v in 1..=3 {
            a.import_list(LIST, synthetic(20 + v as usize, v), "synthetic")
                .await
                .unwrap();
        }
        let queued = a.store.outbox_batch("BB-TWO", None, 10).unwrap();
        assert_eq!(queued.len(), 3);
        a.store
            .mark_refused("BB-TWO", queued[1].item_id, "lost for the test")
            .unwrap();
        a.store.flush().await.unwrap();
    }
    let a_member = members.remove(0);
    let nodes = start_all(vec![
        Member {
            config: a_config,
            listener: a_member.listener,
        },
        members.remove(0),
    ])
    .await;
    let (a, b) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    converged(&a, &b, LIST, 3, 20).await;
    assert!(audit_count(&b.store, "list-pull") >= 1, "B pulled");
    assert!(audit_count(&a.store, "list-pull") >= 1, "A served the pull");
    assert!(b.store.staged_versions(LIST).unwrap().is_empty());
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_for_a_list_sealed_by_another_agency_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = list_federation(dir.path(), &["AA-ONE", "BB-TWO", "CC-THREE"]).await;
    let c = members.pop().unwrap();
    let nodes = start_all(members).await;
    let b = nodes[1].shared().clone();
    // CC-THREE is B's registered partner, with valid keys and certificate, and tries to
    // publish AA-ONE's list.
    let c_shared = Shared::open(c.config.clone()).unwrap();
    let forged = pb::WatchlistDelta {
        list: LIST.into(),
        from_version: 0,
        to_version: 1,
        upserts: synthetic(3, 1),
        digest: watchlist::Digest::of(&synthetic(3, 1)).0.to_vec(),
        entry_count: 3,
        part: 1,
        parts: 1,
        ..Default::default()
    };
    let env = seal_delta(&c_shared, &b, forged);
    let endpoint = format!("https://{}", nodes[1].addr());
    let result = send_raw(&material(&c.config), "BB-TWO", &endpoint, vec![env])
        .await
        .unwrap();
    assert!(result.receipt.is_none());
    let refusal = &result.refusals[0];
    assert_eq!(refusal.reason, pb::RefusalReason::NotListOwner as i32);
    assert!(
        refusal.detail.contains("owned by AA-ONE"),
        "{}",
        refusal.detail
    );
    assert!(b.store.lists().unwrap().is_empty(), "nothing stored");
    let last = last_audit(&b.store);
    assert_eq!(
        (last.action.as_str(), last.peer.as_str()),
        ("refused", "CC-THREE")
    );
    assert!(last.detail.contains("NOT_LIST_OWNER"), "{}", last.detail);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_whose_digest_disagrees_is_not_applied_and_a_snapshot_restores_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let members = list_federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let a_material = material(&members[0].config);
    let nodes = start_all(members).await;
    let (a, b) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    a.import_list(LIST, dpl(dir.path(), "v1.txt", V1), "v1.txt")
        .await
        .unwrap();
    converged(&a, &b, LIST, 1, 20).await;
    let before = b.store.list_entries(LIST).unwrap();

    // A genuine delta from the owner, v1 -> v2, whose digest is not what its changes give
    // (as a bug on either side, or a corrupted copy, would make it).
    let bad = pb::WatchlistDelta {
        list: LIST.into(),
        from_version: 1,
        to_version: 2,
        upserts: synthetic(2, 2),
        digest: vec![7; 32],
        entry_count: before.len() as u64 + 2,
        part: 1,
        parts: 1,
        ..Default::default()
    };
    let env = seal_delta(&a, &b, bad);
    let endpoint = format!("https://{}", nodes[1].addr());
    let result = send_raw(&a_material, "BB-TWO", &endpoint, vec![env])
        .await
        .unwrap();
    assert!(result.refusals.is_empty(), "{:?}", result.refusals);

    eventually(20, "BB-TWO records the mismatch", || {
        audit_count(&b.store, "list-mismatch") == 1
    })
    .await;
    // The snapshot pulled from the owner puts the list back as the owner holds it.
    converged(&a, &b, LIST, 1, 20).await;
    assert_eq!(b.store.list_entries(LIST).unwrap(), before);
    assert!(audit_count(&b.store, "list-pull") >= 1);
    // The screening index follows the store a moment after each version is stored.
    eventually(10, "the screening index follows the snapshot", || {
        b.screening_entries() == before.len()
    })
    .await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_restarted_mid_sync_converges() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = list_federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    // Small messages make every version travel in many parts.
    members[0].config.max_message_bytes = 16 * 1024;
    let b_config = members[1].config.clone();
    let b_addr = members[1].listener.local_addr().unwrap();
    let mut nodes = start_all(members).await;
    let a = nodes[0].shared().clone();
    a.import_list(LIST, synthetic(600, 1), "synthetic")
        .await
        .unwrap();
    let b = nodes[1].shared().clone();
    eventually(20, "B has begun receiving", || {
        audit_count(&b.store, "received") > 0
    })
    .await;
    nodes.pop().unwrap().shutdown().await;
    drop(b);
    a.import_list(LIST, synthetic(500, 2), "synthetic")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(b_addr).await.unwrap();
    let b_node = Node::start_on(b_config, listener).await.unwrap();
    let b = b_node.shared().clone();
    converged(&a, &b, LIST, 2, 30).await;
    // The screening index follows the store a moment after each version is stored.
    eventually(10, "the index was rebuilt and followed", || {
        b.screening_entries() == 500
    })
    .await;
    b_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_the_policy_does_not_name_is_withheld_and_pulls_of_it_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let members = list_federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let narrow = list_policy(&["BB-TWO"], Some("\"AA-ONE/shared-*\""));
    std::fs::write(&members[0].config.policy, narrow).unwrap();
    let nodes = start_all(members).await;
    let (a, b) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    let kept = a
        .import_list(LIST, synthetic(4, 1), "synthetic")
        .await
        .unwrap();
    assert_eq!(kept.decisions[0].state, "withheld");
    assert_eq!(a.store.outbox_depth("BB-TWO"), 0);
    assert_eq!(audit_count(&a.store, "withheld"), 1);
    let shared_list = "AA-ONE/shared-1";
    let sent = a
        .import_list(shared_list, synthetic(2, 1), "synthetic")
        .await
        .unwrap();
    assert_eq!(sent.decisions[0].state, "queued");
    converged(&a, &b, shared_list, 1, 20).await;
    assert!(b.store.list_meta(LIST).unwrap().is_none());
    // B asks for the withheld list directly: the owner refuses.
    let b_config = &nodes[1].shared().config;
    let partner = b_config.partner("AA-ONE").unwrap();
    let tls_config =
        entente::tls::client_config(&material(b_config), None, "AA-ONE", None).unwrap();
    let channel = entente::tls::channel(&partner.endpoint, tls_config).unwrap();
    let mut client = pb::peer_exchange_client::PeerExchangeClient::new(channel);
    let status = client
        .pull(pb::PullRequest {
            list: LIST.into(),
            held_version: 0,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status.message().contains("does not give"),
        "{}",
        status.message()
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[test]
fn the_cli_refuses_bad_input_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("aa");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_entente"))
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let out = run(&[
        "init",
        "--dir",
        node.to_str().unwrap(),
        "--agency",
        "AA-ONE",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = node.join("entente.toml");
    let config = config.to_str().unwrap();
    let v1 = dir.path().join("v1.txt");
    std::fs::write(&v1, V1).unwrap();
    let v1 = v1.to_str().unwrap();
    let import = |list: &str, format: &str, path: &str| {
        run(&[
            "watchlist",
            "import",
            "--config",
            config,
            "--list",
            list,
            "--format",
            format,
            path,
        ])
    };
    let ok = import(LIST, "bis-dpl", v1);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("published AA-ONE/dpl v1"),
        "{}",
        text(&ok.stdout)
    );

    let cases = [
        (import(LIST, "bis-txt", v1), "invalid value 'bis-txt'"),
        (import("BB-TWO/dpl", "bis-dpl", v1), "owned by BB-TWO"),
        (import("AA-ONE/DPL", "bis-dpl", v1), "is invalid"),
        (
            import(LIST, "bis-dpl", "/nonexistent/dpl.txt"),
            "file not found",
        ),
        (import(LIST, "csl", v1), "expected the CSL header"),
    ];
    for (out, expected) in &cases {
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
    let mut bad_row = V2.to_owned();
    bad_row.push_str("\"BROKEN ROW\"\t\"x\"\r\n");
    let broken = dir.path().join("broken.txt");
    std::fs::write(&broken, bad_row).unwrap();
    let strict = run(&[
        "watchlist",
        "import",
        "--config",
        config,
        "--list",
        LIST,
        "--format",
        "bis-dpl",
        "--strict",
        broken.to_str().unwrap(),
    ]);
    assert!(!strict.status.success());
    assert!(
        text(&strict.stderr).contains("broken.txt:7"),
        "{}",
        text(&strict.stderr)
    );

    let listed = run(&["watchlist", "list", "--config", config, "--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["version"], 1, "nothing after v1 was stored: {rows}");
    assert_eq!(rows[0]["entries"], 5);

    let lenient = run(&[
        "watchlist",
        "import",
        "--config",
        config,
        "--list",
        LIST,
        "--format",
        "bis-dpl",
        broken.to_str().unwrap(),
    ]);
    assert!(lenient.status.success(), "{}", text(&lenient.stderr));
    assert!(
        text(&lenient.stderr).contains("broken.txt:7"),
        "{}",
        text(&lenient.stderr)
    );
    assert!(
        text(&lenient.stdout).contains("v2"),
        "{}",
        text(&lenient.stdout)
    );

    let shown = run(&["watchlist", "show", "--config", config, LIST]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert!(
        text(&shown.stdout).contains("KESTREL AVIONICS LLC"),
        "{}",
        text(&shown.stdout)
    );
}
