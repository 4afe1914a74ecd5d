//! `entente screen` as an analyst runs it: on a stopped node (the command opens the store and
//! builds the index), through a running node's control socket, and refusing bad input with
//! a message that says what is expected. Every screen is audited.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{entente, text};
use entente::{config::Config, node::Shared, pb, store::Store};

const AGENCY: &str = "XX-TEST";
const LIST: &str = "XX-TEST/watch";

/// `entente init` in `dir`, then a list of three entries published on the stopped node.
fn node_holding_a_list(dir: &Path) -> PathBuf {
    let node = dir.join("node");
    let out = entente(&[
        "init",
        "--dir",
        node.to_str().unwrap(),
        "--agency",
        AGENCY,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    let config = node.join("entente.toml");
    let entry = |id: &str, kind: pb::SubjectType, name: &str, aliases: &[&str], cc: &str| {
        pb::WatchlistEntry {
            id: id.into(),
            r#type: kind as i32,
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            countries: vec![cc.into()],
            ..Default::default()
        }
    };
    let entries = vec![
        entry(
            "1",
            pb::SubjectType::Person,
            "MÜLLER, Hans-Jürgen",
            &["Hans Mueller"],
            "DE",
        ),
        entry(
            "2",
            pb::SubjectType::Organisation,
            "Kestrel Microsystems LLC",
            &[],
            "IR",
        ),
        entry("3", pb::SubjectType::Vessel, "KESTREL", &[], "PA"),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        entente::tls::install_crypto_provider();
        let shared = Shared::open(Config::load(&config).unwrap()).unwrap();
        shared.import_list(LIST, entries, "test").await.unwrap();
    });
    config
}

fn screen_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["screen"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = entente(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn hit_ids(value: &serde_json::Value) -> Vec<String> {
    value["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["entry_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The node's screen queries as `audit tail` shows them: each detail, then the terms it
/// keeps sealed with the entry. The clear detail never holds the name.
fn screen_queries(config: &Path) -> Vec<String> {
    let config = Config::load(config).unwrap();
    let store = Store::open_with_key_file(&config.data_dir, &config.data_key).unwrap();
    store
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "query" && e.detail.starts_with("screen "))
        .map(|e| {
            assert!(!e.detail.contains("name="), "{}", e.detail);
            format!("{} [{}]", e.detail, store.audit_terms(&e).unwrap())
        })
        .collect()
}

#[test]
fn screen_on_a_stopped_node_ranks_matches_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_holding_a_list(dir.path());
    let cfg = config.to_str().unwrap();

    // Accents stripped, words reordered.
    let out = entente(&["screen", "--config", cfg, "hans jurgen muller"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("MÜLLER, Hans-Jürgen"), "{stdout}");
    assert!(stdout.contains(LIST), "{stdout}");
    assert!(stdout.contains("why:"), "{stdout}");
    assert!(
        stdout.contains("accents or script transliterated"),
        "{stdout}"
    );

    let found = screen_json(&["--config", cfg, "Hans Mueller"]);
    assert_eq!(found["entries"], 3);
    let first = &found["hits"][0];
    assert_eq!(first["entry_id"], "1");
    assert_eq!(first["list"], LIST);
    assert_eq!(first["matched_name"], "Hans Mueller");
    assert_eq!(first["primary_name"], "MÜLLER, Hans-Jürgen");
    assert!(first["score"].as_f64().unwrap() > 0.95);
    assert!(
        first["why"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("alias"))
    );

    // Type and country filters; a name that matches nothing.
    let both = screen_json(&["--config", cfg, "Kestrel", "--min-score", "0.5"]);
    assert_eq!(hit_ids(&both).len(), 2, "{both}");
    let vessel = screen_json(&["--config", cfg, "Kestrel", "--type", "vessel"]);
    assert_eq!(hit_ids(&vessel), ["3"]);
    let iran = screen_json(&["--config", cfg, "Kestrel Microsystems", "--country", "ir"]);
    assert_eq!(hit_ids(&iran), ["2"]);
    let none = entente(&["screen", "--config", cfg, "Olga Petrova"]);
    assert!(none.status.success());
    assert!(
        text(&none.stdout).starts_with("no match scoring 0.80 or more among 3 watchlist entries"),
        "{}",
        text(&none.stdout)
    );

    let queries = screen_queries(&config);
    assert_eq!(queries.len(), 6, "{queries:#?}");
    assert_eq!(
        queries[0], "screen 1 hit(s) [name=\"hans jurgen muller\"]",
        "{queries:#?}"
    );
}

#[test]
fn screen_refuses_bad_input_and_says_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_holding_a_list(dir.path());
    let cfg = config.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&[""], "the name to screen is empty"),
        (&["  , ."], "has no letter or digit"),
        (
            &["Kestrel", "--type", "ship"],
            "unknown subject type \"ship\": expected one of person, organisation, vessel, aircraft",
        ),
        (
            &["Kestrel", "--country", "XQ"],
            "country \"XQ\" is not an assigned ISO 3166-1 alpha-2 code",
        ),
        (
            &["Kestrel", "--country", "Iran"],
            "country \"Iran\" is not an assigned ISO 3166-1 alpha-2 code",
        ),
        (&["Kestrel", "--limit", "5000"], "expected 1 to 1000"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["screen", "--config", cfg];
        all.extend_from_slice(args);
        let out = entente(&all);
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = entente(&["screen", "--config", cfg, "x", "--min-score", "2"]);
    assert!(text(&out.stderr).contains("above 0 and at most 1"));
}

#[test]
fn screen_works_through_the_control_socket_while_the_node_serves() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_holding_a_list(dir.path());
    let cfg = config.to_str().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(["serve", "--config", cfg])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = config.parent().unwrap().join("data/control.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let served = socket.exists();
    let found = entente(&[
        "screen",
        "--config",
        cfg,
        "Kestrel Microsystems, L.L.C.",
        "--json",
    ]);
    let bad = entente(&["screen", "--config", cfg, "Kestrel", "--type", "ship"]);
    // SIGTERM: the node stops cleanly and flushes its store, audit log included.
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    assert!(served, "the node opened its control socket");
    assert!(found.status.success(), "{}", text(&found.stderr));
    let found: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found["entries"], 3);
    assert_eq!(found["hits"][0]["entry_id"], "2");
    assert_eq!(found["hits"][0]["score"], 1.0);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("unknown subject type"));
    // The node recorded the screen it answered.
    let queries = screen_queries(&config);
    assert_eq!(
        queries,
        ["screen 1 hit(s) [name=\"Kestrel Microsystems, L.L.C.\"]"]
    );
}
