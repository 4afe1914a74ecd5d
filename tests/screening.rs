//! Screening between real nodes on 127.0.0.1 over mutual TLS: a received report that names
//! a listed party is stored with its watchlist hit, and `report list` and `report show`
//! data carry it, for a list the node owns and for one a partner synced to it; the index
//! follows the deltas a node applies, and is rebuilt from its store when it starts.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use entente::{
    control,
    node::Node,
    pb, screen,
    watchlist::{self, Format},
};

const SENDER: &str = "US-BIS";
const HOLDER: &str = "DE-BAFA";
const LIST: &str = "DE-BAFA/embargo";

fn entry(id: &str, kind: pb::SubjectType, name: &str, aliases: &[&str]) -> pb::WatchlistEntry {
    pb::WatchlistEntry {
        id: id.into(),
        r#type: kind as i32,
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        countries: vec!["IR".into()],
        ..Default::default()
    }
}

fn list() -> Vec<pb::WatchlistEntry> {
    vec![
        entry(
            "E-36",
            pb::SubjectType::Organisation,
            "AEROCARIBBEAN AIRLINES",
            &["AERO-CARIBBEAN"],
        ),
        entry(
            "E-7",
            pb::SubjectType::Person,
            "KARIMI, Ali Reza",
            &["Alireza KARIMI"],
        ),
    ]
}

/// A report whose subjects are `subjects` (organisations) and one unlisted person.
fn report_naming(subjects: &[&str]) -> pb::Report {
    let mut r = report(pb::ItemKind::SuspiciousTransaction, "Transit-hub orders");
    let template = r.subjects[0].clone();
    r.subjects = subjects
        .iter()
        .map(|name| pb::Subject {
            name: name.to_string(),
            aliases: Vec::new(),
            ..template.clone()
        })
        .collect();
    r.subjects.push(pb::Subject {
        r#type: pb::SubjectType::Person as i32,
        name: "Hans Muster".into(),
        aliases: vec!["H. Muster".into()],
        ..template
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_report_naming_a_listed_party_is_stored_with_the_hit() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &[SENDER, HOLDER]).await;
    let nodes = start_all(members).await;
    let (sender, holder) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    holder.import_list(LIST, list(), "test").await.unwrap();
    assert_eq!(holder.screening_entries(), 2);

    let sent = sender
        .submit(report_naming(&["AeroCaribbean Airlines, Ltd."]))
        .await
        .unwrap();
    let id = entente::store::ulid_text(&sent.item_id);
    eventually(20, "DE-BAFA confirms the report", || {
        delivered(&sender.store, &sent.item_id, HOLDER)
    })
    .await;
    assert_eq!(received_from(&holder.store, SENDER), 1);

    let shown = control::get_item(&holder.store, &id).unwrap();
    assert_eq!(shown.screening_hits.len(), 1, "{:#?}", shown.screening_hits);
    let hit = &shown.screening_hits[0];
    assert_eq!(hit.subject, "AeroCaribbean Airlines, Ltd.");
    assert_eq!(hit.screened_name, "AeroCaribbean Airlines, Ltd.");
    assert_eq!((hit.list.as_str(), hit.entry_id.as_str()), (LIST, "E-36"));
    assert_eq!(hit.primary_name, "AEROCARIBBEAN AIRLINES");
    assert!(hit.score >= holder.screening_threshold(), "{}", hit.score);
    assert!(!hit.why.is_empty());
    let listed = control::list_items(&holder.store, 10).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].screening_hits, 1);
    // The sender holds no list: its own copy has no hit.
    let own = control::get_item(&sender.store, &id).unwrap();
    assert!(own.screening_hits.is_empty());
    assert_eq!(own.summary.unwrap().screening_hits, 0);

    // A report naming no listed party has no hit.
    let clean = sender.submit(report_naming(&["Northwind"])).await.unwrap();
    let clean_id = entente::store::ulid_text(&clean.item_id);
    eventually(20, "DE-BAFA confirms the second report", || {
        delivered(&sender.store, &clean.item_id, HOLDER)
    })
    .await;
    assert_eq!(received_from(&holder.store, SENDER), 2);
    let shown = control::get_item(&holder.store, &clean_id).unwrap();
    assert!(
        shown.screening_hits.is_empty(),
        "{:#?}",
        shown.screening_hits
    );

    // The holder's own reports are screened too, each subject against entries of its own
    // type: the organisation "Alireza Karimi" does not match the person entry.
    let mut own = report_naming(&["Alireza Karimi"]);
    own.subjects[1].name = "Ali-Reza KARIMI".into();
    let own = holder.submit(own).await.unwrap();
    let shown = control::get_item(&holder.store, &entente::store::ulid_text(&own.item_id));
    let hits = shown.unwrap().screening_hits;
    let found: Vec<_> = hits
        .iter()
        .map(|h| (h.subject.as_str(), h.entry_id.as_str()))
        .collect();
    assert_eq!(found, [("Ali-Reza KARIMI", "E-7")], "{hits:#?}");

    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screening_index_is_rebuilt_from_the_store_when_the_node_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &[HOLDER]).await;
    let member = members.remove(0);
    let config = member.config.clone();
    let node = Node::start_on(member.config, member.listener)
        .await
        .unwrap();
    node.shared()
        .import_list(LIST, list(), "test")
        .await
        .unwrap();
    let query = screen::Query::new("Karimi Alireza");
    let before = node.shared().screen(&query);
    assert_eq!(before[0].entry_id, "E-7");
    node.shutdown().await;

    let node = Node::start(config).await.unwrap();
    assert_eq!(node.shared().screening_entries(), 2);
    assert_eq!(node.shared().screen(&query), before);
    node.shutdown().await;
}

