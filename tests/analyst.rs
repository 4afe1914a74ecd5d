//! Analyst access: the local listener's mutual TLS and roles, search with stable paging,
//! correlation across agencies, and the commands as a user runs them.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test.

mod common;

use std::{collections::BTreeMap, path::Path, path::PathBuf, sync::Arc};

use common::*;
use entente::{
    config::{Config, Local, Role},
    local, pb, setup,
};

/// A user's certificate and key files.
#[derive(Clone)]
struct User {
    cert: PathBuf,
    key: PathBuf,
}

/// Staff material for a member: a staff CA with an analyst and an operator, and a second
/// CA, unknown to the node, with an analyst of its own.
struct Staff {
    analyst: User,
    operator: User,
    stranger: User,
}

fn user((cert, key): (PathBuf, PathBuf)) -> User {
    User { cert, key }
}

/// Gives `config` a local listener on a free port, trusting a new staff CA in `dir`.
fn add_local(config: &mut Config, dir: &Path) -> Staff {
    let staff = dir.join("staff");
    let ca = setup::write_staff_ca(&staff, &config.agency).unwrap();
    let analyst = setup::write_user_cert(&staff, &ca, "alice", Role::Analyst).unwrap();
    let operator = setup::write_user_cert(&staff, &ca, "olga", Role::Operator).unwrap();
    let other = setup::write_staff_ca(&dir.join("other"), "XX-OTHER").unwrap();
    let stranger =
        setup::write_user_cert(&dir.join("other"), &other, "mallory", Role::Operator).unwrap();
    config.local = Some(Local {
        listen: "127.0.0.1:0".parse().unwrap(),
        ca: staff.join("ca.crt"),
        users: BTreeMap::new(),
    });
    Staff {
        analyst: user(analyst),
        operator: user(operator),
        stranger: user(stranger),
    }
}

/// The config a client uses: the node's, with the port its local listener got.
fn client_config(config: &Config, node: &entente::node::Node) -> Config {
    let mut c = config.clone();
    if let Some(l) = c.local.as_mut() {
        l.listen = node.local_addr().expect("local listener bound");
    }
    c
}

/// A federation of three where DE-BAFA has a local listener.
async fn three(dir: &Path) -> (Vec<entente::node::Node>, Config, Staff) {
    let mut members = federation(dir, &["US-BIS", "DE-BAFA", "JP-METI"]).await;
    let staff = add_local(&mut members[1].config, &dir.join("de-bafa-staff"));
    let config = members[1].config.clone();
    let nodes = start_all(members).await;
    let config = client_config(&config, &nodes[1]);
    (nodes, config, staff)
}

async fn client(
    config: &Config,
    user: &User,
) -> Result<pb::control_client::ControlClient<tonic::transport::Channel>, String> {
    local::connect(config, &user.cert, &user.key)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn an_analyst_may_query_an_operator_may_do_more_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, config, staff) = three(dir.path()).await;
    let store = &nodes[1].shared().store;

    let mut analyst = client(&config, &staff.analyst)
        .await
        .expect("analyst connects");
    let me = analyst
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((me.name.as_str(), me.role.as_str()), ("alice", "analyst"));
    analyst
        .search_items(pb::SearchItemsRequest::default())
        .await
        .expect("an analyst may search");
    let denied = analyst
        .search_audit(pb::SearchAuditRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert!(
        denied.message().contains("needs the operator role"),
        "{denied:?}"
    );
    let refused = last_audit(store);
    assert_eq!(
        (refused.action.as_str(), refused.peer.as_str()),
        ("refused", "user:alice")
    );

    let mut operator = client(&config, &staff.operator)
        .await
        .expect("operator connects");
    operator
        .search_audit(pb::SearchAuditRequest::default())
        .await
        .expect("an operator may read the audit log");

    // The query was recorded under the analyst's name, with its parameters.
    let searched = store
        .audit_entries()
        .unwrap()
        .into_iter()
        .find(|e| e.action == "query" && e.detail.starts_with("search"))
        .expect("the search was audited");
    assert_eq!(searched.peer, "user:alice");
    assert_eq!(searched.detail, "search all items: 0 item(s)");

    let refusals_before = audit_count(store, "refused");
    // A partner node's certificate: valid in the federation, but not from the staff CA.
    let partner = User {
        cert: dir.path().join("us-bis/node.crt"),
        key: dir.path().join("us-bis/node.key"),
    };
    let e = client(&config, &partner).await.unwrap_err();
    assert!(e.contains("closed the connection"), "{e}");
    // A certificate from a CA the node does not know.
    let e = client(&config, &staff.stranger).await.unwrap_err();
    assert!(e.contains("closed the connection"), "{e}");
    // No certificate at all.
    let status = without_certificate(&config).await;
    assert_ne!(status.code(), tonic::Code::Ok);
    eventually(5, "the three refused handshakes are recorded", || {
        audit_count(store, "refused") >= refusals_before + 3
    })
    .await;
}

