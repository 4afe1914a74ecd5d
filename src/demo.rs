//! `entente demo`: three agencies on loopback exchanging reports over real mutual TLS.
//!
//! US-BIS, DE-BAFA and JP-METI start from the material in `certs-example/` (or, when the
//! binary runs away from its source tree, from freshly generated example material), each
//! in a fresh temporary data directory and on a free port of 127.0.0.1. Each submits
//! sample reports; the interim share lists decide who gets what; delivery is confirmed by
//! signed receipts. Then two attacks are tried and must be refused: an item whose
//! signature is not by the sender's registered key, and a connection from an agency
//! whose certificate is valid but which is not a registered partner.
//!
//! US-BIS also publishes a small watchlist (`US-BIS/dpl`, from `examples/watchlists/`)
//! and an update of it; DE-BAFA receives both versions and ends with the same digest, and
//! JP-METI, which US-BIS's policy gives no watchlist, receives nothing. DE-BAFA then
//! screens a few names against the list it received.
//!
//! Then items change after they were sent: US-BIS corrects a report, DE-BAFA withdraws an
//! alert, and JP-METI's licence check opens a consultation with US-BIS about its denial
//! (the sample denial is dated six weeks back, so that it stays within the three years a
//! consultation looks back).
//!
//! The demo fails (non-zero exit) if any delivery is missing or any attack succeeds, so
//! it doubles as a smoke test.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use prost::Message as _;
use serde_json::json;
use tokio::net::TcpListener;

use crate::{
    audit,
    config::Config,
    envelope,
    identity::SigningKey,
    node::Node,
    pb::{self, peer_exchange_client::PeerExchangeClient},
    report, setup,
    tls::{self, TlsMaterial},
};

mod analyst;
mod lifecycle;
mod watchlists;

type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

const AGENCIES: [&str; 3] = ["US-BIS", "DE-BAFA", "JP-METI"];

/// Sample reports and who submits them.
const SUBMISSIONS: [(&str, &str); 5] = [
    (
        "US-BIS",
        include_str!("../examples/reports/str-front-company.json"),
    ),
    (
        "US-BIS",
        include_str!("../examples/reports/denial-dual-use.json"),
    ),
    (
        "DE-BAFA",
        include_str!("../examples/reports/alert-vessel.json"),
    ),
    (
        "JP-METI",
        include_str!("../examples/reports/str-front-company.json"),
    ),
    (
        "DE-BAFA",
        include_str!("../examples/reports/str-front-company.json"),
    ),
];