/// A policy sharing every report kind and every watchlist with `partner`, both ways.
fn sharing_all_with(partner: &str) -> String {
    format!(
        "version = 1\n\n[[partner]]\nagency = \"{partner}\"\naccept = [\"suspicious-transaction\", \
         \"denial-notification\", \"enforcement-alert\", \"watchlist-delta\"]\n\n  \
         [[partner.rule]]\n  id = \"all\"\n  kinds = [\"suspicious-transaction\", \
         \"denial-notification\", \"enforcement-alert\", \"watchlist-delta\"]\n  action = \"share\"\n"
    )
}

/// The entries of one of the example Denied Persons List files.
fn example_dpl(name: &str) -> Vec<pb::WatchlistEntry> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/watchlists")
        .join(name);
    watchlist::import(Format::BisDpl, &path, true)
        .unwrap()
        .entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_list_screens_received_reports_and_the_index_follows_its_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &[SENDER, HOLDER]).await;
    std::fs::write(&members[0].config.policy, sharing_all_with(HOLDER)).unwrap();
    std::fs::write(&members[1].config.policy, sharing_all_with(SENDER)).unwrap();
    let nodes = start_all(members).await;
    let (owner, holder) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    let list = "US-BIS/dpl";
    owner
        .import_list(list, example_dpl("dpl-2026-11.txt"), "test")
        .await
        .unwrap();
    eventually(20, "DE-BAFA applies US-BIS/dpl v1", || {
        holder.screening_entries() == 5
    })
    .await;

    // Accents stripped and words reordered: found on the received list.
    let hits = holder.screen(&screen::Query::new("El Haddad, Sámira"));
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(
        (hits[0].list.as_str(), hits[0].matched_name.as_str()),
        (list, "SAMIRA EL-HADDAD")
    );

    let sent = owner
        .submit(report_naming(&["Blue Lantern Components"]))
        .await
        .unwrap();
    let id = entente::store::ulid_text(&sent.item_id);
    eventually(20, "DE-BAFA confirms the report", || {
        delivered(&owner.store, &sent.item_id, HOLDER)
    })
    .await;
    assert_eq!(received_from(&holder.store, SENDER), 1);
    let shown = control::get_item(&holder.store, &id).unwrap();
    assert_eq!(shown.screening_hits.len(), 1, "{:#?}", shown.screening_hits);
    assert_eq!(shown.screening_hits[0].list, list);
    assert_eq!(
        shown.screening_hits[0].primary_name,
        "BLUE LANTERN COMPONENTS GMBH"
    );

    // Version 2 removes BLUE LANTERN COMPONENTS GMBH and adds KESTREL AVIONICS LLC.
    owner
        .import_list(list, example_dpl("dpl-2026-12.txt"), "test")
        .await
        .unwrap();
    eventually(20, "DE-BAFA applies US-BIS/dpl v2", || {
        !holder
            .screen(&screen::Query::new("Kestrel Avionics"))
            .is_empty()
    })
    .await;
    assert!(
        holder
            .screen(&screen::Query::new("Blue Lantern Components"))
            .is_empty()
    );
    assert_eq!(holder.screening_entries(), 5);
    // The hit kept with the report records the list as it was when the report arrived.
    let shown = control::get_item(&holder.store, &id).unwrap();
    assert_eq!(shown.screening_hits.len(), 1);

    for node in nodes {
        node.shutdown().await;
    }
}