/// A call on the local listener by a client that offers no certificate.
async fn without_certificate(config: &Config) -> tonic::Status {
    let ca = entente::tls::load_certs(&config.tls_ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let addr = config.local.as_ref().unwrap().listen;
    let channel = entente::tls::channel(&format!("https://{addr}"), Arc::new(tls)).unwrap();
    pb::control_client::ControlClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_role_in_the_config_takes_precedence_over_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["US-BIS", "DE-BAFA"]).await;
    let staff = add_local(&mut members[1].config, &dir.path().join("staff"));
    if let Some(l) = members[1].config.local.as_mut() {
        l.users.insert("alice".into(), Role::Operator);
    }
    let config = members[1].config.clone();
    let nodes = start_all(members).await;
    let config = client_config(&config, &nodes[1]);
    let mut alice = client(&config, &staff.analyst).await.unwrap();
    let me = alice
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.role, "operator");
    alice
        .search_audit(pb::SearchAuditRequest::default())
        .await
        .expect("the config made alice an operator");
}

#[tokio::test]
async fn pages_return_every_item_exactly_once_while_items_are_inserted() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, config, staff) = three(dir.path()).await;
    let shared = nodes[1].shared().clone();
    let before: Vec<pb::Report> = (0..150)
        .map(|i| report(pb::ItemKind::SuspiciousTransaction, &format!("before {i}")))
        .collect();
    let stored: Vec<String> = shared
        .submit_batch(before)
        .await
        .unwrap()
        .into_iter()
        .map(|s| entente::store::ulid_text(&s.item_id))
        .collect();
    let inserting = {
        let shared = shared.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let r = report(pb::ItemKind::EnforcementAlert, &format!("during {i}"));
                shared.submit(r).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut analyst = client(&config, &staff.analyst).await.unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut request = pb::SearchItemsRequest {
        limit: 7,
        ..Default::default()
    };
    loop {
        let page = analyst
            .search_items(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(page.items.len() <= 7);
        seen.extend(page.items.into_iter().map(|i| i.item_id));
        if page.next_cursor.is_empty() {
            break;
        }
        request.cursor = page.next_cursor;
    }
    inserting.await.unwrap();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "an item was returned twice");
    for id in &stored {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "item {id} stored before paging began"
        );
    }
    // A cursor from nowhere is refused with a clear message.
    let bad = analyst
        .search_items(pb::SearchItemsRequest {
            cursor: "not-a-cursor".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("cursor:"), "{bad:?}");
}

fn about(title: &str, subject: &str, country: &str) -> pb::Report {
    let mut r = report(pb::ItemKind::EnforcementAlert, title);
    r.subjects = vec![pb::Subject {
        r#type: pb::SubjectType::Organisation as i32,
        name: subject.into(),
        countries: vec![country.into()],
        ..Default::default()
    }];
    r
}

