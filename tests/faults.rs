//! Faults on loopback, between real nodes over mutual TLS: a partner down while a large
//! backlog builds; peers that send garbage, stall mid-stream, or reconnect in a tight loop;
//! a full disk under the receiver's store (a real one, on a tmpfs, when the tests run as
//! root, as CI does); and (ignored, long) SIGKILL of both `entente serve` processes at
//! random points of a 10,000-item transfer.
//!
//! Run the long one with
//! `cargo test --release --test faults -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use entente::{
    config::Config,
    identity::SigningKey,
    node::{Node, Shared},
    pb::{self, peer_exchange_client::PeerExchangeClient},
    store::Store,
    tls,
};
use tokio::{io::AsyncWriteExt as _, sync::mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Items in the backlog test: enough for many batches and several delivery streams.
const BACKLOG: usize = if cfg!(debug_assertions) { 500 } else { 3000 };

/// Submits `n` reports to `node` in batches, titled `prefix i`.
async fn submit_many(node: &Shared, prefix: &str, n: usize) {
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 500).min(n))
            .map(|j| report(pb::ItemKind::EnforcementAlert, &format!("{prefix} {j}")))
            .collect();
        i += batch.len();
        node.submit_batch(batch).await.unwrap();
    }
}

/// Every title from `origin` held by `store`, checked to be distinct.
fn distinct_titles(store: &Store, origin: &str) -> usize {
    let mut titles: Vec<String> = store
        .list_items(usize::MAX)
        .unwrap()
        .iter()
        .filter(|i| i.origin == origin && !i.own)
        .filter_map(|i| i.report().map(|r| r.title.clone()))
        .collect();
    let all = titles.len();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), all, "an item was stored twice");
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_down_while_a_large_backlog_builds_gets_all_of_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO", "CC-THREE"]).await;
    let b = members.remove(1);
    let b_addr = b.listener.local_addr().unwrap();
    drop(b.listener); // B is down: connections to its port are refused.
    let nodes = start_all(members).await;
    let (a, c) = (nodes[0].shared().clone(), nodes[1].shared().clone());
    submit_many(&a, "backlog", BACKLOG).await;
    // C keeps being served while A retries B with backoff.
    c.submit(report(
        pb::ItemKind::EnforcementAlert,
        "to A while B is down",
    ))
    .await
    .unwrap();
    eventually(20, "C's item reaches A while B is down", || {
        received_from(&a.store, "CC-THREE") == 1
    })
    .await;
    eventually(60, "A's backlog reaches C", || {
        received_from(&c.store, "AA-ONE") == BACKLOG
    })
    .await;
    assert_eq!(
        a.store.outbox_depth("BB-TWO"),
        BACKLOG,
        "nothing lost while B is down"
    );

    let listener = tokio::net::TcpListener::bind(b_addr).await.unwrap();
    let b = Node::start_on(b.config, listener).await.unwrap();
    eventually(120, "B receives the whole backlog", || {
        received_from(&b.shared().store, "AA-ONE") == BACKLOG
    })
    .await;
    eventually(20, "A's outbox drains", || {
        a.store.outbox_depth("BB-TWO") == 0
    })
    .await;
    assert_eq!(distinct_titles(&b.shared().store, "AA-ONE"), BACKLOG);
    b.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

