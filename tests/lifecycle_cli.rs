//! The lifecycle commands as an operator and an analyst run them: two nodes made with
//! `entente init`, each served by the `entente` binary on 127.0.0.1 with mutual TLS, and
//! every command through the node's control socket. Bad input is refused with an error
//! naming what was wrong, and changes nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;

/// Runs `entente ARGS`, which must succeed; its standard output.
fn run(args: &[&str]) -> String {
    let out = entente(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs `entente ARGS`, which must fail; its standard error.
fn refused(args: &[&str]) -> String {
    let out = entente(args);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(args)).unwrap()
}

/// The example denial notification, dated ten days ago, with `edit` applied, written to
/// `dir/name`.
fn denial_file(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/reports/denial-dual-use.json"
    ))
    .unwrap();
    let mut report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let date = (time::OffsetDateTime::now_utc() - time::Duration::days(10)).date();
    report["denial_date"] = format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
    .into();
    edit(&mut report);
    let path = dir.join(name);
    std::fs::write(&path, report.to_string()).unwrap();
    path.display().to_string()
}

const APPLICATION: &str = r#"{
    "reference": "LIC-2026-0042",
    "parties": [{"name": "CALDERA SECURE NETWORKS", "role": "consignee", "country": "KZ"}],
    "goods": [{"description": "encryptors", "control_entry": "5a002.A"}],
    "destination": "KZ"
}"#;

#[test]
fn correction_consultation_and_retraction_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(dir.path());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let mut nodes = [serve(Path::new(a)), serve(Path::new(b))];
    for node in ["a", "b"] {
        let socket = dir.path().join(node).join("data/control.sock");
        wait_for("the control socket", || socket.exists());
    }

    // AA-ONE issues a denial; BB-TWO receives it.
    let denial = denial_file(dir.path(), "denial.json", |_| {});
    let out = run(&["report", "submit", "--config", a, &denial]);
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let show = |config: &str| json(&["report", "show", "--config", config, &id, "--json"]);
    wait_for("the denial at BB-TWO", || {
        entente(&["report", "show", "--config", b, &id])
            .status
            .success()
    });

    // A correction that would widen the handling is refused, naming the file and field.
    let wider = denial_file(dir.path(), "wider.json", |r| {
        r["handling"]["tlp"] = "CLEAR".into();
    });
    let err = refused(&[
        "report", "correct", "--config", a, &id, &wider, "--reason", "x",
    ]);
    assert!(err.contains("wider.json: handling.tlp"), "{err}");
    assert_eq!(show(a)["version"], 1);

    let corrected = denial_file(dir.path(), "corrected.json", |r| {
        r["goods"][0]["quantity"] = 10.into();
    });
    let out = run(&[
        "report",
        "correct",
        "--config",
        a,
        &id,
        &corrected,
        "--reason",
        "ten appliances, not twelve",
    ]);
    assert!(out.starts_with(&format!("corrected {id}")), "{out}");
    assert!(out.contains("BB-TWO     queued"), "{out}");
    wait_for("version 2 at BB-TWO", || show(b)["version"] == 2);
    let at_b = show(b);
    assert_eq!(at_b["reason"], "ten appliances, not twelve");
    assert_eq!(at_b["report"]["goods"][0]["quantity"], 10);
    assert_eq!(at_b["history"][0]["version"], 1);
    assert_eq!(at_b["history"][0]["report"]["goods"][0]["quantity"], 12);

    // BB-TWO's licence check: a bad file is refused and opens nothing.
    let application = dir.path().join("application.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(&application, APPLICATION).unwrap();
    std::fs::write(&bad, APPLICATION.replace("\"KZ\"\n", "\"Kazakhstan\"\n")).unwrap();
    let (application, bad) = (application.to_str().unwrap(), bad.to_str().unwrap());
    let err = refused(&["licence", "check", "--config", b, bad]);
    assert!(err.contains("bad.json: destination"), "{err}");
    let list = |config: &str| json(&["consultations", "--config", config, "--json"]);
    assert_eq!(list(b).as_array().unwrap().len(), 0);

    let found = json(&["licence", "check", "--config", b, application, "--json"]);
    assert_eq!(found["matches"][0]["denial_id"], id.as_str());
    let consultation = found["matches"][0]["consultation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(consultation.len(), 26, "{found}");
    wait_for("the consultation at AA-ONE", || {
        list(a)[0]["id"] == consultation.as_str()
    });
    assert_eq!(list(a)[0]["state"], "open");
    let overdue = json(&[
        "consultations",
        "--config",
        b,
        "--as-of",
        "2099-01-01",
        "--json",
    ]);
    assert_eq!(overdue[0]["state"], "overdue");
    let err = refused(&["consultations", "--config", b, "--as-of", "next week"]);
    assert!(err.contains("--as-of"), "{err}");

    // Only the denying agency replies; it replies once.
    let err = refused(&[
        "consultations",
        "reply",
        "--config",
        b,
        &consultation,
        "--no-objection",
    ]);
    assert!(err.contains("only the denying agency, AA-ONE"), "{err}");
    let reply = [
        "consultations",
        "reply",
        "--config",
        a,
        &consultation,
        "--object",
        "--note",
        "the end user is a military entity",
    ];
    run(&reply);
    assert!(refused(&reply).contains("replied to already"));
    wait_for("the reply at BB-TWO", || list(b)[0]["state"] == "answered");

    let out = run(&[
        "licence",
        "decide",
        "--config",
        b,
        "LIC-2026-0042",
        "--grant",
        "--note",
        "end use verified on site",
    ]);
    assert!(out.contains("undercut notice"), "{out}");
    wait_for("the undercut notice at AA-ONE", || {
        list(a)[0]["state"] == "undercut"
    });

    // AA-ONE withdraws the denial; BB-TWO deletes it and acknowledges.
    let out = run(&[
        "report",
        "retract",
        "--config",
        a,
        &id,
        "--reason",
        "overturned on appeal",
    ]);
    assert!(out.starts_with(&format!("retracted {id}")), "{out}");
    wait_for("the acknowledgement", || {
        show(a)["retraction"][0]["state"] == "delivered"
    });
    let at_b = show(b);
    assert!(at_b["report"].is_null(), "{at_b}");
    assert_eq!(at_b["tombstone"]["reason"], "overturned on appeal");
    let text = run(&["report", "show", "--config", b, &id]);
    assert!(
        text.contains("retracted") && text.contains("overturned on appeal"),
        "{text}"
    );
    let text = run(&["report", "show", "--config", a, &id]);
    assert!(text.contains("BB-TWO     yes (signed receipt)"), "{text}");
    let err = refused(&["report", "retract", "--config", a, &id, "--reason", "again"]);
    assert!(err.contains("was retracted"), "{err}");

    // Nothing to consent to here: AA-ONE's denial is not originator-controlled.
    assert!(run(&["consent", "list", "--config", b]).contains("no consent requests"));
    let err = refused(&["consent", "grant", "--config", a, &consultation]);
    assert!(err.contains("no consent request"), "{err}");

    for node in &mut nodes {
        terminate(node);
    }
    let out = run(&["audit", "verify", "--config", a]);
    assert!(!out.is_empty());
}
