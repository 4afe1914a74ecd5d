//! Sharing policies between real nodes on 127.0.0.1 over mutual TLS: redaction in the
//! partner's copy, the third-party rule on re-sharing, inbound refusal of a kind, a reload
//! that keeps queued items, markings that override rules, and refusal to start with a bad
//! policy.
//!
//! Every node reads its policy file when it starts, so each test writes the files first.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use entente::{
    node::Node,
    pb,
    store::{self, DeliveryRecord, Store, StoredItem},
    testbed::Member,
};

const AA: &str = "AA-ONE";
const BB: &str = "BB-TWO";
const CC: &str = "CC-THREE";

/// Replaces the policy file the testbed wrote for `member`.
fn write_policy(member: &Member, text: &str) {
    std::fs::write(&member.config.policy, text).unwrap();
}

/// A report of `kind` with the given handling marking.
fn marked(
    kind: pb::ItemKind,
    title: &str,
    tlp: pb::TlpLevel,
    originator_control: bool,
    releasable_to: &[&str],
) -> pb::Report {
    let mut r = report(kind, title);
    let handling = r.handling.get_or_insert_with(Default::default);
    handling.tlp = tlp as i32;
    handling.originator_control = originator_control;
    handling.releasable_to = releasable_to.iter().map(|a| (*a).to_owned()).collect();
    r
}

/// The delivery record of own item `id` towards `partner`, if there is one.
fn record(store: &Store, id: &[u8; 16], partner: &str) -> Option<DeliveryRecord> {
    store
        .deliveries(id)
        .unwrap()
        .into_iter()
        .find(|(p, _)| p == partner)
        .map(|(_, r)| r)
}

/// The state of own item `id` towards `partner`, or "" when there is no record.
fn state(store: &Store, id: &[u8; 16], partner: &str) -> String {
    record(store, id, partner)
        .map(|r| r.state)
        .unwrap_or_default()
}

/// Items held that `origin` created and another agency delivered.
fn received(store: &Store, origin: &str) -> Vec<StoredItem> {
    store
        .list_items(usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|i| i.origin == origin && !i.own)
        .collect()
}

