//! Items after they were sent, across three real nodes on loopback with mutual TLS:
//! corrections, retractions, consent to pass on, and denial consultations, each as a
//! signed, acknowledged exchange; and each message forged by an agency other than the one
//! entitled to send it refused.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use entente::{
    demo::send_raw,
    envelope, lifecycle,
    node::{Node, NodeError, Shared},
    pb,
    sharing::ShareKind,
    store::{self, StoredItem},
    testbed::{self, Member},
};
use prost::Message as _;

const A: &str = "AA-ONE";
const B: &str = "BB-TWO";
const C: &str = "CC-THREE";

/// Three running nodes; AA-ONE's policy is `a_policy` (everyone shares everything with
/// everyone when it is `None`).
struct Three {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl Three {
    async fn start(a_policy: Option<String>) -> Self {
        Self::start_adjusted(&[A, B, C], |members| {
            if let Some(policy) = a_policy {
                std::fs::write(&members[0].config.policy, policy).unwrap();
            }
        })
        .await
    }

    /// A federation of `agencies` (any number), adjusted by `adjust` before it starts.
    async fn start_adjusted(agencies: &[&str], adjust: impl FnOnce(&mut Vec<Member>)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut members = federation(dir.path(), agencies).await;
        adjust(&mut members);
        let nodes = start_all(members).await;
        Self { _dir: dir, nodes }
    }

    fn node(&self, n: usize) -> &Shared {
        self.nodes[n].shared()
    }

    fn a(&self) -> &Shared {
        self.nodes[0].shared()
    }

    fn b(&self) -> &Shared {
        self.nodes[1].shared()
    }

    fn c(&self) -> &Shared {
        self.nodes[2].shared()
    }