/// A federation of A (sender), B (receiver, with `adjust` applied) and C, all serving.
async fn serving(dir: &Path, adjust: impl FnOnce(&mut Config)) -> Vec<Node> {
    let mut members = federation(dir, &["AA-ONE", "BB-TWO", "CC-THREE"]).await;
    adjust(&mut members[1].config);
    start_all(members).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_tls_port_is_refused_and_recorded_and_others_still_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = serving(dir.path(), |_| {}).await;
    let (a, b) = (nodes[0].shared().clone(), &nodes[1]);
    let mut garbage = Vec::new();
    for i in 0..20u8 {
        let mut tcp = tokio::net::TcpStream::connect(b.addr()).await.unwrap();
        // Not a TLS record: random-looking bytes, then a close.
        let bytes: Vec<u8> = (0..4096u32)
            .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
            .collect();
        let _ = tcp.write_all(&bytes).await;
        let _ = tcp.shutdown().await;
        garbage.push(tcp);
    }
    // A TLS ClientHello cut short, left hanging.
    let mut half = tokio::net::TcpStream::connect(b.addr()).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    a.submit(report(
        pb::ItemKind::EnforcementAlert,
        "through the garbage",
    ))
    .await
    .unwrap();
    eventually(20, "A's item reaches B", || {
        received_from(&b.shared().store, "AA-ONE") == 1
    })
    .await;
    eventually(10, "every garbage connection refused and recorded", || {
        b.shared()
            .store
            .audit_entries()
            .unwrap()
            .iter()
            .filter(|e| e.action == "refused" && e.detail.starts_with("TLS handshake"))
            .count()
            >= 20
    })
    .await;
    assert_eq!(
        distinct_titles(&b.shared().store, "AA-ONE"),
        1,
        "garbage stored nothing"
    );
    drop(half);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stalls_mid_stream_is_cut_off_and_others_still_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = serving(dir.path(), |b| {
        b.limits.idle_stream_secs = 1;
        b.limits.max_streams_per_peer = 2;
    })
    .await;
    let (a, b, c) = (
        nodes[0].shared().clone(),
        &nodes[1],
        nodes[2].shared().clone(),
    );
    // C opens as many streams as it may, sends one batch on each, then stalls.
    let endpoint = format!("https://{}", b.addr());
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let config = tls::client_config(&material(&c.config), None, "BB-TWO", None).unwrap();
        let channel = tls::channel(&endpoint, config).unwrap();
        let (tx, rx) = mpsc::channel(1);
        let results = PeerExchangeClient::new(channel)
            .deliver(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        tx.send(pb::DeliverBatch {
            sequence: 1,
            envelopes: Vec::new(),
        })
        .await
        .unwrap();
        stalled.push((tx, results));
    }
    let started = Instant::now();
    submit_many(&a, "while C stalls", 50).await;
    eventually(20, "A delivers while C's streams stall", || {
        received_from(&b.shared().store, "AA-ONE") == 50
    })
    .await;
    // The idle timeout ends C's streams and frees its slots.
    for (_tx, results) in &mut stalled {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), results.message()).await {
                Ok(Ok(Some(_))) => continue, // the answer to the one batch sent
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => panic!("a stalled stream was not closed"),
            }
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    drop(stalled);
    // C, no longer stalling, delivers normally through the freed slots.
    c.submit(report(pb::ItemKind::EnforcementAlert, "C after the stall"))
        .await
        .unwrap();
    eventually(20, "C delivers once its stalled streams are gone", || {
        received_from(&b.shared().store, "CC-THREE") == 1
    })
    .await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_reconnecting_in_a_tight_loop_is_held_to_its_limits_and_others_are_not_slowed() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = serving(dir.path(), |b| b.limits.max_streams_per_peer = 2).await;
    let (a, b, c) = (
        nodes[0].shared().clone(),
        &nodes[1],
        nodes[2].shared().clone(),
    );
    let endpoint = format!("https://{}", b.addr());
    let c_material = material(&c.config);

    // A's transfer alone, as the baseline.
    let started = Instant::now();
    submit_many(&a, "baseline", 200).await;
    eventually(60, "baseline transfer", || {
        received_from(&b.shared().store, "AA-ONE") == 200
    })
    .await;
    let baseline = started.elapsed();

    // C reconnects as fast as it can: a new TLS connection and stream each time, held
    // open so that it piles up against its stream limit.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let flood = tokio::spawn(async move {
        let (mut opened, mut refused) = (0u32, 0u32);
        let mut held = Vec::new();
        while !*stop_rx.borrow() {
            let config = tls::client_config(&c_material, None, "BB-TWO", None).unwrap();
            let channel = tls::channel(&endpoint, config).unwrap();
            let (tx, rx) = mpsc::channel::<pb::DeliverBatch>(1);
            match PeerExchangeClient::new(channel)
                .deliver(ReceiverStream::new(rx))
                .await
            {
                Ok(results) => {
                    opened += 1;
                    held.push((tx, results));
                    if held.len() > 8 {
                        held.remove(0);
                    }
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                    refused += 1;
                }
            }
        }
        (opened, refused)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    submit_many(&a, "during the flood", 200).await;
    eventually(60, "A's transfer during the flood", || {
        received_from(&b.shared().store, "AA-ONE") == 400
    })
    .await;
    let during = started.elapsed();
    stop_tx.send(true).unwrap();
    let (opened, refused) = flood.await.unwrap();
    eprintln!(
        "baseline {baseline:?}, during the flood {during:?}; C opened {opened} streams, \
         {refused} refused"
    );
    assert!(refused > 0, "the stream limit held C back");
    // On two shared cores the flood costs handshakes; A must not be starved by it.
    assert!(
        during < baseline * 10 + Duration::from_secs(5),
        "A was slowed from {baseline:?} to {during:?}"
    );
    assert_eq!(distinct_titles(&b.shared().store, "AA-ONE"), 400);
    for node in nodes {
        node.shutdown().await;
    }
}

