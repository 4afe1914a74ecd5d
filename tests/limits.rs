//! Per-partner limits on the peer listener, between real nodes on 127.0.0.1 over mutual
//! TLS: a partner over its stream limit is refused while another is not; a partner that
//! delivers faster than its rate is held back while another is not; a silent stream is
//! closed.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use entente::{
    config::Config,
    demo::send_raw,
    node::{Node, Shared},
    pb::{self, peer_exchange_client::PeerExchangeClient},
    tls,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A running receiver BB-TWO, with `adjust` applied to its config, and two stopped
/// partners AA-ONE and CC-THREE whose stores seal genuine envelopes for it.
struct Fixture {
    _dir: tempfile::TempDir,
    receiver: Node,
    a: Shared,
    c: Shared,
    endpoint: String,
}

impl Fixture {
    async fn new(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut members = federation(dir.path(), &["AA-ONE", "BB-TWO", "CC-THREE"]).await;
        let c = members.pop().unwrap();
        let mut b = members.pop().unwrap();
        let a = members.pop().unwrap();
        adjust(&mut b.config);
        let receiver = Node::start_on(b.config, b.listener).await.unwrap();
        let endpoint = format!("https://{}", receiver.addr());
        Self {
            _dir: dir,
            a: Shared::open(a.config).unwrap(),
            c: Shared::open(c.config).unwrap(),
            receiver,
            endpoint,
        }
    }

    fn b(&self) -> &Shared {
        self.receiver.shared()
    }

    /// `n` genuine envelopes from `from` to BB-TWO.
    async fn genuine(&self, from: &Shared, n: usize) -> Vec<pb::Envelope> {
        for i in 0..n {
            from.submit(report(
                pb::ItemKind::EnforcementAlert,
                &format!("alert {i}"),
            ))
            .await
            .unwrap();
        }
        let queued = from.store.outbox_batch("BB-TWO", None, n).unwrap();
        queued.into_iter().map(|q| q.envelope).collect()
    }

    /// Opens a delivery stream as `from` and keeps it open, sending nothing: the sender
    /// half (drop it to end the stream) and the results.
    async fn open_stream(
        &self,
        from: &Shared,
    ) -> Result<
        (
            mpsc::Sender<pb::DeliverBatch>,
            tonic::Streaming<pb::BatchResult>,
        ),
        tonic::Status,
    > {
        let config = tls::client_config(&material(&from.config), None, "BB-TWO", None).unwrap();
        let channel = tls::channel(&self.endpoint, config).unwrap();
        let (tx, rx) = mpsc::channel(1);
        let results = PeerExchangeClient::new(channel)
            .deliver(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok((tx, results))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_stream_limit_is_refused_and_another_is_not() {
    let f = Fixture::new(|b| b.limits.max_streams_per_peer = 2).await;
    let first = f.open_stream(&f.c).await.unwrap();
    let _second = f.open_stream(&f.c).await.unwrap();
    let refused = f.open_stream(&f.c).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("CC-THREE already has 2 streams open"),
        "{}",
        refused.message()
    );
    let last = last_audit(&f.b().store);
    assert_eq!(
        (last.action.as_str(), last.peer.as_str()),
        ("refused", "CC-THREE")
    );
    assert!(
        last.detail.contains("max_streams_per_peer"),
        "{}",
        last.detail
    );

    // AA-ONE has streams of its own: its delivery goes through.
    let envelopes = f.genuine(&f.a, 3).await;
    let result = send_raw(&material(&f.a.config), "BB-TWO", &f.endpoint, envelopes)
        .await
        .unwrap();
    assert!(
        result.refusals.is_empty() && result.receipt.is_some(),
        "{result:?}"
    );
    assert_eq!(f.b().store.item_count(), 3);

    // A stream that ends gives its slot back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match f.open_stream(&f.c).await {
            Ok(_) => break,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("the slot was not given back: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_rate_is_held_back_and_another_is_not() {
    let f = Fixture::new(|b| b.limits.max_envelopes_per_sec = 40).await;
    let from_a = f.genuine(&f.a, 120).await;
    let from_c = f.genuine(&f.c, 20).await;
    let started = Instant::now();
    let a_material = material(&f.a.config);
    let endpoint = f.endpoint.clone();
    // 120 envelopes at 40 a second: the first 40 pass at once, the rest take 2 s.
    let a = tokio::spawn(async move {
        let result = send_raw(&a_material, "BB-TWO", &endpoint, from_a).await;
        (result, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c_result = send_raw(&material(&f.c.config), "BB-TWO", &f.endpoint, from_c)
        .await
        .unwrap();
    let c_done = started.elapsed();
    let (a_result, a_done) = a.await.unwrap();
    let a_result = a_result.unwrap();
    assert!(c_result.refusals.is_empty() && c_result.receipt.is_some());
    assert!(
        a_result.refusals.is_empty() && a_result.receipt.is_some(),
        "held back, not refused"
    );
    assert!(
        a_done >= Duration::from_millis(1900),
        "AA-ONE took {a_done:?}"
    );
    assert!(
        c_done < a_done,
        "CC-THREE ({c_done:?}) waited for AA-ONE ({a_done:?})"
    );
    assert_eq!(f.b().store.item_count(), 140);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_delivery_stream_is_closed() {
    let f = Fixture::new(|b| b.limits.idle_stream_secs = 1).await;
    let started = Instant::now();
    let (_tx, mut results) = f.open_stream(&f.c).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), results.message())
        .await
        .expect("the receiver closes a silent stream");
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}
