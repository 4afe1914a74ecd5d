//! Shared fixtures for the integration tests: federations of real nodes on 127.0.0.1 with
//! real mutual TLS, and raw clients that send what a well-behaved node never would.

#![allow(dead_code)]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use entente::{
    config::Config,
    node::Node,
    pb,
    sharing::ShareKind,
    store::Store,
    testbed::{self, Member},
    tls::{self, TlsMaterial},
};

/// Runs the `entente` binary with `args`, as a user would, and waits for it.
pub fn entente(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run entente")
}

/// Command output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Builds a federation in `dir` where everyone shares every kind with everyone.
pub async fn federation(dir: &Path, agencies: &[&str]) -> Vec<Member> {
    tls::install_crypto_provider();
    testbed::federation(dir, agencies, &ShareKind::ALL)
        .await
        .expect("build federation")
}

/// Starts every member.
pub async fn start_all(members: Vec<Member>) -> Vec<Node> {
    let mut nodes = Vec::new();
    for m in members {
        nodes.push(
            Node::start_on(m.config, m.listener)
                .await
                .expect("start node"),
        );
    }
    nodes
}

/// A small valid report of the given kind.
pub fn report(kind: pb::ItemKind, title: &str) -> pb::Report {
    let mut r = entente::bench::sample_report();
    r.kind = kind as i32;
    r.title = title.to_owned();
    if kind == pb::ItemKind::DenialNotification {
        r.denial_date = "2026-11-30".into();
    }
    r
}

/// Waits until `check` holds, or panics after `secs` seconds with `what`.
pub async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// True once `partner`'s signed receipt for own item `item` reached `sender`. A receiver
/// signs it after storing the item with everything it works out from it (screening hits,
/// search index, correlations) and flushing, whereas the item alone is visible in its
/// store a moment before the rest.
pub fn delivered(sender: &Store, item: &[u8; 16], partner: &str) -> bool {
    sender
        .deliveries(item)
        .unwrap_or_default()
        .iter()
        .any(|(p, d)| p == partner && d.state == "delivered")
}

/// Items `node` holds from `origin`.
pub fn received_from(store: &Store, origin: &str) -> usize {
    store
        .list_items(usize::MAX)
        .expect("list items")
        .iter()
        .filter(|i| i.origin == origin && !i.own)
        .count()
}

/// The TLS material of a member built by the testbed.
pub fn material(config: &Config) -> TlsMaterial {
    TlsMaterial::load(&config.tls_cert, &config.tls_key, &config.tls_ca).expect("tls material")
}

/// Audit entries of `store` whose action is `action`.
pub fn audit_count(store: &Store, action: &str) -> usize {
    store
        .audit_entries()
        .expect("audit")
        .iter()
        .filter(|e| e.action == action)
        .count()
}

/// The most recent audit entry.
pub fn last_audit(store: &Store) -> entente::audit::Entry {
    store
        .audit_entries()
        .expect("audit")
        .pop()
        .expect("an audit entry")
}

/// Number of keys in every data tree, to show that a refusal stored nothing.
pub fn footprint(store: &Store) -> (usize, usize) {
    (
        store.item_count(),
        store.list_items(usize::MAX).expect("list").len(),
    )
}

/// Opens a delivery stream as the holder of `material` and sends raw message bytes
/// (which need not be valid protobuf). Returns the first answer or the status.
pub async fn send_raw_bytes(
    material: &TlsMaterial,
    agency: &str,
    endpoint: &str,
    message: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let config = tls::client_config(material, None, agency, None).expect("client config");
    let channel = tls::channel(endpoint, config).expect("channel");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static("/entente.v1.PeerExchange/Deliver");
    let request = tonic::Request::new(tokio_stream::iter(vec![message]));
    let mut answers = grpc.streaming(request, path, RawCodec).await?.into_inner();
    match answers.message().await? {
        Some(bytes) => Ok(bytes),
        None => Err(tonic::Status::unknown("stream ended without an answer")),
    }
}

/// A codec that sends and receives bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        use bytes::Buf as _;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

// ----- nodes made and run with the `entente` binary -----

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `entente init` of `agency` in `dir`, on a free port, with the CA given (or a new one).
pub fn init(dir: &Path, agency: &str, ca: Option<(&Path, &Path)>) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "init".to_owned(),
        "--dir".into(),
        dir.display().to_string(),
        "--agency".into(),
        agency.into(),
        "--listen".into(),
        listen,
    ];
    if let Some((cert, key)) = ca {
        args.extend([
            "--ca-cert".into(),
            cert.display().to_string(),
            "--ca-key".into(),
            key.display().to_string(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = entente(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Two nodes made with `entente init`, registered with each other, sharing every kind.
pub fn two_nodes(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    init(&a, "AA-ONE", None);
    init(
        &b,
        "BB-TWO",
        Some((&a.join("tls/ca.crt"), &a.join("tls/ca.key"))),
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

/// `entente serve --config CONFIG` as a child process, its output discarded.
pub fn serve(config: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits up to 30 s, polling, until `check` holds; panics naming `what` if it never does.
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a `serve` process with SIGTERM, as systemd would, and waits for it.
pub fn terminate(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait().unwrap();
}