// ----- a full disk under the receiver's store -----

/// True when this process runs as root (the owner of `/proc/self` is its effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Mounts a tmpfs of `size` at `dir`; false when the mount fails.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn resize_tmpfs(dir: &Path, size: &str) {
    let status = Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Unmounts on drop, so a failed test leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `n` reports of about 16 KiB each, titled "big 0" ...
fn big_reports(n: usize) -> Vec<pb::Report> {
    let mut big = report(pb::ItemKind::EnforcementAlert, "big");
    big.narrative = "x".repeat(16 * 1024);
    (0..n)
        .map(|i| {
            let mut r = big.clone();
            r.title = format!("big {i}");
            r
        })
        .collect()
}

/// Waits until the outbox of `sender` toward `partner` stops shrinking (or 60 s pass).
async fn until_delivery_stalls(sender: &Shared, partner: &str) -> usize {
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = sender.store.outbox_depth(partner);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_disk_reserve_nothing_is_stored_partners_retry_and_a_local_submit_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut b) = {
        let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
        let b = members.pop().unwrap();
        (members.pop().unwrap(), b)
    };
    // A reserve no disk here has: BB-TWO is "full" from the start.
    b.config.limits.min_free_disk_mb = 1_048_576;
    let (b_config, b_addr) = (b.config.clone(), b.listener.local_addr().unwrap());
    let b_node = Node::start_on(b.config, b.listener).await.unwrap();
    let a_node = Node::start_on(a.config, a.listener).await.unwrap();
    let sender = a_node.shared().clone();
    sender.submit_batch(big_reports(20)).await.unwrap();
    // A delivers at once and, turned away with UNAVAILABLE, retries with backoff.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b_node.shared().store.item_count(), 0, "nothing is stored");
    assert_eq!(sender.store.outbox_depth("BB-TWO"), 20, "everything waits");
    assert_eq!(audit_count(&sender.store, "refused-by-partner"), 0);
    let err = b_node
        .shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "local"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("below the 1048576 MiB kept in reserve"),
        "{err}"
    );
    assert_eq!(b_node.shared().store.item_count(), 0);
    b_node.shutdown().await;

    // With the reserve met, the same items arrive, once.
    let mut config = b_config;
    config.limits.min_free_disk_mb = 0;
    let listener = tokio::net::TcpListener::bind(b_addr).await.unwrap();
    let b_node = Node::start_on(config, listener).await.unwrap();
    eventually(60, "the items arrive once the reserve is met", || {
        sender.store.outbox_depth("BB-TWO") == 0
    })
    .await;
    assert_eq!(distinct_titles(&b_node.shared().store, "AA-ONE"), 20);
    b_node.shutdown().await;
    a_node.shutdown().await;
}