    fn endpoint(&self, n: usize) -> String {
        format!("https://{}", self.nodes[n].addr())
    }
}

/// A policy sharing every kind with `to` and nothing with `not_to` (which is still a
/// registered partner, accepted from).
fn policy_sharing_with(to: &[&str], not_to: &[&str]) -> String {
    let mut text = testbed::share_policy(to, &ShareKind::ALL);
    text.push_str(&testbed::share_policy(not_to, &[]).replacen("version = 1\n", "", 1));
    text
}

fn parse(id: &str) -> [u8; 16] {
    ulid::Ulid::from_string(id).unwrap().to_bytes()
}

fn held(shared: &Shared, id: &[u8; 16], sender: &str) -> Option<StoredItem> {
    shared.store.item_at(&store::item_key(id, sender)).unwrap()
}

/// Submits `report` at `from` and waits until each of `to` acknowledged it.
async fn share(from: &Shared, report: pb::Report, to: &[&str]) -> [u8; 16] {
    let id = from.submit(report).await.unwrap().item_id;
    for partner in to {
        eventually(10, "the item is delivered", || {
            delivered(&from.store, &id, partner)
        })
        .await;
    }
    id
}

/// Waits until message `message` sent by `from` was acknowledged by `partner`.
async fn acknowledged(from: &Shared, message: &str, partner: &str) {
    let id = parse(message);
    eventually(10, "the message is acknowledged", || {
        delivered(&from.store, &id, partner)
    })
    .await;
}

/// Seals `body` as `from` for `to` and delivers it over `from`'s own TLS identity.
async fn forge(three: &Three, from: usize, to: usize, body: pb::item::Body) -> pb::BatchResult {
    let item = pb::Item {
        body: Some(body),
        originator: String::new(),
    };
    let envelope = seal_as(three, from, to, ulid::Ulid::new().to_bytes(), &item);
    deliver(three, from, to, vec![envelope]).await
}

/// Seals `item` as `from` for `to` under item id `id`, as `from`'s node would.
fn seal_as(three: &Three, from: usize, to: usize, id: [u8; 16], item: &pb::Item) -> pb::Envelope {
    let sender = three.nodes[from].shared();
    let recipient = three.nodes[to].shared().config.agency.clone();
    let partner = sender.partner(&recipient).unwrap();
    let kind = match item.body.as_ref().unwrap() {
        pb::item::Body::Report(r) => r.kind(),
        other => lifecycle::body_kind(other),
    };
    envelope::seal(
        &sender.own_keys().identity,
        &recipient,
        &sender.sealing_keys(&partner),
        id,
        kind,
        entente::now_ms(),
        &item.encode_to_vec(),
    )
    .unwrap()
}

/// Delivers `envelopes` from `from` to `to` over `from`'s own TLS identity.
async fn deliver(
    three: &Three,
    from: usize,
    to: usize,
    envelopes: Vec<pb::Envelope>,
) -> pb::BatchResult {
    let sender = three.nodes[from].shared();
    let recipient = three.nodes[to].shared().config.agency.clone();
    send_raw(
        &material(&sender.config),
        &recipient,
        &three.endpoint(to),
        envelopes,
    )
    .await
    .unwrap()
}

fn refused_with(result: &pb::BatchResult, reason: pb::RefusalReason) {
    assert!(result.receipt.is_none(), "{result:?}");
    assert_eq!(result.refusals.len(), 1, "{result:?}");
    assert_eq!(
        result.refusals[0].reason, reason as i32,
        "{}",
        result.refusals[0].detail
    );
}

fn amber(mut r: pb::Report) -> pb::Report {
    r.handling.as_mut().unwrap().tlp = pb::TlpLevel::Amber as i32;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_reaches_every_partner_that_had_the_item_and_receivers_keep_the_history() {
    let three = Three::start(None).await;
    let original = amber(report(pb::ItemKind::EnforcementAlert, "Kumquat account"));
    let id = share(three.a(), original.clone(), &[B, C]).await;
    let text = store::ulid_text(&id);

    // A correction may not widen the handling: refused, nothing changes.
    let mut wider = original.clone();
    wider.title = "wider".into();
    wider.handling.as_mut().unwrap().tlp = pb::TlpLevel::Green as i32;
    let err = three.a().correct(&text, wider, "widen").await.unwrap_err();
    assert!(matches!(err, NodeError::Invalid(_)), "{err}");
    assert!(
        err.to_string()
            .contains("TLP:GREEN is wider than the original's TLP:AMBER"),
        "{err}"
    );
    assert_eq!(held(three.a(), &id, A).unwrap().version, 1);
    let last = common::last_audit(&three.a().store);
    assert_eq!(
        (
            last.action.as_str(),
            last.peer.as_str(),
            last.item_id.as_str()
        ),
        ("refused", "local", text.as_str()),
        "the refusal is recorded"
    );
    assert!(
        last.detail.starts_with("correction: handling.tlp"),
        "{}",
        last.detail
    );

    let mut corrected = original.clone();
    corrected.title = "Rambutan account".into();
    corrected.handling.as_mut().unwrap().tlp = pb::TlpLevel::AmberStrict as i32;
    corrected.handling.as_mut().unwrap().releasable_to = vec![B.into(), C.into()];
    // The original named no agency in releasable_to: a correction cannot add any.
    let err = three
        .a()
        .correct(&text, corrected.clone(), "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("releasable_to"), "{err}");
    corrected.handling.as_mut().unwrap().releasable_to.clear();
    corrected.handling.as_mut().unwrap().tlp = pb::TlpLevel::Amber as i32;
    let done = three
        .a()
        .correct(&text, corrected, "the consignee was misidentified")
        .await
        .unwrap();
    assert_eq!(done.decisions.len(), 2, "{done:?}");
    for partner in [B, C] {
        acknowledged(three.a(), &done.message_id, partner).await;
        let node = if partner == B { three.b() } else { three.c() };
        let item = held(node, &id, A).unwrap();
        assert_eq!(item.version, 2);
        assert_eq!(item.report().unwrap().title, "Rambutan account");
        assert_eq!(item.reason, "the consignee was misidentified");
        let history = node.store.versions(&id, A).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].report().unwrap().title, "Kumquat account");
        assert_eq!(audit_count(&node.store, "corrected"), 1);
    }
    // The originator keeps the history too, and shows per partner what became of the
    // correction.
    let shown = entente::control::get_item(&three.a().store, &text).unwrap();
    assert_eq!(shown.version, 2);
    assert_eq!(shown.history.len(), 1);
    assert_eq!(shown.corrections.len(), 2);
    assert!(
        shown.corrections.iter().all(|d| d.state == "delivered"),
        "{:?}",
        shown.corrections
    );
    // The receiver's search finds the current version, not the old one.
    let search = |text: &str| {
        let request = pb::SearchItemsRequest {
            text: text.into(),
            ..Default::default()
        };
        let search = entente::search::Search::from_request(&request).unwrap();
        three.b().search_items(&search).unwrap().keys.len()
    };
    assert_eq!(search("rambutan"), 1);
    assert_eq!(search("kumquat"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_reaches_a_partner_whose_policy_was_narrowed_after_the_original_was_sent() {
    let three = Three::start(None).await;
    let id = share(
        three.a(),
        report(pb::ItemKind::SuspiciousTransaction, "to withdraw"),
        &[B, C],
    )
    .await;
    let text = store::ulid_text(&id);

    // AA-ONE's policy no longer shares anything with BB-TWO.
    std::fs::write(&three.a().config.policy, policy_sharing_with(&[C], &[B])).unwrap();
    three.a().reload_policy().unwrap();

    let done = three
        .a()
        .retract(&text, "the report was based on a forged invoice")
        .await
        .unwrap();
    assert_eq!(done.decisions.len(), 2, "{done:?}");
    for partner in [B, C] {
        acknowledged(three.a(), &done.message_id, partner).await;
        let node = if partner == B { three.b() } else { three.c() };
        assert!(
            node.store.item(&id).unwrap().is_empty(),
            "the content is deleted at {partner}"
        );
        let tombstone = node.store.tombstone(&id, A).unwrap().unwrap();
        assert_eq!(tombstone.reason, "the report was based on a forged invoice");
        let keys = node.partner_keys(A).unwrap();
        lifecycle::verify_tombstone(&tombstone, A, &keys).unwrap();
        let shown = entente::control::get_item(&node.store, &text).unwrap();
        assert!(shown.report.is_none());
        assert_eq!(shown.tombstone.unwrap().originator, A);
    }
    let shown = entente::control::get_item(&three.a().store, &text).unwrap();
    assert_eq!(shown.retraction.len(), 2);
    assert!(
        shown.retraction.iter().all(|d| d.state == "delivered"),
        "{:?}",
        shown.retraction
    );

    // A retracted item can be neither retracted, corrected nor shared again.
    assert!(matches!(
        three.a().retract(&text, "again").await,
        Err(NodeError::NotAllowed(_))
    ));
    let err = three
        .a()
        .correct(&text, report(pb::ItemKind::SuspiciousTransaction, "x"), "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("retracted"), "{err}");
    assert!(three.a().share_again(&text).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lifecycle_message_forged_by_a_non_originator_is_refused() {
    let three = Three::start(None).await;
    let id = share(
        three.a(),
        report(pb::ItemKind::DenialNotification, "denied"),
        &[B, C],
    )
    .await;
    let before = held(three.b(), &id, A).unwrap();

    // CC-THREE, which also received AA-ONE's item, tries to correct it at BB-TWO.
    let correction = pb::item::Body::Correction(pb::Correction {
        item_id: id.to_vec(),
        version: 2,
        report: Some(report(pb::ItemKind::DenialNotification, "forged version")),
        reason: "forged".into(),
    });
    refused_with(
        &forge(&three, 2, 1, correction).await,
        pb::RefusalReason::NotOriginator,
    );

    // ... or to withdraw it with a tombstone of its own ...
    let own = entente::lifecycle::sign_tombstone(
        &three.c().own_keys().identity,
        id,
        entente::now_ms(),
        "forged",
    );
    let retraction =
        |t: pb::Tombstone| pb::item::Body::Retraction(pb::Retraction { tombstone: Some(t) });
    refused_with(
        &forge(&three, 2, 1, retraction(own.clone())).await,
        pb::RefusalReason::NotOriginator,
    );
    // ... or with one that names AA-ONE but carries CC-THREE's signature.
    let mut claimed = own;
    claimed.originator = A.into();
    refused_with(
        &forge(&three, 2, 1, retraction(claimed)).await,
        pb::RefusalReason::NotOriginator,
    );
    // A tombstone from AA-ONE itself whose reason was changed after signing fails the
    // originator's signature.
    let identity = &three.a().own_keys().identity;
    let mut altered = lifecycle::sign_tombstone(identity, id, entente::now_ms(), "genuine");
    altered.reason = "altered".into();
    refused_with(
        &forge(&three, 0, 1, retraction(altered)).await,
        pb::RefusalReason::BadSignature,
    );
    assert_eq!(
        held(three.b(), &id, A).unwrap(),
        before,
        "BB-TWO's copy is unchanged"
    );
    assert!(three.b().store.tombstone(&id, A).unwrap().is_none());

    // BB-TWO asks AA-ONE for consent; CC-THREE answers in AA-ONE's place.
    let mut controlled = report(pb::ItemKind::EnforcementAlert, "controlled");
    controlled.handling.as_mut().unwrap().originator_control = true;
    let item = share(three.a(), controlled, &[B]).await;
    let request = three
        .b()
        .request_consent(&store::ulid_text(&item), C, "")
        .await
        .unwrap();
    let answer = pb::item::Body::ConsentAnswer(pb::ConsentAnswer {
        request_id: parse(&request.id).to_vec(),
        item_id: item.to_vec(),
        third_party: C.into(),
        granted: true,
        note: "forged".into(),
    });
    refused_with(
        &forge(&three, 2, 1, answer).await,
        pb::RefusalReason::NotOriginator,
    );
    let consent = three
        .b()
        .store
        .consent(&parse(&request.id))
        .unwrap()
        .unwrap();
    assert_eq!(consent.state, "pending");
    assert!(three.b().store.grants(&item, A).unwrap().is_empty());

    // BB-TWO consults AA-ONE about its denial; CC-THREE replies in AA-ONE's place.
    let checked = three
        .b()
        .check_licence(&application("APP-1"), 0, false)
        .await
        .unwrap();
    let consultation = &checked.matches[0].consultation_id;
    let reply = pb::item::Body::ConsultationReply(pb::ConsultationReply {
        consultation_id: parse(consultation).to_vec(),
        denial_id: id.to_vec(),
        objects: false,
        note: "forged".into(),
    });
    refused_with(
        &forge(&three, 2, 1, reply).await,
        pb::RefusalReason::NotOriginator,
    );
    let k = three
        .b()
        .store
        .consultation(&parse(consultation))
        .unwrap()
        .unwrap();
    assert_eq!(k.replied_at_ms, 0);

    // CC-THREE sends AA-ONE an undercut notice for BB-TWO's consultation.
    acknowledged(three.b(), consultation, A).await;
    let undercut = pb::item::Body::UndercutNotice(pb::UndercutNotice {
        consultation_id: parse(consultation).to_vec(),
        denial_id: id.to_vec(),
        reference: "APP-1".into(),
        note: "forged".into(),
    });
    refused_with(
        &forge(&three, 2, 0, undercut).await,
        pb::RefusalReason::NotOriginator,
    );
    let at_a = three
        .a()
        .store
        .consultation(&parse(consultation))
        .unwrap()
        .unwrap();
    assert_eq!((at_a.state.as_str(), at_a.undercut_at_ms), ("open", 0));

    // Even from the originator, a correction that would widen the handling is refused.
    let mut wider = report(pb::ItemKind::DenialNotification, "wider");
    wider.handling.as_mut().unwrap().tlp = pb::TlpLevel::Clear as i32;
    let widening = pb::item::Body::Correction(pb::Correction {
        item_id: id.to_vec(),
        version: 2,
        report: Some(wider),
        reason: "wider".into(),
    });
    let result = forge(&three, 0, 1, widening).await;
    refused_with(&result, pb::RefusalReason::Malformed);
    assert!(
        result.refusals[0].detail.contains("handling.tlp"),
        "{result:?}"
    );
    assert_eq!(held(three.b(), &id, A).unwrap(), before);

    // A correction of an item nobody sent is refused as unknown, and every refusal is in
    // BB-TWO's audit log.
    let unknown = pb::item::Body::Correction(pb::Correction {
        item_id: ulid::Ulid::new().to_bytes().to_vec(),
        version: 2,
        report: Some(report(pb::ItemKind::DenialNotification, "x")),
        reason: String::new(),
    });
    refused_with(
        &forge(&three, 0, 1, unknown).await,
        pb::RefusalReason::UnknownItem,
    );
    let refusals = three
        .b()
        .store
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "refused" && (e.peer == C || e.peer == A))
        .count();
    assert_eq!(refusals, 8);
}

/// A licence application repeating the test report's denial: same control entry and a
/// consignee spelled a little differently.
fn application(reference: &str) -> lifecycle::Application {
    let denial = report(pb::ItemKind::DenialNotification, "denied");
    let entry = denial.goods[0].control_entry.clone();
    let consignee = denial
        .subjects
        .iter()
        .find(|s| s.role == "consignee" || s.role == "end-user")
        .unwrap()
        .name
        .to_uppercase();
    let json = serde_json::json!({
        "reference": reference,
        "parties": [{"name": consignee, "role": "consignee"}],
        "goods": [{"control_entry": entry}],
        "destination": "AE"
    });
    lifecycle::parse_application(&json.to_string(), "test").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_consent_leaves_the_item_unshareable_and_a_granted_one_shares_it() {
    // AA-ONE shares only with BB-TWO; its items are originator-controlled.
    let three = Three::start(Some(policy_sharing_with(&[B], &[C]))).await;
    let controlled = |title: &str| {
        let mut r = report(pb::ItemKind::EnforcementAlert, title);
        r.handling.as_mut().unwrap().originator_control = true;
        r
    };
    let refused = share(three.a(), controlled("refused one"), &[B]).await;
    let granted = share(three.a(), controlled("granted one"), &[B]).await;

    for (item, grant) in [(refused, false), (granted, true)] {
        let text = store::ulid_text(&item);
        // Without consent, the third-party rule keeps it from CC-THREE.
        let again = three.b().share_again(&text).await.unwrap();
        assert!(again.queued_for.is_empty(), "{again:?}");
        assert!(
            again.withheld_from[0].1.contains("third-party rule"),
            "{again:?}"
        );

        let request = three
            .b()
            .request_consent(&text, C, "joint case with CC-THREE")
            .await
            .unwrap();
        acknowledged(three.b(), &request.message_id, A).await;
        let asked = three
            .a()
            .store
            .consent(&parse(&request.id))
            .unwrap()
            .unwrap();
        assert!(asked.incoming);
        assert_eq!(
            (asked.state.as_str(), asked.third_party.as_str()),
            ("pending", C)
        );

        // A refusal needs a reason.
        let err = three
            .a()
            .answer_consent(&request.id, false, " ")
            .await
            .unwrap_err();
        assert!(matches!(err, NodeError::Invalid(_)), "{err}");
        let answer = three
            .a()
            .answer_consent(&request.id, grant, "no onward sharing yet")
            .await
            .unwrap();
        acknowledged(three.a(), &answer.message_id, B).await;
        let again = three
            .a()
            .answer_consent(&request.id, true, "")
            .await
            .unwrap_err();
        assert!(matches!(again, NodeError::NotAllowed(_)), "{again}");
        let state = three
            .b()
            .store
            .consent(&parse(&request.id))
            .unwrap()
            .unwrap()
            .state;
        assert_eq!(state, if grant { "granted" } else { "refused" });
    }

    // The refused item stays unshareable to CC-THREE.
    let again = three
        .b()
        .share_again(&store::ulid_text(&refused))
        .await
        .unwrap();
    assert!(again.queued_for.is_empty(), "{again:?}");
    assert!(three.c().store.item(&refused).unwrap().is_empty());
    // The granted one went to CC-THREE on the grant, sent by BB-TWO, originated by AA-ONE.
    eventually(10, "the granted item reaches CC-THREE", || {
        delivered(&three.b().store, &granted, C)
    })
    .await;
    let passed = held(three.c(), &granted, B).unwrap();
    assert_eq!(passed.origin, A);
    assert_eq!(audit_count(&three.b().store, "consent"), 4);

    // AA-ONE withdraws the item: BB-TWO deletes it and passes the signed tombstone on to
    // CC-THREE, which got it from BB-TWO and deletes it too.
    let done = three
        .a()
        .retract(&store::ulid_text(&granted), "withdrawn")
        .await
        .unwrap();
    acknowledged(three.a(), &done.message_id, B).await;
    assert!(three.b().store.item(&granted).unwrap().is_empty());
    eventually(10, "the retraction reaches CC-THREE through BB-TWO", || {
        three.c().store.item(&granted).unwrap().is_empty()
    })
    .await;
    let tombstone = three.c().store.tombstone(&granted, A).unwrap().unwrap();
    lifecycle::verify_tombstone(&tombstone, A, &three.c().partner_keys(A).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_application_opens_a_consultation_that_goes_overdue_is_answered_and_undercut() {
    let three = Three::start(None).await;
    let denial = share(
        three.a(),
        report(pb::ItemKind::DenialNotification, "denied"),
        &[B, C],
    )
    .await;
    // Another denial for other goods does not match, and one older than three years is
    // not compared at all.
    let mut other = report(pb::ItemKind::DenialNotification, "other goods");
    other.goods[0].control_entry = "9A012.a".into();
    share(three.a(), other, &[B]).await;
    let mut old = report(pb::ItemKind::DenialNotification, "denied long ago");
    old.denial_date = "2022-06-30".into();
    share(three.a(), old, &[B]).await;

    let dry = three
        .b()
        .check_licence(&application("APP-7"), 0, true)
        .await
        .unwrap();
    assert_eq!(dry.denials_checked, 2);
    assert_eq!(dry.matches.len(), 1);
    assert!(dry.matches[0].consultation_id.is_empty());
    assert!(
        three.b().store.consultations().unwrap().is_empty(),
        "a dry run opens nothing"
    );

    let checked = three
        .b()
        .check_licence(&application("APP-7"), 5, false)
        .await
        .unwrap();
    let m = &checked.matches[0];
    assert_eq!(
        (m.denial_id.as_str(), m.denying_agency.as_str()),
        (store::ulid_text(&denial).as_str(), A)
    );
    let id = parse(&m.consultation_id);
    acknowledged(three.b(), &m.consultation_id, A).await;
    // Checking again does not open a second consultation.
    let again = three
        .b()
        .check_licence(&application("APP-7"), 5, false)
        .await
        .unwrap();
    assert_eq!(again.matches[0].consultation_id, m.consultation_id);
    assert_eq!(three.b().store.consultations().unwrap().len(), 1);

    // Open now; overdue after its deadline (five days), on both sides.
    let list = |shared: &Shared, as_of_ms: i64| {
        let request = pb::ListConsultationsRequest { as_of_ms };
        entente::control::list_consultations(&shared.store, &request)
            .unwrap()
            .consultations
    };
    let ours = list(three.b(), 0);
    assert_eq!(ours[0].state, "open");
    let later = ours[0].deadline_ms + 1;
    assert_eq!(list(three.b(), later)[0].state, "overdue");
    let theirs = list(three.a(), later);
    assert_eq!(
        (theirs[0].state.as_str(), theirs[0].incoming),
        ("overdue", true)
    );
    assert_eq!(theirs[0].requester, B);

    let reply = three
        .a()
        .reply_consultation(
            &m.consultation_id,
            true,
            "the end user is a military entity",
        )
        .await
        .unwrap();
    acknowledged(three.a(), &reply.message_id, B).await;
    let answered = three.b().store.consultation(&id).unwrap().unwrap();
    assert_eq!(answered.state, "answered");
    assert!(answered.objects);
    assert_eq!(
        list(three.b(), later)[0].state,
        "answered",
        "an answered one is never overdue"
    );

    let decided = three
        .b()
        .decide_licence("APP-7", true, "end use verified on site")
        .await
        .unwrap();
    assert_eq!(decided.undercut_notices.len(), 1);
    acknowledged(three.b(), &decided.undercut_notices[0], A).await;
    let at_a = three.a().store.consultation(&id).unwrap().unwrap();
    assert_eq!(at_a.state, "undercut");
    assert_eq!(at_a.undercut_note, "end use verified on site");
    assert!(matches!(
        three.b().decide_licence("APP-7", false, "").await,
        Err(NodeError::NotAllowed(_))
    ));
    assert!(audit_count(&three.a().store, "consultation") >= 3);
}

/// A report of kind alert, as an item from its sender (`originator` empty) or passed on in
/// `originator`'s name.
fn alert_item(originator: &str, title: &str) -> pb::Item {
    pb::Item {
        body: Some(pb::item::Body::Report(report(
            pb::ItemKind::EnforcementAlert,
            title,
        ))),
        originator: originator.into(),
    }
}

/// An alert without originator control, which a partner's own policy may pass on.
fn passable(title: &str) -> pb::Report {
    let mut r = report(pb::ItemKind::EnforcementAlert, title);
    r.handling.as_mut().unwrap().originator_control = false;
    r
}

fn retraction(t: pb::Tombstone) -> pb::item::Body {
    pb::item::Body::Retraction(pb::Retraction { tombstone: Some(t) })
}

/// A tombstone for item `id` signed by `signer` but naming `originator`.
fn tombstone_in_the_name_of(signer: &Shared, originator: &str, id: [u8; 16]) -> pb::Tombstone {
    let mut t =
        lifecycle::sign_tombstone(&signer.own_keys().identity, id, entente::now_ms(), "forged");
    t.originator = originator.into();
    t
}

/// Audit entries of `store` recording a refusal of something `peer` sent.
fn refusals_of(store: &store::Store, peer: &str) -> usize {
    store
        .audit_entries()
        .unwrap()
        .iter()
        .filter(|e| e.action == "refused" && e.peer == peer)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_in_the_receivers_own_name_or_under_an_id_held_for_another_originator_is_refused() {
    let three = Three::start(None).await;
    let id = share(
        three.a(),
        report(pb::ItemKind::EnforcementAlert, "AA-ONE's alert"),
        &[B, C],
    )
    .await;
    let at_a = three.a().store.item(&id).unwrap();
    let at_c = three.c().store.item(&id).unwrap();

    // BB-TWO "passes on" to AA-ONE an item in AA-ONE's own name, under its item's id:
    // held beside the original, it could then be withdrawn by BB-TWO.
    let echo = seal_as(&three, 1, 0, id, &alert_item(A, "planted"));
    let result = deliver(&three, 1, 0, vec![echo]).await;
    refused_with(&result, pb::RefusalReason::NotOriginator);
    assert!(
        result.refusals[0]
            .detail
            .contains("this node, as its originator"),
        "{result:?}"
    );
    // An item of its own under the id of AA-ONE's item, at AA-ONE and at CC-THREE.
    for to in [0, 2] {
        let shadow = seal_as(&three, 1, to, id, &alert_item("", "shadow"));
        let result = deliver(&three, 1, to, vec![shadow]).await;
        refused_with(&result, pb::RefusalReason::Replay);
        assert!(
            result.refusals[0]
                .detail
                .contains("held already for an item of AA-ONE"),
            "{result:?}"
        );
    }
    // A tombstone in AA-ONE's name, sent to AA-ONE: only AA-ONE withdraws its items.
    let forged = tombstone_in_the_name_of(three.b(), A, id);
    refused_with(
        &forge(&three, 1, 0, retraction(forged)).await,
        pb::RefusalReason::NotOriginator,
    );

    assert_eq!(
        three.a().store.item(&id).unwrap(),
        at_a,
        "AA-ONE's own item"
    );
    assert!(three.a().store.tombstone(&id, A).unwrap().is_none());
    assert_eq!(three.c().store.item(&id).unwrap(), at_c, "CC-THREE's copy");
    assert_eq!(refusals_of(&three.a().store, B), 3);
    assert_eq!(refusals_of(&three.c().store, B), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_passed_on_by_a_partner_is_checked_against_the_originators_key() {
    // AA-ONE shares with BB-TWO only; BB-TWO passes the item on to CC-THREE.
    let three = Three::start(Some(policy_sharing_with(&[B], &[C]))).await;
    let id = share(three.a(), passable("passed on"), &[B]).await;
    three.b().share_again(&store::ulid_text(&id)).await.unwrap();
    eventually(10, "BB-TWO passes the item on", || {
        delivered(&three.b().store, &id, C)
    })
    .await;
    let before = held(three.c(), &id, B).unwrap();
    assert_eq!(before.origin, A);

    // BB-TWO withdraws it at CC-THREE with a tombstone it signed in AA-ONE's name ...
    let mut forged = tombstone_in_the_name_of(three.b(), A, id);
    refused_with(
        &forge(&three, 1, 2, retraction(forged.clone())).await,
        pb::RefusalReason::UnknownKey,
    );
    // ... and with one that names AA-ONE's key but carries BB-TWO's signature.
    let genuine = lifecycle::sign_tombstone(&three.a().own_keys().identity, id, 0, "x");
    forged.signer_key_id = genuine.signer_key_id;
    refused_with(
        &forge(&three, 1, 2, retraction(forged)).await,
        pb::RefusalReason::BadSignature,
    );
    assert_eq!(held(three.c(), &id, B).unwrap(), before);
    assert!(three.c().store.tombstone(&id, A).unwrap().is_none());
    assert_eq!(refusals_of(&three.c().store, B), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_the_receiver_cannot_check_is_believed_only_for_the_copies_its_sender_delivered()
 {
    const D: &str = "DD-FOUR";
    // AA-ONE shares with BB-TWO and DD-FOUR, which both pass the item on to CC-THREE;
    // CC-THREE has no partnership with AA-ONE, so holds no key to check AA-ONE's tombstone.
    let four = Three::start_adjusted(&[A, B, C, D], |members| {
        std::fs::write(
            &members[0].config.policy,
            policy_sharing_with(&[B, D], &[C]),
        )
        .unwrap();
        let c = &mut members[2].config;
        c.partners.retain(|p| p.agency != A);
        std::fs::write(&c.policy, testbed::share_policy(&[B, D], &ShareKind::ALL)).unwrap();
    })
    .await;
    let (a, b, c, d) = (four.node(0), four.node(1), four.node(2), four.node(3));
    let id = share(a, passable("twice"), &[B, D]).await;
    let text = store::ulid_text(&id);
    for forwarder in [b, d] {
        forwarder.share_again(&text).await.unwrap();
        eventually(10, "the item is passed on to CC-THREE", || {
            delivered(&forwarder.store, &id, C)
        })
        .await;
    }
    assert_eq!(c.store.item(&id).unwrap().len(), 2);

    // A tombstone from BB-TWO that CC-THREE cannot check takes away BB-TWO's copy only.
    let unchecked = tombstone_in_the_name_of(b, A, id);
    let result = forge(&four, 1, 2, retraction(unchecked)).await;
    assert!(result.refusals.is_empty(), "{result:?}");
    assert!(held(c, &id, B).is_none());
    assert_eq!(held(c, &id, D).unwrap().origin, A, "DD-FOUR's copy stays");
    assert_eq!(
        c.store.tombstone_voucher(&id, A).unwrap().as_deref(),
        Some(B)
    );

    // AA-ONE withdraws the item for real: both forwarders pass the retraction on.
    let done = a.retract(&text, "withdrawn").await.unwrap();
    for forwarder in [B, D] {
        acknowledged(a, &done.message_id, forwarder).await;
    }
    eventually(10, "DD-FOUR's copy goes too", || {
        c.store.item(&id).unwrap().is_empty()
    })
    .await;
    let shown = entente::control::get_item(&c.store, &text).unwrap();
    assert!(shown.report.is_none());
    assert!(
        shown.signature.contains("taken on its word"),
        "{}",
        shown.signature
    );
    assert_eq!(
        refusals_of(&c.store, B),
        0,
        "BB-TWO's late pass-on is acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_message_delivered_again_changes_nothing_and_one_reusing_its_id_is_refused() {
    let three = Three::start(None).await;
    let id = share(
        three.a(),
        report(pb::ItemKind::EnforcementAlert, "original"),
        &[B],
    )
    .await;
    let correction = |title: &str| pb::Item {
        body: Some(pb::item::Body::Correction(pb::Correction {
            item_id: id.to_vec(),
            version: 2,
            report: Some(report(pb::ItemKind::EnforcementAlert, title)),
            reason: "retitled".into(),
        })),
        originator: String::new(),
    };
    let message = ulid::Ulid::new().to_bytes();
    let first = seal_as(&three, 0, 1, message, &correction("first"));
    for _ in 0..2 {
        let result = deliver(&three, 0, 1, vec![first.clone()]).await;
        assert!(
            result.receipt.is_some() && result.refusals.is_empty(),
            "{result:?}"
        );
    }
    let other = seal_as(&three, 0, 1, message, &correction("second"));
    refused_with(
        &deliver(&three, 0, 1, vec![other]).await,
        pb::RefusalReason::Replay,
    );
    let item = held(three.b(), &id, A).unwrap();
    assert_eq!(
        (item.version, item.report().unwrap().title.as_str()),
        (2, "first")
    );
    assert_eq!(three.b().store.versions(&id, A).unwrap().len(), 1);
    let entries = three.b().store.audit_entries().unwrap();
    let about = |detail: &str| {
        entries
            .iter()
            .filter(|e| e.item_id == store::ulid_text(&message) && e.detail.starts_with(detail))
            .count()
    };
    assert_eq!(about("duplicate"), 1);
    assert_eq!(about("replay"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_under_the_id_of_a_record_the_receiver_holds_is_refused() {
    let three = Three::start(None).await;
    let mut controlled = report(pb::ItemKind::EnforcementAlert, "controlled");
    controlled.handling.as_mut().unwrap().originator_control = true;
    let item = share(three.a(), controlled, &[B]).await;
    let own = share(
        three.b(),
        report(pb::ItemKind::DenialNotification, "BB-TWO's denial"),
        &[A],
    )
    .await;
    let request = three
        .b()
        .request_consent(&store::ulid_text(&item), C, "")
        .await
        .unwrap();
    acknowledged(three.b(), &request.message_id, A).await;
    let asked = three.b().store.consent(&parse(&request.id)).unwrap();

    // AA-ONE, which knows the id of BB-TWO's request, sends a request of its own under
    // it, and a consultation too: each would overwrite BB-TWO's record.
    let consent = pb::Item {
        body: Some(pb::item::Body::ConsentRequest(pb::ConsentRequest {
            item_id: own.to_vec(),
            third_party: C.into(),
            note: String::new(),
        })),
        originator: String::new(),
    };
    let consultation = pb::Item {
        body: Some(pb::item::Body::ConsultationRequest(
            pb::ConsultationRequest {
                denial_id: own.to_vec(),
                application: Some(lifecycle::summary(&application("APP-9"))),
                deadline_ms: entente::now_ms() + 86_400_000,
                note: String::new(),
            },
        )),
        originator: String::new(),
    };
    let envelope = seal_as(&three, 0, 1, parse(&request.id), &consent);
    refused_with(
        &deliver(&three, 0, 1, vec![envelope]).await,
        pb::RefusalReason::Replay,
    );
    assert_eq!(three.b().store.consent(&parse(&request.id)).unwrap(), asked);

    // BB-TWO consults AA-ONE about a denial AA-ONE sent it.
    share(
        three.a(),
        report(pb::ItemKind::DenialNotification, "denied"),
        &[B],
    )
    .await;
    let opened = three
        .b()
        .check_licence(&application("APP-2"), 0, false)
        .await
        .unwrap();
    acknowledged(three.b(), &opened.matches[0].consultation_id, A).await;
    let k = parse(&opened.matches[0].consultation_id);
    let before = three.b().store.consultation(&k).unwrap();
    let envelope = seal_as(&three, 0, 1, k, &consultation);
    refused_with(
        &deliver(&three, 0, 1, vec![envelope]).await,
        pb::RefusalReason::Replay,
    );
    assert_eq!(three.b().store.consultation(&k).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_for_a_partner_no_longer_registered_is_withheld_and_recorded() {
    let mut three = Three::start(None).await;
    let id = share(
        three.a(),
        report(pb::ItemKind::EnforcementAlert, "to withdraw"),
        &[B, C],
    )
    .await;
    // AA-ONE stops, and CC-THREE's partnership ends; the command runs on the stopped node.
    let node = three.nodes.remove(0);
    let mut config = node.shared().config.clone();
    node.shutdown().await;
    config.partners.retain(|p| p.agency != C);
    std::fs::write(&config.policy, policy_sharing_with(&[B], &[])).unwrap();
    let a = Shared::open(config).unwrap();
    let done = a
        .retract(&store::ulid_text(&id), "withdrawn")
        .await
        .unwrap();
    let state = |partner: &str| {
        done.decisions
            .iter()
            .find(|d| d.partner == partner)
            .map(|d| (d.state.clone(), d.detail.clone()))
            .unwrap()
    };
    assert_eq!(state(B).0, "queued");
    let (withheld, why) = state(C);
    assert_eq!(withheld, "withheld");
    assert!(why.contains("not a registered partner"), "{why}");
    let recorded = a
        .store
        .audit_entries()
        .unwrap()
        .into_iter()
        .any(|e| e.action == "withheld" && e.peer == C && e.detail.contains("retraction"));
    assert!(recorded, "the withheld retraction is in the audit log");
    assert!(a.store.tombstone(&id, A).unwrap().is_some());
}
