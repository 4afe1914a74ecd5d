//! Crash safety of the real `entente serve` processes: SIGKILL of the sender and of the
//! receiver at arbitrary moments during a transfer loses no accepted item and duplicates
//! none.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::entente;
use entente::{config::Config, identity::SigningKey, node::Shared, pb, store::Store};

/// Enough items that the kills land mid-transfer; fewer in unoptimised builds, where
/// crypto is slow enough that a smaller transfer still spans the kills.
const ITEMS: usize = if cfg!(debug_assertions) { 600 } else { 3000 };

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two nodes made with `entente init`, registered with each other, sharing every kind.
fn two_nodes(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    let pa = format!("127.0.0.1:{}", free_port());
    let pb = format!("127.0.0.1:{}", free_port());
    let out = entente(&[
        "init",
        "--dir",
        a.to_str().unwrap(),
        "--agency",
        "AA-ONE",
        "--listen",
        &pa,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ca_cert, ca_key) = (a.join("tls/ca.crt"), a.join("tls/ca.key"));
    let out = entente(&[
        "init",
        "--dir",
        b.to_str().unwrap(),
        "--agency",
        "BB-TWO",
        "--listen",
        &pb,
        "--ca-cert",
        ca_cert.to_str().unwrap(),
        "--ca-key",
        ca_key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (me, other, agency) in [(&a, &b, "BB-TWO"), (&b, &a, "AA-ONE")] {
        let entry = std::fs::read_to_string(other.join("public.toml")).unwrap();
        let mut config = std::fs::read_to_string(me.join("entente.toml")).unwrap();
        config.push('\n');
        config.push_str(&entry);
        std::fs::write(me.join("entente.toml"), config).unwrap();
        let policy = entente::testbed::share_policy(&[agency], &entente::sharing::ShareKind::ALL);
        std::fs::write(me.join("policy.toml"), policy).unwrap();
    }
    (a.join("entente.toml"), b.join("entente.toml"))
}

fn serve(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill(child: &mut Child) {
    // SIGKILL: no shutdown code runs.
    child.kill().unwrap();
    child.wait().unwrap();
}

fn terminate(child: &mut Child) {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    child.wait().unwrap();
}

/// A cheap source of varied delays, so kills land at different points each run.
fn jitter_ms(round: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    30 + (nanos / 7 + round * 97) % 150
}

/// Items a running node lists through its control socket (empty while it restarts).
fn list(config: &Path) -> Vec<serde_json::Value> {
    let out = entente(&[
        "report",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--json",
        "--limit",
        "10000",
    ]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn sigkill_of_either_node_during_a_transfer_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a_config, b_config) = two_nodes(dir.path());
    // Accept ITEMS reports at A while it is stopped: durable once submit returns.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let a = Shared::open(Config::load(&a_config).unwrap()).unwrap();
        let reports = (0..ITEMS)
            .map(|i| common::report(pb::ItemKind::EnforcementAlert, &format!("crash {i}")))
            .collect();
        a.submit_batch(reports).await.unwrap();
    });
    let mut a = serve(&a_config);
    let mut b = serve(&b_config);
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(jitter_ms(round)));
        let victim = if round % 2 == 0 { &mut b } else { &mut a };
        kill(victim);
        std::thread::sleep(Duration::from_millis(50));
        *victim = serve(if round % 2 == 0 { &b_config } else { &a_config });
    }
    let after_kills = list(&b_config).len();
    // Let the transfer finish, watching both through their control sockets.
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let received = list(&b_config).len();
        let delivered = list(&a_config)
            .iter()
            .filter(|i| i["deliveries"][0]["state"] == "delivered")
            .count();
        if received >= ITEMS && delivered >= ITEMS {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A graceful stop flushes the last delivery records to disk.
    terminate(&mut a);
    terminate(&mut b);
    eprintln!("B held {after_kills} of {ITEMS} items when the kills ended");
    let a = Config::load(&a_config).unwrap();
    let a_store = Store::open_with_key_file(&a.data_dir, &a.data_key).unwrap();
    let b = Config::load(&b_config).unwrap();
    let b_store = Store::open_with_key_file(&b.data_dir, &b.data_key).unwrap();
    assert_eq!(
        b_store.item_count(),
        ITEMS,
        "every item arrives exactly once"
    );
    let mut titles: Vec<String> = b_store
        .list_items(usize::MAX)
        .unwrap()
        .iter()
        .map(|i| i.report().unwrap().title.clone())
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), ITEMS, "no item is missing or doubled");
    assert_eq!(
        a_store.outbox_depth("BB-TWO"),
        0,
        "every receipt was recorded"
    );
    for (store, config) in [(&a_store, &a_config), (&b_store, &b_config)] {
        let key = SigningKey::load(&Config::load(config).unwrap().signing_key).unwrap();
        let done = store.verify_audit(&key.public()).unwrap();
        assert_eq!(done.first_bad, None, "{config:?}");
        assert_eq!(done.entries, store.audit_entries().unwrap().len() as u64);
    }
}