/// Runs the demo and prints its summary (text, or one JSON object).
pub async fn run(json_output: bool) -> DemoResult<()> {
    tls::install_crypto_provider();
    let scratch = tempfile::tempdir()?;
    let material = example_material(scratch.path())?;
    let nodes = start_nodes(&material, scratch.path()).await?;
    let mut lines = vec![format!(
        "Entente demo: three agencies on 127.0.0.1, mutual TLS with the example certificates in {}",
        material.display()
    )];
    for node in &nodes {
        lines.push(format!(
            "  {:<8} listening on {}",
            node.shared().config.agency,
            node.addr()
        ));
    }
    lines.push(String::new());
    lines.push(
        "Submissions (each node's policy.toml decides per partner; no rule, no sharing):".into(),
    );
    let mut submitted = Vec::new();
    for (agency, json_text) in SUBMISSIONS {
        let node = by_agency(&nodes, agency)?;
        let report =
            lifecycle::recent_denial(report::parse_report_json(json_text, "sample report")?);
        let title = report.title.clone();
        let s = node.shared().submit(report).await?;
        submitted.push((agency, s.item_id));
        let withheld: Vec<_> = s
            .withheld_from
            .iter()
            .map(|(p, r)| format!("{p} ({r})"))
            .collect();
        lines.push(format!(
            "  {agency:<8} {:<22} {title:?}\n           queued for: {}; withheld from: {}",
            report::kind_name(s.kind),
            or_none(&s.queued_for.join(", ")),
            or_none(&withheld.join(", ")),
        ));
    }
    let started = Instant::now();
    let delivered_all = wait_for_delivery(&nodes, Duration::from_secs(30)).await;
    lines.push(String::new());
    lines.push(if delivered_all {
        format!(
            "Delivery: every queued envelope delivered and receipted in {} ms",
            started.elapsed().as_millis()
        )
    } else {
        "Delivery: NOT COMPLETE within 30 s (see the log)".to_owned()
    });
    let policy = policy_at_work(&nodes, &submitted, &mut lines).await?;
    let lists = watchlists::watchlists_at_work(&nodes, scratch.path(), &mut lines).await?;
    let analysts = analyst::analyst_at_work(&nodes, &material, &mut lines).await?;
    let after =
        lifecycle::lifecycle_at_work(&nodes, submitted[0].1, submitted[2].1, &mut lines).await?;
    let forged = try_forged_item(&material, &nodes).await;
    let unregistered = try_unregistered_agency(&material, &nodes).await;
    lines.push(String::new());
    lines.push("Attacks:".into());
    lines.push(format!(
        "  forged item claiming to be from US-BIS, sent to DE-BAFA: {}",
        outcome_text(&forged)
    ));
    lines.push(format!(
        "  unregistered agency KP-UNREG connecting to JP-METI: {}",
        outcome_text(&unregistered)
    ));
    let counts = count_all(&nodes)?;
    for node in nodes {
        node.shutdown().await;
    }
    let ok = delivered_all
        && policy.all()
        && lists.converged
        && lists.withheld_from_jp
        && lists.screened_as_expected
        && analysts.all()
        && after.all()
        && forged.is_ok()
        && unregistered.is_ok();
    if json_output {
        println!(
            "{}",
            json!({
                "ok": ok,
                "nodes": counts,
                "forged_item_refused": forged.is_ok(),
            "policy": {
                "redacted_fields_absent_at_receiver": policy.redaction,
                "explicit_deny": policy.explicit_deny,
                "third_party_rule_refused": policy.third_party,
                "inbound_policy_refused": policy.inbound,
            },
                "unregistered_agency_refused": unregistered.is_ok(),
                "analyst": {
                    "search_found": analysts.found,
                    "correlated": analysts.correlated,
                    "operator_call_refused": analysts.operator_call_refused,
                    "partner_certificate_refused": analysts.partner_refused,
                },
                "lifecycle": {
                    "corrected": after.corrected,
                    "retracted": after.retracted,
                    "consulted": after.consulted,
                },
                "watchlist": {
                    "list": watchlists::LIST,
                    "converged": lists.converged,
                    "version": lists.version,
                    "digest": lists.digest,
                    "withheld_from_jp_meti": lists.withheld_from_jp,
                    "screened_as_expected": lists.screened_as_expected,
                },
            })
        );
    } else {
        lines.push(String::new());
        lines.push(format!(
            "{:<10}{:>10}{:>11}{:>10}{:>9}",
            "NODE", "SUBMITTED", "DELIVERED", "RECEIVED", "REFUSED"
        ));
        for (agency, c) in &counts {
            lines.push(format!(
                "{agency:<10}{:>10}{:>11}{:>10}{:>9}",
                c["submitted"], c["delivered"], c["received"], c["refused"]
            ));
        }
        println!("{}", lines.join("\n"));
    }
    if ok {
        Ok(())
    } else {
        Err("the demo did not go as expected".into())
    }
}

/// What the policy part of the demo showed.
struct PolicyShown {
    redaction: bool,
    explicit_deny: bool,
    third_party: bool,
    inbound: bool,
}

impl PolicyShown {
    fn all(&self) -> bool {
        self.redaction && self.explicit_deny && self.third_party && self.inbound
    }
}