/// Titles of the reports in `items`, sorted.
fn titles(items: &[StoredItem]) -> Vec<String> {
    let mut t: Vec<String> = items
        .iter()
        .map(|i| i.report().unwrap().title.clone())
        .collect();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_receives_strs_without_identifiers_narrative_or_street_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &[AA, BB, CC]).await;
    // AA-ONE has no policy for CC-THREE: it gets nothing.
    write_policy(
        &members[0],
        r#"version = 1

[[partner]]
agency = "BB-TWO"
accept = ["suspicious-transaction"]

  [[partner.rule]]
  id = "strs-without-identifiers"
  kinds = ["suspicious-transaction"]
  tlp_max = "AMBER"
  action = "share"
  redact = ["subjects[].identifiers", "narrative"]
  generalise = ["subjects[].addresses"]
"#,
    );
    write_policy(
        &members[1],
        "version = 1\n\n[[partner]]\nagency = \"AA-ONE\"\naccept = [\"suspicious-transaction\"]\n",
    );
    let nodes = start_all(members).await;
    let (a, b) = (nodes[0].shared().clone(), nodes[1].shared().clone());

    let original = report(pb::ItemKind::SuspiciousTransaction, "str under redaction");
    assert!(original.subjects.iter().all(|s| !s.identifiers.is_empty()));
    assert!(
        original
            .subjects
            .iter()
            .all(|s| !s.addresses[0].lines.is_empty())
    );
    assert!(!original.narrative.trim().is_empty());
    let s = a.submit(original.clone()).await.unwrap();
    assert_eq!(s.queued_for, vec![BB.to_owned()]);
    let id = s.item_id;
    let id_text = store::ulid_text(&id);

    eventually(20, "BB-TWO stores the redacted STR", || {
        received(&b.store, AA).len() == 1
    })
    .await;
    let copies = received(&b.store, AA);
    let copy = copies[0].report().unwrap();
    assert_eq!(copies[0].item_id, id.to_vec());
    assert_eq!(copy.title, original.title);
    assert_eq!(
        copy.reference, original.reference,
        "not redacted by the rule"
    );
    assert!(copy.narrative.is_empty(), "narrative: {:?}", copy.narrative);
    assert_eq!(copy.subjects.len(), original.subjects.len());
    for (got, had) in copy.subjects.iter().zip(&original.subjects) {
        assert_eq!(got.name, had.name);
        assert_eq!(got.aliases, had.aliases, "aliases are not redacted");
        assert!(got.identifiers.is_empty(), "{:?}", got.identifiers);
        let country_only = pb::Address {
            country: had.addresses[0].country.clone(),
            ..Default::default()
        };
        assert_eq!(got.addresses, vec![country_only]);
    }

    // The sender's own original is untouched.
    let own: Vec<_> = a
        .store
        .list_items(usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|i| i.own)
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].report().unwrap(), &original);

    eventually(10, "the receipt marks it delivered", || {
        state(&a.store, &id, BB) == "delivered"
    })
    .await;
    let rec = record(&a.store, &id, BB).unwrap();
    assert_eq!(rec.rule, "strs-without-identifiers");
    assert_eq!(
        rec.redactions,
        vec![
            "subjects[].identifiers".to_owned(),
            "narrative".to_owned(),
            "subjects[].addresses (generalised)".to_owned(),
        ]
    );
    let to_c = record(&a.store, &id, CC).unwrap();
    assert_eq!(to_c.state, "withheld");
    assert!(to_c.detail.contains("no policy"), "{to_c:?}");

    let audit = a.store.audit_entries().unwrap();
    assert!(
        audit.iter().any(|e| e.action == "queued"
            && e.peer == BB
            && e.item_id == id_text
            && e.detail.contains("strs-without-identifiers")),
        "{audit:#?}"
    );
    assert_eq!(received_from(&nodes[2].shared().store, AA), 0);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_originator_controlled_item_is_passed_on_only_to_agencies_the_originator_released_it_to()
{
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &[AA, BB, CC]).await;
    // AA-ONE shares STRs with BB-TWO only; BB-TWO would share every STR with CC-THREE.
    write_policy(
        &members[0],
        r#"version = 1

[[partner]]
agency = "BB-TWO"

  [[partner.rule]]
  id = "strs"
  kinds = ["suspicious-transaction"]
  action = "share"
"#,
    );
    write_policy(
        &members[1],
        r#"version = 1

[[partner]]
agency = "AA-ONE"
accept = ["suspicious-transaction"]

[[partner]]
agency = "CC-THREE"

  [[partner.rule]]
  id = "strs-onward"
  kinds = ["suspicious-transaction"]
  action = "share"
"#,
    );
    write_policy(
        &members[2],
        r#"version = 1

[[partner]]
agency = "AA-ONE"
accept = ["suspicious-transaction"]

[[partner]]
agency = "BB-TWO"
accept = ["suspicious-transaction"]
"#,
    );
    let nodes = start_all(members).await;
    let (a, b, c) = (
        nodes[0].shared().clone(),
        nodes[1].shared().clone(),
        nodes[2].shared().clone(),
    );

    // Released to BB-TWO only: BB-TWO must not pass it on.
    let kept = marked(
        pb::ItemKind::SuspiciousTransaction,
        "released to BB-TWO only",
        pb::TlpLevel::Amber,
        true,
        &[BB],
    );
    let s = a.submit(kept).await.unwrap();
    assert_eq!(s.queued_for, vec![BB.to_owned()]);
    let kept_id = s.item_id;
    eventually(20, "BB-TWO receives the item", || {
        received(&b.store, AA).len() == 1
    })
    .await;
    let again = b.share_again(&store::ulid_text(&kept_id)).await.unwrap();
    assert!(again.queued_for.is_empty(), "{again:?}");
    let reason = again
        .withheld_from
        .iter()
        .find(|(p, _)| p == CC)
        .map(|(_, r)| r.clone())
        .expect("withheld from CC-THREE");
    assert!(reason.contains("third-party rule"), "{reason}");
    assert!(reason.contains(AA), "{reason}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.store.item_count(), 0, "CC-THREE receives nothing");
    assert_eq!(b.store.outbox_depth(CC), 0);
    let rec = record(&b.store, &kept_id, CC).unwrap();
    assert_eq!(rec.state, "withheld");
    assert!(rec.detail.contains("third-party rule"), "{rec:?}");

    // Released to CC-THREE too: the share goes through, and CC-THREE knows who wrote it.
    let released = marked(
        pb::ItemKind::SuspiciousTransaction,
        "released to BB-TWO and CC-THREE",
        pb::TlpLevel::Amber,
        true,
        &[BB, CC],
    );
    let released_id = a.submit(released).await.unwrap().item_id;
    eventually(20, "BB-TWO receives the second item", || {
        received(&b.store, AA).len() == 2
    })
    .await;
    let again = b
        .share_again(&store::ulid_text(&released_id))
        .await
        .unwrap();
    assert_eq!(again.queued_for, vec![CC.to_owned()], "{again:?}");
    eventually(20, "CC-THREE receives the released item", || {
        c.store.item_count() == 1
    })
    .await;
    let at_c = c.store.list_items(usize::MAX).unwrap();
    assert_eq!(at_c.len(), 1);
    assert_eq!(at_c[0].item_id, released_id.to_vec());
    assert_eq!(at_c[0].origin, AA);
    assert_eq!(at_c[0].sender, BB);
    assert!(!at_c[0].own);
    assert_eq!(
        at_c[0].report().unwrap().title,
        "released to BB-TWO and CC-THREE"
    );
    eventually(10, "BB-TWO's receipt from CC-THREE", || {
        state(&b.store, &released_id, CC) == "delivered"
    })
    .await;
    assert_eq!(state(&b.store, &kept_id, CC), "withheld");
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_policy_refuses_a_kind_the_node_does_not_accept_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &[AA, BB, CC]).await;
    write_policy(
        &members[0],
        r#"version = 1

[[partner]]
agency = "CC-THREE"

  [[partner.rule]]
  id = "alerts-and-denials"
  kinds = ["enforcement-alert", "denial-notification"]
  action = "share"
"#,
    );
    write_policy(
        &members[2],
        "version = 1\n\n[[partner]]\nagency = \"AA-ONE\"\naccept = [\"denial-notification\"]\n",
    );
    let nodes = start_all(members).await;
    let (a, c) = (nodes[0].shared().clone(), nodes[2].shared().clone());

    let alert = a
        .submit(report(pb::ItemKind::EnforcementAlert, "unwanted alert"))
        .await
        .unwrap();
    assert_eq!(alert.queued_for, vec![CC.to_owned()]);
    eventually(20, "CC-THREE refuses the alert", || {
        state(&a.store, &alert.item_id, CC) == "refused"
    })
    .await;
    let rec = record(&a.store, &alert.item_id, CC).unwrap();
    assert!(rec.detail.contains("NOT_ACCEPTED"), "{rec:?}");
    assert_eq!(
        a.store.outbox_depth(CC),
        0,
        "a refused item leaves the outbox"
    );
    assert_eq!(c.store.item_count(), 0, "the alert is not stored");
    let audit = c.store.audit_entries().unwrap();
    assert!(
        audit.iter().any(|e| e.action == "refused"
            && e.peer == AA
            && e.item_id == store::ulid_text(&alert.item_id)
            && e.detail.contains("NOT_ACCEPTED")),
        "{audit:#?}"
    );
    assert!(!audit.iter().any(|e| e.action == "received"), "{audit:#?}");

    // A kind it does accept still gets through from the same partner.
    let denial = a
        .submit(report(pb::ItemKind::DenialNotification, "wanted denial"))
        .await
        .unwrap();
    eventually(20, "CC-THREE stores the denial", || {
        state(&a.store, &denial.item_id, CC) == "delivered"
    })
    .await;
    let held = received(&c.store, AA);
    assert_eq!(titles(&held), vec!["wanted denial".to_owned()]);
    assert_eq!(c.store.item_count(), 1);
    for node in nodes {
        node.shutdown().await;
    }
}

