//! `entente bench`: end-to-end delivery between nodes on loopback, with durability on.
//!
//! A sender and one or more receivers are built with [`crate::testbed`] in a scratch
//! directory and serve real mutual TLS on 127.0.0.1. The sender submits reports of about
//! 2 KiB in chunks (each chunk stored and flushed to disk before it counts as accepted);
//! every item is sealed once per partner, streamed, opened, verified, stored and flushed
//! by the receiver, and confirmed by a signed receipt that the sender verifies. Latency is
//! from the start of the submission to the verified receipt.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{node::Node, pb, sharing::ShareKind, testbed};

/// Arguments of `entente bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Reports to send.
    #[arg(long, default_value_t = 5000)]
    pub items: usize,
    /// Receiving partners; each report is sealed and delivered to every one.
    #[arg(long, default_value_t = 1)]
    pub partners: usize,
    /// Reports submitted (and flushed) together.
    #[arg(long, default_value_t = 32)]
    pub chunk: usize,
    /// Concurrent submitters (analysts or importers), each sending its share of the items.
    #[arg(long, default_value_t = 2)]
    pub submitters: usize,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Reports submitted.
    pub items: usize,
    /// Partners each went to.
    pub partners: usize,
    /// Encoded size of one report item, bytes.
    pub item_bytes: usize,
    /// Wall time from the first submission to the last receipt.
    pub elapsed: Duration,
    /// Latencies of every (item, partner) delivery.
    pub latencies: Vec<Duration>,
}

impl BenchResult {
    /// Reports fully delivered (to every partner) per second.
    pub fn items_per_sec(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0 to 1).
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).copied().unwrap_or_default()
    }
}

/// Runs the benchmark and prints the result.
pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let result = measure(&args).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if args.json {
        let out = json!({
            "items": result.items,
            "partners": result.partners,
            "item_bytes": result.item_bytes,
            "elapsed_s": result.elapsed.as_secs_f64(),
            "items_per_s": result.items_per_sec(),
            "envelopes_per_s": result.items_per_sec() * result.partners as f64,
            "latency_ms": {"p50": ms(result.quantile(0.5)), "p99": ms(result.quantile(0.99)), "p999": ms(result.quantile(0.999))},
        });
        println!("{out}");
    } else {
        println!(
            "{} reports of {} bytes to {} partner(s) in {:.2} s: {:.0} reports/s, {:.0} envelopes/s",
            result.items,
            result.item_bytes,
            result.partners,
            result.elapsed.as_secs_f64(),
            result.items_per_sec(),
            result.items_per_sec() * result.partners as f64
        );
        println!(
            "latency submit→verified receipt: p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms",
            ms(result.quantile(0.5)),
            ms(result.quantile(0.99)),
            ms(result.quantile(0.999))
        );
    }
    Ok(())
}