/// Shows redaction, an explicit deny rule, the third-party rule and an inbound refusal,
/// each read back from the nodes' stores.
async fn policy_at_work(
    nodes: &[Node],
    submitted: &[(&str, [u8; 16])],
    lines: &mut Vec<String>,
) -> DemoResult<PolicyShown> {
    let (us, de, jp) = (
        by_agency(nodes, "US-BIS")?.shared(),
        by_agency(nodes, "DE-BAFA")?.shared(),
        by_agency(nodes, "JP-METI")?.shared(),
    );
    let [us_str, _, _, jp_str, de_str] = [0, 1, 2, 3, 4].map(|i| submitted[i].1);
    lines.push(String::new());
    lines.push("Policy at work:".into());
    // Redaction: US-BIS's original against the copy DE-BAFA stored.
    let original = us.store.item(&us_str)?.into_iter().find(|i| i.own);
    let copy = de.store.item(&us_str)?.into_iter().next();
    let count = |item: &Option<crate::store::StoredItem>| {
        item.as_ref().and_then(|i| i.report()).map(|r| {
            let ids: usize = r.subjects.iter().map(|s| s.identifiers.len()).sum();
            let streets: usize = r
                .subjects
                .iter()
                .flat_map(|s| &s.addresses)
                .map(|a| a.lines.len())
                .sum();
            (ids, streets, r.reference.clone())
        })
    };
    let redaction = match (count(&original), count(&copy)) {
        (Some((ids, streets, reference)), Some((0, 0, copy_ref)))
            if ids > 0 && copy_ref.is_empty() =>
        {
            lines.push(format!(
                "  redaction: US-BIS's STR holds {ids} identifier(s), {streets} street line(s) and \
                 reference {reference:?};\n             DE-BAFA's copy holds none of them \
                 (rule strs-without-identifiers; addresses reduced to their country)"
            ));
            true
        }
        _ => {
            lines.push("  redaction: NOT SHOWN (DE-BAFA's copy is missing or unredacted)".into());
            false
        }
    };
    // An explicit deny rule.
    let jp_record = jp.store.deliveries(&jp_str)?;
    let explicit_deny = jp_record
        .iter()
        .any(|(p, r)| p == "US-BIS" && r.state == "withheld" && r.rule == "no-strs");
    lines.push(format!(
        "  explicit deny: JP-METI's STR withheld from US-BIS by rule no-strs: {}",
        yes_no(explicit_deny)
    ));
    // The third-party rule: DE-BAFA tries to pass US-BIS's item on to JP-METI.
    let onward = de.share_again(&crate::store::ulid_text(&us_str)).await?;
    let third_party = onward
        .decisions
        .iter()
        .find(|d| d.partner == "JP-METI")
        .filter(|d| d.state == "withheld" && d.detail.contains("third-party rule"));
    lines.push(format!(
        "  third-party rule: DE-BAFA passes US-BIS's STR on to JP-METI: {}",
        third_party.map_or("NOT REFUSED".to_owned(), |d| format!(
            "withheld ({})",
            d.detail
        ))
    ));
    // The inbound policy: JP-METI does not accept STRs from DE-BAFA.
    wait_for_delivery(nodes, Duration::from_secs(10)).await;
    let inbound = de
        .store
        .deliveries(&de_str)?
        .into_iter()
        .find(|(p, _)| p == "JP-METI")
        .filter(|(_, r)| r.state == "refused" && r.detail.contains("NOT_ACCEPTED"));
    lines.push(format!(
        "  inbound policy: JP-METI receives DE-BAFA's own STR: {}",
        inbound
            .as_ref()
            .map_or("NOT REFUSED".to_owned(), |(_, r)| format!(
                "refused ({})",
                r.detail
            ))
    ));
    Ok(PolicyShown {
        redaction,
        explicit_deny,
        third_party: third_party.is_some(),
        inbound: inbound.is_some(),
    })
}

fn yes_no(shown: bool) -> &'static str {
    if shown { "yes" } else { "NO" }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

fn outcome_text(outcome: &Result<String, String>) -> String {
    match outcome {
        Ok(reason) => format!("refused ({reason})"),
        Err(problem) => format!("NOT REFUSED: {problem}"),
    }
}

/// The example material: `certs-example/` of the source tree, or a fresh copy.
fn example_material(scratch: &Path) -> DemoResult<PathBuf> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example");
    if shipped.join("us-bis").join("entente.toml").exists() {
        return Ok(shipped);
    }
    let fresh = scratch.join("certs-example");
    setup::write_example(&fresh)?;
    Ok(fresh)
}

fn member_dir(material: &Path, agency: &str) -> PathBuf {
    material.join(agency.to_ascii_lowercase())
}

/// Loads the three configs, moves their data into `scratch` and their listeners to free
/// ports, and starts them.
async fn start_nodes(material: &Path, scratch: &Path) -> DemoResult<Vec<Node>> {
    let mut configs = Vec::new();
    let mut listeners = Vec::new();
    for agency in AGENCIES {
        let mut config = Config::load(&member_dir(material, agency).join("entente.toml"))?;
        config.data_dir = scratch.join(agency.to_ascii_lowercase());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        config.listen = listener.local_addr()?;
        if let Some(local) = &mut config.local {
            local.listen = "127.0.0.1:0".parse()?;
        }
        configs.push(config);
        listeners.push(listener);
    }
    let endpoints: BTreeMap<String, String> = configs
        .iter()
        .map(|c| (c.agency.clone(), format!("https://{}", c.listen)))
        .collect();
    let mut nodes = Vec::new();
    for (mut config, listener) in configs.into_iter().zip(listeners) {
        for partner in &mut config.partners {
            if let Some(endpoint) = endpoints.get(&partner.agency) {
                partner.endpoint = endpoint.clone();
            }
        }
        nodes.push(Node::start_on(config, listener).await?);
    }
    Ok(nodes)
}

fn by_agency<'a>(nodes: &'a [Node], agency: &str) -> DemoResult<&'a Node> {
    nodes
        .iter()
        .find(|n| n.shared().config.agency == agency)
        .ok_or_else(|| format!("no node for {agency}").into())
}