const ALERTS_ONLY: &str = r#"version = 1

[[partner]]
agency = "BB-TWO"

  [[partner.rule]]
  id = "alerts"
  kinds = ["enforcement-alert"]
  action = "share"
"#;

/// Shares denials too; alerts would now lose their narrative, which shows whether items
/// sealed before the reload are decided again.
const ALERTS_AND_DENIALS: &str = r#"version = 1

[[partner]]
agency = "BB-TWO"

  [[partner.rule]]
  id = "alerts"
  kinds = ["enforcement-alert"]
  action = "share"
  redact = ["narrative"]

  [[partner.rule]]
  id = "denials"
  kinds = ["denial-notification"]
  action = "share"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_applies_to_new_items_and_loses_no_queued_item() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &[AA, BB]).await;
    let b = members.pop().unwrap();
    write_policy(
        &b,
        "version = 1\n\n[[partner]]\nagency = \"AA-ONE\"\n\
         accept = [\"enforcement-alert\", \"denial-notification\"]\n",
    );
    let b_addr = b.listener.local_addr().unwrap();
    drop(b.listener); // BB-TWO is down: everything for it stays queued.
    let a_member = members.pop().unwrap();
    write_policy(&a_member, ALERTS_ONLY);
    let policy_file = a_member.config.policy.clone();
    let a_node = Node::start_on(a_member.config, a_member.listener)
        .await
        .unwrap();
    let a = a_node.shared().clone();

    let alerts: Vec<_> = (0..10)
        .map(|i| report(pb::ItemKind::EnforcementAlert, &format!("alert {i:02}")))
        .collect();
    let alerts = a.submit_batch(alerts).await.unwrap();
    assert!(alerts.iter().all(|s| s.queued_for == vec![BB.to_owned()]));
    let before = a
        .submit(report(
            pb::ItemKind::DenialNotification,
            "denial before reload",
        ))
        .await
        .unwrap();
    assert!(before.queued_for.is_empty(), "{before:?}");
    assert_eq!(state(&a.store, &before.item_id, BB), "withheld");

    std::fs::write(&policy_file, ALERTS_AND_DENIALS).unwrap();
    a.reload_policy().unwrap();
    let after = a
        .submit(report(
            pb::ItemKind::DenialNotification,
            "denial after reload",
        ))
        .await
        .unwrap();
    assert_eq!(after.queued_for, vec![BB.to_owned()], "{after:?}");
    assert_eq!(
        record(&a.store, &after.item_id, BB).unwrap().rule,
        "denials"
    );
    // Items sealed before the reload are not decided again.
    for s in &alerts {
        let rec = record(&a.store, &s.item_id, BB).unwrap();
        assert_eq!(rec.state, "queued", "{rec:?}");
        assert_eq!(rec.rule, "alerts");
        assert!(rec.redactions.is_empty(), "{rec:?}");
    }
    assert_eq!(state(&a.store, &before.item_id, BB), "withheld");
    assert_eq!(a.store.outbox_depth(BB), 11);

    // An invalid file is refused and the policy in force stays.
    std::fs::write(
        &policy_file,
        "version = 1\n\n[[partner]]\nagency = \"BB-TWO\"\n\n  [[partner.rule]]\n  \
         id = \"denials\"\n  kinds = [\"gossip\"]\n  action = \"share\"\n",
    )
    .unwrap();
    let err = a.reload_policy().unwrap_err().to_string();
    assert!(err.contains(&policy_file.display().to_string()), "{err}");
    assert!(err.contains("gossip") || err.contains("kind"), "{err}");
    // So is a policy for an agency that is not a registered partner.
    std::fs::write(
        &policy_file,
        format!("{ALERTS_AND_DENIALS}\n[[partner]]\nagency = \"ZZ-NINE\"\naccept = [\"enforcement-alert\"]\n"),
    )
    .unwrap();
    let err = a.reload_policy().unwrap_err().to_string();
    assert!(err.contains("ZZ-NINE"), "{err}");
    let still = a
        .submit(report(
            pb::ItemKind::DenialNotification,
            "denial after failed reload",
        ))
        .await
        .unwrap();
    assert_eq!(still.queued_for, vec![BB.to_owned()], "{still:?}");
    assert_eq!(a.store.outbox_depth(BB), 12);

    let listener = tokio::net::TcpListener::bind(b_addr).await.unwrap();
    let b_node = Node::start_on(b.config, listener).await.unwrap();
    let bs = b_node.shared().clone();
    eventually(20, "BB-TWO receives the queued backlog", || {
        received_from(&bs.store, AA) == 12
    })
    .await;
    eventually(10, "AA-ONE's outbox drains", || {
        a.store.outbox_depth(BB) == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = received(&bs.store, AA);
    let mut expected: Vec<String> = (0..10).map(|i| format!("alert {i:02}")).collect();
    expected.extend(["denial after failed reload", "denial after reload"].map(String::from));
    assert_eq!(titles(&held), expected);
    for item in &held {
        let r = item.report().unwrap();
        if r.kind == pb::ItemKind::EnforcementAlert as i32 {
            assert!(
                !r.narrative.is_empty(),
                "sealed before the reload, unredacted"
            );
        }
    }
    b_node.shutdown().await;
    a_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlp_red_never_leaves_and_amber_strict_goes_only_to_agencies_named_in_releasable_to() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &[AA, BB, CC]).await;
    // A rule that shares every kind at every TLP level with each partner.
    write_policy(
        &members[0],
        r#"version = 1

[[partner]]
agency = "BB-TWO"

  [[partner.rule]]
  id = "everything"
  kinds = ["suspicious-transaction", "denial-notification", "enforcement-alert"]
  action = "share"

[[partner]]
agency = "CC-THREE"

  [[partner.rule]]
  id = "everything"
  kinds = ["suspicious-transaction", "denial-notification", "enforcement-alert"]
  action = "share"
"#,
    );
    let nodes = start_all(members).await;
    let (a, b, c) = (
        nodes[0].shared().clone(),
        nodes[1].shared().clone(),
        nodes[2].shared().clone(),
    );

    let red = a
        .submit(marked(
            pb::ItemKind::EnforcementAlert,
            "red",
            pb::TlpLevel::Red,
            false,
            &[BB, CC],
        ))
        .await
        .unwrap();
    assert!(red.queued_for.is_empty(), "{red:?}");
    for partner in [BB, CC] {
        let rec = record(&a.store, &red.item_id, partner).unwrap();
        assert_eq!(rec.state, "withheld");
        assert!(rec.detail.contains("TLP:RED"), "{rec:?}");
        assert!(
            rec.rule.is_empty(),
            "a marking, not a rule, decided: {rec:?}"
        );
    }

    let strict = a
        .submit(marked(
            pb::ItemKind::EnforcementAlert,
            "amber strict",
            pb::TlpLevel::AmberStrict,
            false,
            &[BB],
        ))
        .await
        .unwrap();
    assert_eq!(strict.queued_for, vec![BB.to_owned()], "{strict:?}");
    let rec = record(&a.store, &strict.item_id, CC).unwrap();
    assert_eq!(rec.state, "withheld");
    assert!(rec.detail.contains("releasable_to"), "{rec:?}");

    // An empty releasable_to list releases it to no one.
    let nobody = a
        .submit(marked(
            pb::ItemKind::EnforcementAlert,
            "amber strict for nobody",
            pb::TlpLevel::AmberStrict,
            false,
            &[],
        ))
        .await
        .unwrap();
    assert!(nobody.queued_for.is_empty(), "{nobody:?}");
    assert_eq!(nobody.withheld_from.len(), 2, "{nobody:?}");

    // A GREEN item reaches both: the partners are reachable and the rule does share.
    let green = a
        .submit(marked(
            pb::ItemKind::EnforcementAlert,
            "green",
            pb::TlpLevel::Green,
            false,
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(green.queued_for.len(), 2, "{green:?}");
    eventually(20, "every queued item delivered", || {
        [(&strict, BB), (&green, BB), (&green, CC)]
            .iter()
            .all(|(s, p)| state(&a.store, &s.item_id, p) == "delivered")
    })
    .await;
    assert_eq!(
        titles(&received(&b.store, AA)),
        vec!["amber strict".to_owned(), "green".to_owned()]
    );
    assert_eq!(titles(&received(&c.store, AA)), vec!["green".to_owned()]);
    assert_eq!(a.store.outbox_depth(BB) + a.store.outbox_depth(CC), 0);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_with_an_invalid_policy_or_one_naming_an_unregistered_agency() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &[AA, BB]).await;
    members.pop();
    let a = members.pop().unwrap();
    let file = a.config.policy.display().to_string();
    let start = |config: entente::config::Config| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Node::start_on(config, listener).await
    };

    // Line 9 names a kind that does not exist.
    write_policy(
        &a,
        r#"version = 1

[[partner]]
agency = "BB-TWO"

  [[partner.rule]]
  id = "alerts"
  action = "share"
  kinds = ["enforcement-alert", "gossip"]
"#,
    );
    let err = start(a.config.clone())
        .await
        .err()
        .expect("an invalid policy stops the node")
        .to_string();
    assert!(err.contains(&format!("{file}:9")), "{err}");
    assert!(err.contains("kinds"), "{err}");

    // A syntax error, on line 4.
    write_policy(&a, "version = 1\n\n[[partner]]\nagency = \"BB-TWO\n");
    let err = start(a.config.clone())
        .await
        .err()
        .expect("a policy that is not TOML stops the node")
        .to_string();
    assert!(err.contains(&format!("{file}:4")), "{err}");

    // A well-formed policy for an agency that is not a registered partner.
    write_policy(
        &a,
        r#"version = 1

[[partner]]
agency = "BB-TWO"
accept = ["enforcement-alert"]

[[partner]]
agency = "ZZ-NINE"
accept = ["enforcement-alert"]
"#,
    );
    let err = start(a.config.clone())
        .await
        .err()
        .expect("a policy for an unknown agency stops the node")
        .to_string();
    assert!(err.contains(&file), "{err}");
    assert!(err.contains("ZZ-NINE"), "{err}");
    assert!(err.contains("not a registered partner"), "{err}");

    // The same node starts once its policy is valid.
    write_policy(
        &a,
        "version = 1\n\n[[partner]]\nagency = \"BB-TWO\"\naccept = [\"enforcement-alert\"]\n",
    );
    drop(a.listener);
    let node = start(a.config).await.unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_naming_an_unregistered_agency_is_reported_with_the_line_of_that_agency() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &[AA, BB]).await;
    members.pop();
    let a = members.pop().unwrap();
    let file = a.config.policy.display().to_string();
    write_policy(
        &a,
        r#"version = 1

[[partner]]
agency = "BB-TWO"
accept = ["enforcement-alert"]

[[partner]]
agency = "ZZ-NINE"
accept = ["enforcement-alert"]
"#,
    );
    let err = Node::start_on(a.config, a.listener)
        .await
        .err()
        .expect("a policy for an unknown agency stops the node")
        .to_string();
    assert!(err.contains("ZZ-NINE"), "{err}");
    // The `[[partner]]` header is on line 7, its `agency` key on line 8.
    assert!(
        err.contains(&format!("{file}:8")) || err.contains(&format!("{file}:7")),
        "{err}"
    );
}
