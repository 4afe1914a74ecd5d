//! `entente audit tail|search|verify` as an operator runs them, against a serving node and
//! a stopped one.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{entente, text};
use prost::Message as _;

/// `entente init` in a fresh directory; returns the config path.
fn init_node(dir: &Path) -> PathBuf {
    let node = dir.join("node");
    let out = entente(&[
        "init",
        "--dir",
        node.to_str().unwrap(),
        "--agency",
        "XX-TEST",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    node.join("entente.toml")
}

fn submit(cfg: &str) -> String {
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reports/alert-vessel.json");
    let out = entente(&[
        "report",
        "submit",
        "--config",
        cfg,
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// Starts `entente serve` and waits for its control socket.
fn serve(config: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(["serve", "--config", config.to_str().unwrap()])
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
    assert!(socket.exists(), "the node opened its control socket");
    child
}

/// A clean stop (SIGTERM), which closes the log with a checkpoint.
fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    assert!(child.wait().unwrap().success());
}

/// Runs an audit command with `--json` and returns its entries.
fn entries(args: &[&str]) -> Vec<serde_json::Value> {
    let out = entente(&[args, &["--json"]].concat());
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array().unwrap().clone()
}

fn actions(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn audit_tail_and_search_work_while_the_node_serves_and_after_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path());
    let cfg = config.to_str().unwrap();
    let item = submit(cfg);

    let node = serve(&config);
    let tail = entries(&["audit", "tail", "--config", cfg, "-n", "5"]);
    let submitted = entries(&["audit", "search", "--config", cfg, "--action", "submitted"]);
    let by_item = entries(&["audit", "search", "--config", cfg, "--item", &item]);
    let window = entries(&[
        "audit",
        "search",
        "--config",
        cfg,
        "--since",
        "2000-01-01",
        "--until",
        "2000-01-02",
    ]);
    let verify_running = entente(&["audit", "verify", "--config", cfg]);
    terminate(node);

    assert_eq!(actions(&tail), ["submitted"]);
    assert_eq!(tail[0]["seq"], 1);
    assert_eq!(tail[0]["item_id"], item.as_str());
    assert!(tail[0]["time"].as_str().unwrap().ends_with('Z'), "{tail:?}");
    assert_eq!(actions(&submitted), ["submitted"]);
    assert_eq!(actions(&by_item), ["submitted"]);
    assert!(window.is_empty(), "{window:?}");
    assert!(!verify_running.status.success());
    assert!(
        text(&verify_running.stderr).contains("stop `entente serve`"),
        "{}",
        text(&verify_running.stderr)
    );

    // Stopped: the same commands read the store. Every search above was recorded, and the
    // clean stop closed the log with a checkpoint.
    let queries = entries(&["audit", "search", "--config", cfg, "--action", "query"]);
    let details: Vec<&str> = queries
        .iter()
        .map(|q| q["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "audit limit 5",
            "audit action=submitted limit 100",
            &format!("audit item={item} limit 100"),
            "audit since=2000-01-01T00:00:00Z until=2000-01-03T00:00:00Z limit 100",
        ]
    );
    let out = entente(&["audit", "tail", "--config", cfg, "-n", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("SEQ"), "{lines:?}");
    assert!(
        lines[1].contains("checkpoint") && lines[1].contains("entry 5 sha256 "),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("query") && lines[2].contains("local"),
        "{lines:?}"
    );

    let verify = entente(&["audit", "verify", "--config", cfg]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    let report = text(&verify.stdout);
    assert!(
        report.contains("audit log intact: 8 entries, 1 signed checkpoint verified"),
        "{report}"
    );
    assert!(
        report.contains("last checkpoint at entry 6; entries 7 to 8 are not yet covered"),
        "{report}"
    );
}

#[test]
fn a_bad_since_value_names_the_option_and_what_is_expected() {
    let out = entente(&[
        "audit",
        "search",
        "--config",
        "nowhere.toml",
        "--since",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("--since"), "{err}");
    assert!(
        err.contains("RFC 3339") && err.contains("2026-12-04"),
        "{err}"
    );
    let out = entente(&[
        "audit",
        "search",
        "--config",
        "nowhere.toml",
        "--until",
        "2026-02-30",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--until"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn audit_verify_names_the_first_bad_entry_of_a_changed_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path());
    let cfg = config.to_str().unwrap();
    for _ in 0..3 {
        submit(cfg);
    }
    let out = entente(&["audit", "verify", "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let db = sled::open(config.parent().unwrap().join("data")).unwrap();
    let log = db.open_tree("audit").unwrap();
    let key = [&b"e"[..], &2u64.to_be_bytes()].concat();
    let mut entry =
        entente::audit::Entry::decode(log.get(&key).unwrap().unwrap().as_ref()).unwrap();
    entry.action = "withheld".into();
    log.insert(&key, entry.encode_to_vec()).unwrap();
    db.flush().unwrap();
    drop(log);
    drop(db);

    let out = entente(&["audit", "verify", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("audit log broken at entry 3: broken chain link"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("intact before the first bad entry: 2 entries"),
        "{}",
        text(&out.stdout)
    );
}