/// Waits until every outbox is empty.
async fn wait_for_delivery(nodes: &[Node], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let pending: usize = nodes
            .iter()
            .flat_map(|n| {
                let shared = n.shared();
                shared
                    .config
                    .partners
                    .iter()
                    .map(|p| shared.store.outbox_depth(&p.agency))
            })
            .sum();
        if pending == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// An attacker holding US-BIS's TLS key but not its signing key sends DE-BAFA an envelope
/// that names US-BIS's registered signing key id but is signed by another key.
async fn try_forged_item(material: &Path, nodes: &[Node]) -> Result<String, String> {
    let target = by_agency(nodes, "DE-BAFA").map_err(|e| e.to_string())?;
    let victim = member_dir(material, "us-bis");
    let us_bis = Config::load(&victim.join("entente.toml")).map_err(|e| e.to_string())?;
    let de_bafa = target.shared();
    let registered = de_bafa
        .config
        .partner("US-BIS")
        .ok_or("US-BIS not registered")?;
    let report =
        report::parse_report_json(SUBMISSIONS[2].1, "sample").map_err(|e| e.to_string())?;
    let payload = pb::Item {
        body: Some(pb::item::Body::Report(report)),
        originator: String::new(),
    }
    .encode_to_vec();
    let header = envelope::Header {
        sender: "US-BIS".into(),
        recipient: "DE-BAFA".into(),
        item_id: ulid::Ulid::new().to_bytes(),
        kind: pb::ItemKind::EnforcementAlert,
        created_at_ms: crate::now_ms(),
        sender_key_id: registered.keys.signing_key_id(),
        recipient_key_id: de_bafa.own_keys().identity.encryption.key_id(),
    };
    let rogue = SigningKey::generate().map_err(|e| e.to_string())?;
    let keys = de_bafa.own_keys().identity.public_keys();
    let env =
        envelope::seal_with_header(header, &rogue, &keys, &payload).map_err(|e| e.to_string())?;
    let material = TlsMaterial::load(&us_bis.tls_cert, &us_bis.tls_key, &us_bis.tls_ca)
        .map_err(|e| e.to_string())?;
    let result = send_raw(
        &material,
        "DE-BAFA",
        &format!("https://{}", target.addr()),
        vec![env],
    )
    .await?;
    match result.refusals.first() {
        Some(r) if r.reason == pb::RefusalReason::BadSignature as i32 => Ok(format!(
            "{}: {}",
            pb::RefusalReason::BadSignature.as_str_name(),
            r.detail
        )),
        Some(r) => Err(format!("refused for an unexpected reason: {}", r.detail)),
        None => Err("the receiver accepted it".into()),
    }
}

/// KP-UNREG holds a certificate from the federation's CA but is nobody's partner.
async fn try_unregistered_agency(material: &Path, nodes: &[Node]) -> Result<String, String> {
    let target = by_agency(nodes, "JP-METI").map_err(|e| e.to_string())?;
    let dir = material.join("unregistered").join("tls");
    let tls_material = TlsMaterial::load(
        &dir.join("node.crt"),
        &dir.join("node.key"),
        &material.join("ca.crt"),
    )
    .map_err(|e| e.to_string())?;
    match send_raw(
        &tls_material,
        "JP-METI",
        &format!("https://{}", target.addr()),
        Vec::new(),
    )
    .await
    {
        Ok(_) => Err("the receiver accepted the connection".into()),
        Err(status) if status.contains("not a registered partner") => Ok(status),
        Err(other) => Err(format!("refused for an unexpected reason: {other}")),
    }
}

/// Opens a delivery stream with `material` and sends one batch.
pub async fn send_raw(
    material: &TlsMaterial,
    agency: &str,
    endpoint: &str,
    envelopes: Vec<pb::Envelope>,
) -> Result<pb::BatchResult, String> {
    let config = tls::client_config(material, None, agency, None).map_err(|e| e.to_string())?;
    let channel = tls::channel(endpoint, config).map_err(|e| e.to_string())?;
    let mut client = PeerExchangeClient::new(channel);
    let batch = pb::DeliverBatch {
        sequence: 1,
        envelopes,
    };
    let mut results = client
        .deliver(tokio_stream::iter(vec![batch]))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    match results.message().await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err("stream closed without an answer".into()),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// Counts per node, from its audit log.
fn count_all(nodes: &[Node]) -> DemoResult<BTreeMap<String, BTreeMap<&'static str, u64>>> {
    let mut all = BTreeMap::new();
    for node in nodes {
        let shared = node.shared();
        all.insert(
            shared.config.agency.clone(),
            counts(&shared.store.audit_entries()?),
        );
    }
    Ok(all)
}

/// `submitted`, `delivered`, `received` and `refused` counts from audit entries.
pub fn counts(entries: &[audit::Entry]) -> BTreeMap<&'static str, u64> {
    let mut c: BTreeMap<&'static str, u64> = [
        ("submitted", 0),
        ("delivered", 0),
        ("received", 0),
        ("refused", 0),
    ]
    .into();
    for e in entries {
        let key = match e.action.as_str() {
            "submitted" => "submitted",
            "delivered" => "delivered",
            "received" if e.detail.is_empty() => "received",
            "refused" => "refused",
            _ => continue,
        };
        *c.entry(key).or_default() += 1;
    }
    c
}