#[tokio::test]
async fn a_subject_reported_by_two_agencies_links_their_items() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, config, staff) = three(dir.path()).await;
    let from_us = nodes[0]
        .shared()
        .submit(about("Drone engines", "Shahed Aviation Industries", "IR"))
        .await
        .unwrap();
    let from_jp = nodes[2]
        .shared()
        .submit(about(
            "Engine parts via UAE",
            "SHAHED AVIATION INDUSTRY CO.",
            "IR",
        ))
        .await
        .unwrap();
    let unrelated = nodes[2]
        .shared()
        .submit(about("Machine tools", "Nordic Lathe Works", "NO"))
        .await
        .unwrap();
    eventually(20, "DE-BAFA confirms the three items", || {
        delivered(&nodes[0].shared().store, &from_us.item_id, "DE-BAFA")
            && delivered(&nodes[2].shared().store, &from_jp.item_id, "DE-BAFA")
            && delivered(&nodes[2].shared().store, &unrelated.item_id, "DE-BAFA")
    })
    .await;

    let mut analyst = client(&config, &staff.analyst).await.unwrap();
    let links = analyst
        .list_correlations(pb::ListCorrelationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .correlations;
    let ids = |s: &entente::node::Submitted| entente::store::ulid_text(&s.item_id);
    assert_eq!(links.len(), 1, "{links:?}");
    let link = &links[0];
    let pair = [link.item_id.clone(), link.other_item_id.clone()];
    assert!(
        pair.contains(&ids(&from_us)) && pair.contains(&ids(&from_jp)),
        "{link:?}"
    );
    let senders = [link.sender.as_str(), link.other_sender.as_str()];
    assert!(senders.contains(&"US-BIS") && senders.contains(&"JP-METI"));
    assert!(link.evidence[0].score >= 0.9, "{link:?}");
    assert!(!link.evidence[0].why.is_empty());

    // The link shows on both items, and not on the unrelated one.
    for (id, links) in [(&from_us, 1), (&from_jp, 1), (&unrelated, 0)] {
        let shown = analyst
            .get_item(pb::GetItemRequest { item_id: ids(id) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(shown.correlations.len(), links, "{}", ids(id));
        assert!(
            shown.signature.starts_with("verified: signed by"),
            "{}",
            shown.signature
        );
    }

    // Search finds both by subject, fuzzily, and narrows by sender.
    let found = |request: pb::SearchItemsRequest| {
        let mut analyst = analyst.clone();
        async move {
            analyst
                .search_items(request)
                .await
                .unwrap()
                .into_inner()
                .items
                .into_iter()
                .map(|i| i.item_id)
                .collect::<Vec<_>>()
        }
    };
    let by_subject = found(pb::SearchItemsRequest {
        subject: "shahed aviation".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_subject.len(), 2, "{by_subject:?}");
    let narrowed = found(pb::SearchItemsRequest {
        subject: "shahed aviation".into(),
        sender: "JP-METI".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(narrowed, [ids(&from_jp)]);

    // Closing a link takes it off the open list and names who closed it.
    let closed = analyst
        .close_correlation(pb::CloseCorrelationRequest {
            id: link.id.clone(),
            note: "same company, known".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.closed_by, "user:alice");
    let open = analyst
        .list_correlations(pb::ListCorrelationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(open.correlations.is_empty());
    let again = analyst
        .close_correlation(pb::CloseCorrelationRequest {
            id: link.id.clone(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
}

/// Runs `entente` with the user's certificate.
fn as_user(user: &User, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    let (cert, key) = (user.cert.to_str().unwrap(), user.key.to_str().unwrap());
    all.extend(["--user-cert", cert, "--user-key", key]);
    entente(&all)
}

#[test]
fn the_commands_work_through_the_local_listener_as_a_user_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = entente(&[
        "init",
        "--dir",
        dir.path().to_str().unwrap(),
        "--agency",
        "XX-TEST",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let staff = dir.path().join("staff");
    let staff_s = staff.to_str().unwrap();
    let out = entente(&["certs", "staff-ca", "--agency", "XX-TEST", "--dir", staff_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ca_cert, ca_key) = (staff.join("ca.crt"), staff.join("ca.key"));
    for (name, role) in [("alice", "analyst"), ("olga", "operator")] {
        let out = entente(&[
            "certs",
            "user",
            "--ca-cert",
            ca_cert.to_str().unwrap(),
            "--ca-key",
            ca_key.to_str().unwrap(),
            "--name",
            name,
            "--role",
            role,
            "--dir",
            staff_s,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let bad_role = entente(&[
        "certs",
        "user",
        "--ca-cert",
        ca_cert.to_str().unwrap(),
        "--ca-key",
        ca_key.to_str().unwrap(),
        "--name",
        "eve",
        "--role",
        "admin",
        "--dir",
        staff_s,
    ]);
    assert!(!bad_role.status.success());
    assert!(text(&bad_role.stderr).contains("--role \"admin\": expected analyst or operator"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("entente.toml");
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config.push_str(&format!(
        "\n[local]\nlisten = \"127.0.0.1:{port}\"\nca = \"staff/ca.crt\"\n"
    ));
    std::fs::write(&config, text_config).unwrap();
    let cfg = config.to_str().unwrap();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(["serve", "--config", cfg])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let alice = User {
        cert: staff.join("alice.crt"),
        key: staff.join("alice.key"),
    };
    let olga = User {
        cert: staff.join("olga.crt"),
        key: staff.join("olga.key"),
    };
    let mut up = false;
    for _ in 0..100 {
        if as_user(&alice, &["whoami", "--config", cfg])
            .status
            .success()
        {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "the local listener did not come up");
    let me = as_user(&alice, &["whoami", "--config", cfg]);
    assert_eq!(
        text(&me.stdout).trim(),
        "alice (analyst) on the node of XX-TEST"
    );

    let report_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reports/denial-dual-use.json");
    let out = as_user(
        &alice,
        &[
            "report",
            "submit",
            "--config",
            cfg,
            report_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    let out = as_user(
        &alice,
        &[
            "report",
            "search",
            "--config",
            cfg,
            "--kind",
            "denial-notification",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["items"][0]["item_id"], id.as_str());
    let out = as_user(
        &alice,
        &[
            "report",
            "search",
            "--config",
            cfg,
            "--route-country",
            "Iran",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("route_country: expected an ISO 3166-1 alpha-2"),
        "{}",
        text(&out.stderr)
    );

    let bundle = dir.path().join("bundle.json");
    let out = as_user(
        &alice,
        &[
            "report",
            "export",
            "--config",
            cfg,
            "--format",
            "stix",
            "--out",
            bundle.to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stix: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(stix["type"], "bundle");
    let unknown = as_user(
        &alice,
        &[
            "report",
            "export",
            "--config",
            cfg,
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ],
    );
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("item 01ARZ3NDEKTSV4RRFFQ69G5FAV"));

    let out = as_user(&alice, &["correlations", "--config", cfg]);
    assert_eq!(text(&out.stdout).trim(), "no open correlations");

    let out = as_user(&alice, &["audit", "tail", "--config", cfg]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("alice has the analyst role; SearchAudit needs the operator role"),
        "{}",
        text(&out.stderr)
    );
    let out = as_user(&olga, &["audit", "tail", "--config", cfg, "--lines", "50"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stdout);
    assert!(log.contains("user:alice"), "{log}");
    assert!(log.contains("search kind=2"), "{log}");

    // A half-given identity is refused before anything is sent.
    let out = entente(&[
        "whoami",
        "--config",
        cfg,
        "--user-cert",
        alice.cert.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("go together"));
    let _ = serve.kill();
    let _ = serve.wait();
}

#[tokio::test]
async fn a_personal_certificate_revoked_by_the_staff_ca_is_refused_and_peers_still_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["US-BIS", "DE-BAFA"]).await;
    let staff_dir = dir.path().join("staff");
    let staff = add_local(&mut members[1].config, &staff_dir);
    let ca = setup::Ca::load(
        &staff_dir.join("staff/ca.crt"),
        &staff_dir.join("staff/ca.key"),
    )
    .unwrap();
    let alice_pem = std::fs::read_to_string(&staff.analyst.cert).unwrap();
    let crl = ca
        .revocation_list(&[("alice".into(), alice_pem)], 1, 30)
        .unwrap();
    let crl_file = dir.path().join("staff.crl");
    std::fs::write(&crl_file, crl).unwrap();
    members[1].config.tls_crl = Some(crl_file);
    let config = members[1].config.clone();
    let nodes = start_all(members).await;
    let config = client_config(&config, &nodes[1]);

    let e = client(&config, &staff.analyst).await.unwrap_err();
    assert!(e.contains("closed the connection"), "{e}");
    client(&config, &staff.operator)
        .await
        .expect("a certificate not on the list still connects");
    // The staff CA's list does not disturb the peer listener.
    nodes[0]
        .shared()
        .submit(report(pb::ItemKind::EnforcementAlert, "still delivered"))
        .await
        .unwrap();
    let store = nodes[1].shared().store.clone();
    eventually(20, "DE-BAFA receives from US-BIS", || {
        store.item_count() >= 1
    })
    .await;
}