/// Needs root, to mount a tmpfs over the receiver's data directory. As another user it says
/// so and checks nothing; as root, a mount that fails is a failure, so a CI run (as root)
/// cannot pass it without filling a disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_store_is_an_error_not_corruption_and_delivery_resumes() {
    if !running_as_root() {
        eprintln!("skipped: mounting a tmpfs needs root; see docs/operations.md, Fault tests");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, mut b) = {
        let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
        let b = members.pop().unwrap();
        (members.pop().unwrap(), b)
    };
    let data = b.config.data_dir.clone();
    assert!(
        mount_tmpfs(&data, "24m"),
        "running as root, but a tmpfs cannot be mounted at {}",
        data.display()
    );
    let _mounted = Mounted(data.clone());
    b.config.limits.min_free_disk_mb = 8;
    let b_config = b.config.clone();
    let b_node = Node::start_on(b.config, b.listener).await.unwrap();
    let a_node = Node::start_on(a.config, a.listener).await.unwrap();
    let sender = a_node.shared().clone();
    // 16 MiB of space above the reserve fills within a thousand 16 KiB reports.
    let items = 1_500;
    sender.submit_batch(big_reports(items)).await.unwrap();
    // B reaches its reserve: deliveries stop short, A keeps the rest queued.
    let waiting = until_delivery_stalls(&sender, "BB-TWO").await;
    let held = b_node.shared().store.item_count();
    eprintln!("disk full: B holds {held} items, {waiting} wait at A");
    assert!(waiting > 0, "the disk filled before everything arrived");
    assert!(held > 0, "B stored items until it reached its reserve");
    assert_eq!(audit_count(&sender.store, "refused-by-partner"), 0);
    // A local submission on B gets the cause, not a silent loss or a hang.
    let local = b_node
        .shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "local"));
    let err = tokio::time::timeout(Duration::from_secs(10), local)
        .await
        .expect("a submission on a full disk fails, it does not hang")
        .unwrap_err()
        .to_string();
    eprintln!("B's submit while full: {err}");
    assert!(err.contains("kept in reserve"), "{err}");

    // Space returns; B, still running, takes the rest, once.
    resize_tmpfs(&data, "256m");
    eventually(120, "the rest arrives once space returns", || {
        sender.store.outbox_depth("BB-TWO") == 0
    })
    .await;
    assert_eq!(distinct_titles(&b_node.shared().store, "AA-ONE"), items);
    b_node.shutdown().await;
    a_node.shutdown().await;
    let store = Store::open_with_key_file(&b_config.data_dir, &b_config.data_key).unwrap();
    let key = SigningKey::load(&b_config.signing_key).unwrap().public();
    assert_eq!(
        store.verify_audit(&key).unwrap().first_bad,
        None,
        "the audit log is intact"
    );
    assert_eq!(store.item_count(), items);
}

// ----- SIGKILL of both `entente serve` processes during a 10,000-item transfer -----

/// A small xorshift generator seeded from the clock (printed, so a run can be repeated
/// with `FAULTS_SEED`).
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("FAULTS_SEED={seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Items B holds, read through its control socket (0 while it restarts).
fn received(config: &Path) -> usize {
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
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
#[ignore = "long: about a minute or more; run with --ignored"]
fn sigkill_at_random_points_of_a_10000_item_transfer_loses_and_duplicates_nothing() {
    const ITEMS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let (a_config, b_config) = two_nodes(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let a = Shared::open(Config::load(&a_config).unwrap()).unwrap();
        submit_many(&a, "kill", ITEMS).await;
    });
    let mut rng = Rng::new();
    let mut a = serve(&a_config);
    let mut b = serve(&b_config);
    let mut kills = 0;
    // Kill one or both at random moments until the transfer is well under way several
    // times over, then let it finish.
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        let which = rng.below(3);
        if which != 1 {
            a.kill().unwrap();
            a.wait().unwrap();
            kills += 1;
        }
        if which != 0 {
            b.kill().unwrap();
            b.wait().unwrap();
            kills += 1;
        }
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        if which != 1 {
            a = serve(&a_config);
        }
        if which != 0 {
            b = serve(&b_config);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && received(&b_config) < ITEMS {
        std::thread::sleep(Duration::from_millis(500));
    }
    // Give the last receipts time to reach A, then stop both cleanly.
    std::thread::sleep(Duration::from_secs(3));
    terminate(&mut a);
    terminate(&mut b);
    eprintln!("{kills} kills");
    let a = Config::load(&a_config).unwrap();
    let a_store = Store::open_with_key_file(&a.data_dir, &a.data_key).unwrap();
    let b = Config::load(&b_config).unwrap();
    let b_store = Store::open_with_key_file(&b.data_dir, &b.data_key).unwrap();
    assert_eq!(
        b_store.item_count(),
        ITEMS,
        "every item arrives exactly once"
    );
    assert_eq!(distinct_titles(&b_store, "AA-ONE"), ITEMS);
    assert_eq!(
        a_store.outbox_depth("BB-TWO"),
        0,
        "every receipt was recorded"
    );
    for (store, config) in [(&a_store, &a), (&b_store, &b)] {
        let key = SigningKey::load(&config.signing_key).unwrap().public();
        let done = store.verify_audit(&key).unwrap();
        assert_eq!(done.first_bad, None, "{:?}", config.file);
    }
}
