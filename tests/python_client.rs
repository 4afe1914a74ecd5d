//! A client that is not Rust: Python's grpcio, with stubs generated from proto/, drives
//! the local listener over mutual TLS (health check, search with paging, a refused
//! operator call), and the stix2 library validates a bundle from `report export`.
//!
//! The Python packages are those of tests/python/requirements.txt. `.ci/run` installs
//! them; when they are missing, the test installs them into a virtual environment under
//! the cargo target directory (which needs PyPI).

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test.

mod common;

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use common::*;
use entente::{
    config::{Local, Role},
    pb, setup,
};

const MODULES: &str = "import grpc, grpc_tools, grpc_health.v1, stix2";

/// A Python interpreter that has the packages the client needs.
fn python() -> PathBuf {
    let system = PathBuf::from("python3");
    let has = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", MODULES])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has(&system) {
        return system;
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-client-env");
    let python = venv.join("bin/python");
    if !has(&python) {
        let requirements =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/requirements.txt");
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        let installed = made
            && Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(&requirements)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            installed && has(&python),
            "cannot prepare Python for the client test: run `python3 -m pip install -r {}`",
            requirements.display()
        );
    }
    python
}

#[tokio::test]
async fn a_python_grpc_client_searches_and_checks_health_over_mutual_tls() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let mut members = federation(dir.path(), &["US-BIS", "DE-BAFA"]).await;
    let staff = dir.path().join("staff");
    let ca = setup::write_staff_ca(&staff, "DE-BAFA").unwrap();
    let (cert, key) = setup::write_user_cert(&staff, &ca, "py-analyst", Role::Analyst).unwrap();
    members[1].config.local = Some(Local {
        listen: "127.0.0.1:0".parse().unwrap(),
        ca: staff.join("ca.crt"),
        users: BTreeMap::new(),
    });
    let node_ca = members[1].config.tls_ca.clone();
    let nodes = start_all(members).await;
    let (mut sent, mut ids) = (Vec::new(), Vec::new());
    for (i, tlp) in [
        pb::TlpLevel::Clear,
        pb::TlpLevel::Green,
        pb::TlpLevel::Amber,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = report(pb::ItemKind::EnforcementAlert, &format!("alert {i}"));
        if let Some(h) = r.handling.as_mut() {
            h.tlp = tlp as i32;
        }
        let done = nodes[0].shared().submit(r).await.unwrap();
        ids.push(done.item_id);
        sent.push(entente::store::ulid_text(&done.item_id));
    }
    let store = nodes[1].shared().store.clone();
    eventually(20, "DE-BAFA confirms the three alerts", || {
        ids.iter()
            .all(|id| delivered(&nodes[0].shared().store, id, "DE-BAFA"))
    })
    .await;

    // The bundle the analyst would export, for stix2 to validate.
    let items: Vec<pb::GetItemResponse> = sent
        .iter()
        .map(|id| entente::control::get_item(&store, id).unwrap())
        .collect();
    let bundle = dir.path().join("bundle.json");
    std::fs::write(
        &bundle,
        entente::stix::bundle(&items, entente::now_ms()).to_string(),
    )
    .unwrap();

    let addr = nodes[1].local_addr().unwrap().to_string();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["--addr", &addr, "--page", "2"])
            .arg("--ca")
            .arg(node_ca)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--stix")
            .arg(bundle)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        text(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["health"], "SERVING");
    assert_eq!(
        (seen["name"].as_str(), seen["role"].as_str()),
        (Some("py-analyst"), Some("analyst"))
    );
    let mut found: Vec<String> = seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen["pages"], 2, "three items in pages of two");
    found.sort();
    sent.sort();
    assert_eq!(found, sent);
    assert_eq!(seen["audit"], "PERMISSION_DENIED");
    assert_eq!(seen["stix"]["report"], 3);
    assert_eq!(
        seen["stix"]["marking-definition"], 3,
        "WHITE, AMBER and the AMBER+STRICT statement"
    );
}
