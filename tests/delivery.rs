//! Delivery between real nodes on 127.0.0.1 over mutual TLS: several partners, receipts,
//! redelivery, a partner offline and back, and a sender restarted mid-queue.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use entente::{demo::send_raw, node::Node, pb, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_every_partner_and_receipts_mark_them_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_all(federation(dir.path(), &["AA-ONE", "BB-TWO", "CC-THREE"]).await).await;
    let sender = nodes[0].shared().clone();
    for i in 0..5 {
        sender
            .submit(report(
                pb::ItemKind::EnforcementAlert,
                &format!("alert {i}"),
            ))
            .await
            .unwrap();
    }
    eventually(20, "five items at each partner", || {
        received_from(&nodes[1].shared().store, "AA-ONE") == 5
            && received_from(&nodes[2].shared().store, "AA-ONE") == 5
    })
    .await;
    eventually(10, "all receipts verified", || {
        sender.store.outbox_depth("BB-TWO") == 0 && sender.store.outbox_depth("CC-THREE") == 0
    })
    .await;
    for item in sender.store.list_items(100).unwrap() {
        let states = sender
            .store
            .deliveries(&store::id16(&item.item_id))
            .unwrap();
        assert_eq!(states.len(), 2);
        assert!(
            states.iter().all(|(_, r)| r.state == "delivered"),
            "{states:?}"
        );
    }
    assert_eq!(audit_count(&sender.store, "delivered"), 10);
    assert_eq!(audit_count(&nodes[1].shared().store, "received"), 5);
    let received = nodes[1].shared().store.list_items(10).unwrap();
    let titles: Vec<_> = received
        .iter()
        .filter_map(|i| i.report())
        .map(|r| r.title.clone())
        .collect();
    assert!(titles.contains(&"alert 3".to_owned()), "{titles:?}");
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_no_policy_rule_allows_is_withheld() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let denials_only = entente::testbed::share_policy(
        &["BB-TWO"],
        &[entente::sharing::ShareKind::DenialNotification],
    );
    std::fs::write(&members[0].config.policy, denials_only).unwrap();
    let nodes = start_all(members).await;
    let sender = nodes[0].shared().clone();
    let s = sender
        .submit(report(pb::ItemKind::SuspiciousTransaction, "str"))
        .await
        .unwrap();
    assert!(s.queued_for.is_empty());
    assert_eq!(s.withheld_from[0].0, "BB-TWO");
    assert_eq!(sender.store.outbox_depth("BB-TWO"), 0);
    let d = sender
        .submit(report(pb::ItemKind::DenialNotification, "denial"))
        .await
        .unwrap();
    assert_eq!(d.queued_for, vec!["BB-TWO".to_owned()]);
    eventually(20, "the denial arrives", || {
        received_from(&nodes[1].shared().store, "AA-ONE") == 1
    })
    .await;
    assert_eq!(audit_count(&sender.store, "withheld"), 1);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_envelope_is_receipted_again_but_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    // The sender does not serve: the test plays its delivery task by hand.
    let a = members.remove(0);
    let a_shared = entente::node::Shared::open(a.config.clone()).unwrap();
    let nodes = start_all(members).await;
    let b = nodes[0].shared().clone();
    a_shared
        .submit(report(pb::ItemKind::EnforcementAlert, "once"))
        .await
        .unwrap();
    let queued = a_shared.store.outbox_batch("BB-TWO", None, 10).unwrap();
    let env = queued[0].envelope.clone();
    let endpoint = format!("https://{}", nodes[0].addr());
    let tls = material(&a.config);
    let first = send_raw(&tls, "BB-TWO", &endpoint, vec![env.clone()])
        .await
        .unwrap();
    let second = send_raw(&tls, "BB-TWO", &endpoint, vec![env.clone()])
        .await
        .unwrap();
    for result in [&first, &second] {
        let receipt = result.receipt.as_ref().expect("a receipt");
        entente::envelope::verify_receipt(
            receipt,
            "BB-TWO",
            &b.own_keys().identity.public_keys(),
            "AA-ONE",
        )
        .unwrap();
        assert_eq!(
            receipt.entries[0].envelope_digest,
            entente::envelope::envelope_digest(&env)
        );
        assert!(result.refusals.is_empty());
    }
    assert_eq!(b.store.item_count(), 1);
    assert_eq!(received_from(&b.store, "AA-ONE"), 1);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_was_offline_gets_everything_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let b = members.pop().unwrap();
    let b_addr = b.listener.local_addr().unwrap();
    drop(b.listener); // B is down: connections to its port are refused.
    let nodes = start_all(members).await;
    let sender = nodes[0].shared().clone();
    for i in 0..20 {
        sender
            .submit(report(pb::ItemKind::EnforcementAlert, &format!("a{i}")))
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        sender.store.outbox_depth("BB-TWO"),
        20,
        "nothing is lost while B is down"
    );
    let listener = tokio::net::TcpListener::bind(b_addr).await.unwrap();
    let b_node = Node::start_on(b.config, listener).await.unwrap();
    eventually(20, "B receives the backlog", || {
        received_from(&b_node.shared().store, "AA-ONE") == 20
    })
    .await;
    eventually(10, "A's outbox drains", || {
        sender.store.outbox_depth("BB-TWO") == 0
    })
    .await;
    b_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_restarted_mid_queue_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let b = members.pop().unwrap();
    let a = members.pop().unwrap();
    let a_config = a.config.clone();
    let a_addr = a.listener.local_addr().unwrap();
    let b_node = Node::start_on(b.config, b.listener).await.unwrap();
    let a_node = Node::start_on(a.config, a.listener).await.unwrap();
    let reports: Vec<_> = (0..300)
        .map(|i| report(pb::ItemKind::EnforcementAlert, &format!("r{i}")))
        .collect();
    a_node.shared().submit_batch(reports).await.unwrap();
    // Stop A while its outbox is (most likely) still being delivered.
    a_node.shutdown().await;
    let a_node = Node::start_on(
        a_config,
        tokio::net::TcpListener::bind(a_addr).await.unwrap(),
    )
    .await
    .unwrap();
    eventually(30, "all 300 items at B", || {
        received_from(&b_node.shared().store, "AA-ONE") == 300
    })
    .await;
    eventually(10, "A's outbox drains", || {
        a_node.shared().store.outbox_depth("BB-TWO") == 0
    })
    .await;
    assert_eq!(b_node.shared().store.item_count(), 300, "no duplicates");
    assert_eq!(audit_count(&a_node.shared().store, "delivered"), 300);
    a_node.shutdown().await;
    b_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_with_a_smaller_message_limit_gets_what_fits_and_nothing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    members[1].config.max_message_bytes = 8 * 1024;
    let nodes = start_all(members).await;
    let sender = nodes[0].shared().clone();
    // Five 2 KiB reports: together over B's limit, each well under it.
    for i in 0..5 {
        sender
            .submit(report(
                pb::ItemKind::EnforcementAlert,
                &format!("small {i}"),
            ))
            .await
            .unwrap();
    }
    // One report that alone exceeds B's limit, then one more that fits.
    let mut big = report(pb::ItemKind::EnforcementAlert, "too big for B");
    big.narrative = "x".repeat(12 * 1024);
    let big = sender.submit(big).await.unwrap();
    sender
        .submit(report(pb::ItemKind::EnforcementAlert, "after the big one"))
        .await
        .unwrap();
    eventually(30, "the six that fit arrive", || {
        received_from(&nodes[1].shared().store, "AA-ONE") == 6
    })
    .await;
    eventually(10, "the outbox drains", || {
        sender.store.outbox_depth("BB-TWO") == 0
    })
    .await;
    let states = sender.store.deliveries(&big.item_id).unwrap();
    assert_eq!(states[0].1.state, "refused", "{states:?}");
    assert!(
        states[0]
            .1
            .detail
            .contains("larger than the partner accepts"),
        "{states:?}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}
