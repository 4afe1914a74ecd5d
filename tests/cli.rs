//! The `entente` binary as a user runs it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{entente, text};
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/reports")
        .join(name)
        .display()
        .to_string()
}

/// `entente init` in a fresh directory; returns the config path.
fn init_node(dir: &Path, agency: &str) -> PathBuf {
    let node = dir.join(agency.to_ascii_lowercase());
    let out = entente(&[
        "init",
        "--dir",
        node.to_str().unwrap(),
        "--agency",
        agency,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    node.join("entente.toml")
}

#[test]
fn demo_exchanges_reports_and_refuses_both_attacks() {
    let out = entente(&["demo", "--json"]);
    assert!(out.status.success(), "demo failed: {}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["forged_item_refused"], true);
    assert_eq!(summary["unregistered_agency_refused"], true);
    let n = &summary["nodes"];
    let counts = |agency: &str| {
        ["submitted", "delivered", "received", "refused"].map(|k| n[agency][k].as_u64().unwrap())
    };
    // US-BIS: an STR (redacted, to DE-BAFA) and a denial (to both); DE-BAFA: an alert (to
    // both) and an STR (to US-BIS; JP-METI refuses it); JP-METI: an STR its policy
    // withholds from everyone. JP-METI also refuses the unregistered agency, DE-BAFA the
    // forged item.
    // US-BIS's deliveries also hold the two versions of its watchlist, to DE-BAFA. Last,
    // JP-METI sends an alert (to both) that DE-BAFA links with US-BIS's STR.
    // Then the lifecycle: US-BIS's correction (to DE-BAFA), DE-BAFA's retraction (to
    // both), JP-METI's consultation request and undercut notice (to US-BIS), US-BIS's
    // reply (to JP-METI): each a message of its own, delivered and receipted.
    assert_eq!(counts("US-BIS"), [2, 7, 3, 0]);
    assert_eq!(summary["watchlist"]["converged"], true);
    assert_eq!(summary["watchlist"]["version"], 2);
    assert_eq!(summary["watchlist"]["withheld_from_jp_meti"], true);
    assert_eq!(summary["watchlist"]["screened_as_expected"], true);
    // DE-BAFA's refusals: the forged item, then on its local listener the analyst's call
    // that needs an operator and US-BIS's node certificate.
    assert_eq!(counts("DE-BAFA"), [2, 5, 3, 3]);
    assert_eq!(counts("JP-METI"), [2, 4, 2, 2]);
    for shown in ["corrected", "retracted", "consulted"] {
        assert_eq!(summary["lifecycle"][shown], true, "{shown}");
    }
    let analyst = &summary["analyst"];
    assert_eq!(
        analyst["search_found"], 3,
        "the STRs of US-BIS and DE-BAFA, and JP-METI's alert"
    );
    assert_eq!(analyst["correlated"], true);
    assert_eq!(analyst["operator_call_refused"], true);
    assert_eq!(analyst["partner_certificate_refused"], true);
    for shown in [
        "redacted_fields_absent_at_receiver",
        "explicit_deny",
        "third_party_rule_refused",
        "inbound_policy_refused",
    ] {
        assert_eq!(summary["policy"][shown], true, "{shown}");
    }
}

#[test]
fn demo_prints_a_readable_summary() {
    let out = entente(&["demo"]);
    assert!(out.status.success(), "demo failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("forged item"), "{stdout}");
    assert!(stdout.contains("BAD_SIGNATURE"), "{stdout}");
    assert!(stdout.contains("not a registered partner"), "{stdout}");
    assert!(stdout.contains("SUBMITTED"), "{stdout}");
    assert!(
        stdout.contains("third-party rule: originator US-BIS did not release it to JP-METI"),
        "{stdout}"
    );
    assert!(stdout.contains("NOT_ACCEPTED"), "{stdout}");
    assert!(
        stdout.contains("DE-BAFA shows version 2 with 1 earlier version(s) kept"),
        "{stdout}"
    );
    assert!(
        stdout.contains("acknowledged by JP-METI and US-BIS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("US-BIS sees the consultation undercut"),
        "{stdout}"
    );
}

#[test]
fn a_report_submitted_to_a_stopped_node_is_stored_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "XX-TEST");
    let cfg = config.to_str().unwrap();
    let out = entente(&[
        "report",
        "submit",
        "--config",
        cfg,
        &example("alert-vessel.json"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("submitted "),
        "{}",
        text(&out.stdout)
    );
    let out = entente(&["report", "list", "--config", cfg, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["kind"], "enforcement-alert");
    assert_eq!(items[0]["sender"], "XX-TEST");
    let out = entente(&["audit", "verify", "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn an_invalid_report_names_the_field_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "XX-TEST");
    let cfg = config.to_str().unwrap();
    let bad = dir.path().join("bad.json");
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("alert-vessel.json")).unwrap())
            .unwrap();
    report["subjects"][0]["type"] = "spaceship".into();
    std::fs::write(&bad, report.to_string()).unwrap();
    let out = entente(&["report", "submit", "--config", cfg, bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("subjects[0].type"),
        "{err}"
    );
    let out = entente(&["report", "list", "--config", cfg, "--json"]);
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 0);
}

#[test]
fn an_invalid_config_names_the_file_the_line_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "XX-TEST");
    let original = std::fs::read_to_string(&config).unwrap();
    let broken = original.replace("listen = \"127.0.0.1:0\"", "listen = \"somewhere\"");
    assert_ne!(broken, original, "the init config has a listen line");
    std::fs::write(&config, broken).unwrap();
    let out = entente(&["report", "list", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("entente.toml") && err.contains("line") && err.contains("node.listen"),
        "{err}"
    );
    assert!(
        !err.contains("somewhere"),
        "the value itself is not repeated: {err}"
    );
}

#[test]
fn commands_work_through_the_control_socket_while_the_node_serves() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "XX-TEST");
    let cfg = config.to_str().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_entente"))
        .args(["serve", "--config", cfg])
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
    let submit = entente(&[
        "report",
        "submit",
        "--config",
        cfg,
        &example("denial-dual-use.json"),
    ]);
    let list = entente(&["report", "list", "--config", cfg]);
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(submit.status.success(), "{}", text(&submit.stderr));
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(
        text(&list.stdout).contains("denial-notification"),
        "{}",
        text(&list.stdout)
    );
}

fn example_config(agency: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("certs-example")
        .join(agency)
        .join("entente.toml")
        .display()
        .to_string()
}

#[test]
fn policy_explain_shows_the_copy_a_partner_would_receive() {
    let out = entente(&[
        "policy",
        "explain",
        "--config",
        &example_config("us-bis"),
        "--partner",
        "DE-BAFA",
        &example("str-front-company.json"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("decision: share, by rule `strs-without-identifiers`"),
        "{stdout}"
    );
    assert!(stdout.contains("subjects[].identifiers"), "{stdout}");
    for redacted in ["X0481736", "FZE-118204", "STR-2024-0412"] {
        assert!(!stdout.contains(redacted), "{redacted} leaked: {stdout}");
    }
    let out = entente(&[
        "policy",
        "explain",
        "--config",
        &example_config("de-bafa"),
        "--partner",
        "JP-METI",
        "--origin",
        "US-BIS",
        &example("str-front-company.json"),
    ]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("decision: deny"), "{stdout}");
    assert!(stdout.contains("third-party rule"), "{stdout}");
}

#[test]
fn policy_check_reports_every_error_and_serve_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "XX-TEST");
    let cfg = config.to_str().unwrap();
    let out = entente(&["policy", "check", "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let policy = config.parent().unwrap().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[[partner]]\nagency = \"DE-BAFA\"\nacept = []\n  [[partner.rule]]\n  \
         id = \"r\"\n  kinds = [\"denials\"]\n  action = \"share\"\n",
    )
    .unwrap();
    let out = entente(&["policy", "check", "--config", cfg]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("policy.toml:4: key `partner[0].acept`"),
        "{err}"
    );
    assert!(
        err.contains("policy.toml:7: key `partner[0].rule[0].kinds[0]`"),
        "{err}"
    );
    let out = entente(&["serve", "--config", cfg]);
    assert!(!out.status.success(), "serve must refuse an invalid policy");
    assert!(
        text(&out.stderr).contains("invalid sharing policy"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn report_show_prints_the_decision_for_each_partner() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "XX-TEST");
    let cfg = config.to_str().unwrap();
    let out = entente(&[
        "report",
        "submit",
        "--config",
        cfg,
        &example("alert-vessel.json"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let out = entente(&["report", "show", "--config", cfg, &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&id) && stdout.contains("enforcement-alert"),
        "{stdout}"
    );
    assert!(stdout.contains("\"title\""), "{stdout}");
    let out = entente(&[
        "report",
        "show",
        "--config",
        cfg,
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no item"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_refuses_a_private_key_file_that_other_accounts_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let config = init_node(dir.path(), "XX-TEST");
    let cfg = config.to_str().unwrap();
    let node = config.parent().unwrap();
    for (key, mode) in [
        ("keys/signing.pem", 0o644),
        ("keys/encryption.pem", 0o640),
        ("tls/node.key", 0o604),
        ("keys/data.key", 0o640),
    ] {
        let path = node.join(key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = entente(&["serve", "--config", cfg]);
        assert!(!out.status.success(), "serve must refuse {key} at {mode:o}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{key} is open to other accounts")),
            "{err}"
        );
        assert!(err.contains(&format!("(mode {mode:04o})")), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!node.join("data").exists(), "nothing was opened or stored");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn output_into_a_pipe_closed_by_its_reader_ends_with_141_and_no_panic() {
    // `true` exits at once without reading; entente writes 0.3 s later, into a pipe that
    // has no reader left, as when its output goes through `head`. (Not `--help`: clap
    // ignores a failed write of its help.)
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    let out = Command::new("bash")
        .args([
            "-c",
            r#"(sleep 0.3; exec "$0" init --dir "$1" --agency XX-TEST) | true; echo "status=${PIPESTATUS[0]}""#,
            env!("CARGO_BIN_EXE_entente"),
            node.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(text(&out.stdout).trim(), "status=141", "{stderr}");
}
