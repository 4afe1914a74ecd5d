//! Report content at rest: between real nodes on 127.0.0.1, a report that is submitted,
//! delivered, stored and screened, and the names and text analysts then screen and search
//! for, leave none of it in the data directories in clear; a store opened with another data
//! key refuses to read it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use entente::{identity::DataKey, pb, store::Store};

/// Texts that appear only in the report: none may be found on disk.
const MARKERS: [&str; 3] = [
    "Quillfeather Dynamics Subsidiary",
    "Marrowgate Holdings",
    "the consignee asked for unmarked crates",
];

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_report_content_is_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let configs: Vec<_> = members.iter().map(|m| m.config.clone()).collect();
    let nodes = start_all(members).await;
    let (a, b) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    // B holds a list naming the report's subject, so the report gets a screening hit too.
    b.import_list(
        "BB-TWO/watch",
        vec![pb::WatchlistEntry {
            id: "w1".into(),
            r#type: pb::SubjectType::Organisation as i32,
            name: "MARROWGATE HOLDINGS LTD".into(),
            ..Default::default()
        }],
        "test",
    )
    .await
    .unwrap();
    let mut r = report(pb::ItemKind::SuspiciousTransaction, MARKERS[0]);
    r.subjects[0].name = MARKERS[1].into();
    r.narrative = MARKERS[2].into();
    let sent = a.submit(r).await.unwrap();
    let id = entente::store::ulid_text(&sent.item_id);
    eventually(20, "BB-TWO stores the report", || {
        received_from(&b.store, "AA-ONE") == 1
    })
    .await;
    let shown = entente::control::get_item(&b.store, &id).unwrap();
    assert_eq!(shown.screening_hits.len(), 1, "the report was screened");
    // An analyst at B screens the subject's name and searches for it and for the
    // narrative: the audit log records both queries, and keeps their terms sealed.
    let screened = pb::ScreenRequest {
        name: MARKERS[1].into(),
        ..Default::default()
    };
    entente::control::screen(&b.store, &screened, 1, |q| b.screen(q)).unwrap();
    let searched = pb::SearchItemsRequest {
        subject: MARKERS[1].into(),
        text: MARKERS[2].into(),
        ..Default::default()
    };
    entente::control::search_items(&b.store, &searched, |s| b.search_items(s)).unwrap();
    let queries: Vec<_> = b
        .store
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "query")
        .collect();
    assert_eq!(queries.len(), 2);
    assert!(
        b.store
            .audit_terms(&queries[1])
            .unwrap()
            .contains(MARKERS[2]),
        "the node reads the terms back"
    );
    drop((a, b));
    for node in nodes {
        node.shutdown().await;
    }

    for config in &configs {
        let on_disk = files(&config.data_dir);
        assert!(!on_disk.is_empty());
        for (path, bytes) in &on_disk {
            for marker in MARKERS {
                assert!(
                    !contains(bytes, marker.as_bytes()),
                    "{marker:?} in clear in {}",
                    path.display()
                );
            }
        }
    }

    // With the data key the content reads back; with another key it does not.
    let b_config = &configs[1];
    let store = Store::open_with_key_file(&b_config.data_dir, &b_config.data_key).unwrap();
    let held = store.list_items(10).unwrap();
    let held = held.iter().find(|i| !i.own).unwrap();
    assert_eq!(held.report().unwrap().narrative, MARKERS[2]);
    drop(store);
    let store = Store::open(&b_config.data_dir, DataKey::generate().unwrap()).unwrap();
    let err = store.list_items(10).unwrap_err().to_string();
    assert!(err.contains("does not decrypt with the data key"), "{err}");
    // Watchlists are published lists, not report content: they are kept in clear.
    assert_eq!(store.list_entries("BB-TWO/watch").unwrap().len(), 1);
}
