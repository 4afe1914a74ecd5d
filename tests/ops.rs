//! What operators' tools see: the standard gRPC health service and server reflection on
//! the peer listener (over mutual TLS) and on the control socket, and the Prometheus
//! `/metrics` endpoint of a real `entente serve`.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{Read as _, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use entente::tls;
use tokio_stream::StreamExt as _;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_listener_answers_health_checks_and_reflection_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let members = federation(dir.path(), &["AA-ONE", "BB-TWO"]).await;
    let a_material = material(&members[0].config);
    let nodes = start_all(members).await;
    let endpoint = format!("https://{}", nodes[1].addr());
    let config = tls::client_config(&a_material, None, "BB-TWO", None).unwrap();
    let channel = tls::channel(&endpoint, config).unwrap();

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "entente.v1.PeerExchange"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("{answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "entente.v1.PeerExchange",
        "entente.v1.Control",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    for node in nodes {
        node.shutdown().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` on 127.0.0.1:`port`, or `None` while nothing answers.
fn scrape(port: u16) -> Option<String> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

#[test]
fn serve_exposes_prometheus_metrics_when_metrics_listen_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("xx-test");
    let listen = format!("127.0.0.1:{}", free_port());
    let out = entente(&[
        "init",
        "--dir",
        node.to_str().unwrap(),
        "--agency",
        "XX-TEST",
        "--listen",
        &listen,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = node.join("entente.toml");
    let metrics_port = free_port();
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[node]\n",
        &format!("[node]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let cfg = config.to_str().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(["serve", "--config", cfg])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the control socket", || {
        node.join("data/control.sock").exists()
    });
    let report =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reports/denial-dual-use.json");
    let submit = entente(&[
        "report",
        "submit",
        "--config",
        cfg,
        report.to_str().unwrap(),
    ]);
    let list = entente(&["report", "list", "--config", cfg]);
    let mut scraped = String::new();
    wait_for("the metrics", || {
        scraped = scrape(metrics_port).unwrap_or_default();
        scraped.contains("entente_queries_total")
    });
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(submit.status.success() && list.status.success());
    assert!(
        scraped.contains("# TYPE entente_items_submitted_total counter"),
        "{scraped}"
    );
    assert!(
        scraped.contains("entente_items_submitted_total 1"),
        "{scraped}"
    );
    assert!(
        scraped.contains("entente_queries_total{kind=\"list\"} 1"),
        "{scraped}"
    );
}