/// Builds the federation, sends `args.items` reports and waits for every receipt.
pub async fn measure(args: &BenchArgs) -> Result<BenchResult, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut names = vec!["BENCH-SENDER".to_owned()];
    names.extend((1..=args.partners.max(1)).map(|i| format!("BENCH-R{i}")));
    let agencies: Vec<&str> = names.iter().map(String::as_str).collect();
    let members = testbed::federation(dir.path(), &agencies, &ShareKind::ALL)
        .await
        .map_err(|e| e.to_string())?;
    let mut nodes = Vec::new();
    for member in members {
        nodes.push(Node::start_on(member.config, member.listener).await?);
    }
    let sender = nodes[0].shared().clone();
    let partners = nodes.len() - 1;
    let mut events = sender.subscribe_deliveries();
    let report = sample_report();
    let item_bytes = prost::Message::encoded_len(&pb::Item {
        body: Some(pb::item::Body::Report(report.clone())),
        originator: String::new(),
    });
    let expected = args.items * partners;
    let mut started: HashMap<[u8; 16], Instant> = HashMap::with_capacity(args.items);
    let mut latencies = Vec::with_capacity(expected);
    let t0 = Instant::now();
    let submitters = args.submitters.max(1);
    let mut handles: Vec<_> = (0..submitters)
        .map(|i| {
            let share = args.items / submitters + usize::from(i < args.items % submitters);
            tokio::spawn(submit_all(
                sender.clone(),
                report.clone(),
                share,
                args.chunk.max(1),
            ))
        })
        .collect();
    let mut pending: Vec<crate::exchange::DeliveryEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.len() < expected && Instant::now() < deadline {
        if !handles.is_empty() && handles.iter().all(|h| h.is_finished()) {
            for handle in handles.drain(..) {
                started.extend(handle.await??);
            }
        }
        match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            Ok(Ok(event)) => pending.push(event),
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                return Err("benchmark lost delivery events; use fewer items".into());
            }
            Ok(Err(_)) | Err(_) => {}
        }
        if handles.is_empty() {
            for event in pending.drain(..) {
                for id in &event.item_ids {
                    if let Some(at) = started.get(id) {
                        latencies.push(event.at.duration_since(*at));
                    }
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    for node in nodes {
        node.shutdown().await;
    }
    if latencies.len() < expected {
        return Err(format!(
            "only {} of {expected} deliveries confirmed",
            latencies.len()
        )
        .into());
    }
    Ok(BenchResult {
        items: args.items,
        partners,
        item_bytes,
        elapsed,
        latencies,
    })
}

/// Submits `items` copies of `report` in chunks; returns each item's submission time.
async fn submit_all(
    sender: std::sync::Arc<crate::node::Shared>,
    report: pb::Report,
    items: usize,
    chunk: usize,
) -> Result<Vec<([u8; 16], Instant)>, crate::node::NodeError> {
    let mut times = Vec::with_capacity(items);
    let mut left = items;
    while left > 0 {
        let n = chunk.min(left);
        let at = Instant::now();
        for s in sender.submit_batch(vec![report.clone(); n]).await? {
            times.push((s.item_id, at));
        }
        left -= n;
    }
    Ok(times)
}

/// A realistic suspicious-transaction report of about 2 KiB once encoded.
pub fn sample_report() -> pb::Report {
    let subject = |name: &str, country: &str| pb::Subject {
        r#type: pb::SubjectType::Organisation as i32,
        name: name.to_owned(),
        aliases: vec![format!("{name} Trading"), format!("{name} Intl")],
        countries: vec![country.to_owned()],
        identifiers: vec![pb::Identifier {
            scheme: "registration".into(),
            value: "HRB-448812-77".into(),
            country: country.to_owned(),
        }],
        addresses: vec![pb::Address {
            lines: vec!["Unit 4, 118 Harbour Road".into()],
            city: "Port Example".into(),
            postal_code: "40213".into(),
            country: country.to_owned(),
        }],
        role: "consignee".into(),
    };
    let mut report = pb::Report {
        kind: pb::ItemKind::SuspiciousTransaction as i32,
        title: "Repeated orders of radiation-hardened FPGAs via a transit hub".into(),
        reference: "BENCH-2026-000417".into(),
        subjects: vec![
            subject("Northwind Components", "AE"),
            subject("Blue Delta Logistics", "MY"),
            subject("Kestrel Microsystems", "CN"),
        ],
        goods: vec![pb::Goods {
            description: "Radiation-hardened field-programmable gate arrays".into(),
            hs_code: "854239".into(),
            control_entry: "3A001.a.1".into(),
            quantity: 400.0,
            unit: "pcs".into(),
            value: Some(pb::Money {
                minor_units: 18_600_000,
                currency: "USD".into(),
            }),
        }],
        route: Some(pb::Route {
            origin: "US".into(),
            transit: vec!["AE".into(), "MY".into()],
            destination: "MY".into(),
            end_user_country: "CN".into(),
        }),
        red_flags: vec![
            "end user declined installation and training".into(),
            "payment from a third country".into(),
            "freight forwarder listed as final consignee".into(),
        ],
        narrative: "Between March and October the consignee placed eleven orders, each just \
            below the reporting threshold, for radiation-hardened FPGAs. Goods were \
            re-exported within days of arrival to a company sharing a director with the \
            consignee. Payments came from accounts in a third country. The declared end \
            use (telecommunications maintenance) does not match the quantities or the \
            radiation tolerance ordered. Shipping documents list the freight forwarder as \
            final consignee; the forwarder's address is a shared office. Two of the orders \
            were split across different invoices issued on the same day, and the buyer \
            asked for the goods to be relabelled as generic logic devices before export. \
            The buyer's website was registered three weeks before the first order."
            .to_owned(),
        handling: Some(pb::Handling {
            tlp: pb::TlpLevel::Amber as i32,
            originator_control: true,
            releasable_to: vec![],
            retention_days: 365,
        }),
        denial_date: String::new(),
    };
    // Pad the narrative so that the encoded item is exactly 2 KiB, the size the
    // envelope benchmark uses too.
    let item_len = |r: &pb::Report| {
        prost::Message::encoded_len(&pb::Item {
            body: Some(pb::item::Body::Report(r.clone())),
            originator: String::new(),
        })
    };
    while item_len(&report) < 2048 {
        report.narrative.push(' ');
    }
    report
}
