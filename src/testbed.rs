//! A federation of nodes built in a scratch directory, for `entente bench`, integration
//! tests and anyone who wants several nodes on one machine.
//!
//! Every member gets fresh keys and a certificate from one fresh CA, a listener bound to a
//! free port on 127.0.0.1, every other member registered as a partner, and a policy file
//! that shares and accepts the given kinds with each of them. The CA is left in `dir` (`ca.crt`, `ca.key`) so tests can issue more
//! certificates from it. Nothing here is fit for production.

use std::path::Path;

use tokio::net::TcpListener;

use crate::{
    config::{Config, DEFAULT_MAX_MESSAGE_BYTES, Delivery, PartnerConfig},
    identity::{EncryptionKey, PublicKeys, SigningKey, write_private_file},
    setup::{self, Ca},
    sharing::ShareKind,
};

/// A member's validated config and its bound (not yet serving) peer listener.
#[derive(Debug)]
pub struct Member {
    /// The config; `listen` is the bound address.
    pub config: Config,
    /// The peer listener to pass to [`crate::node::Node::start_on`].
    pub listener: TcpListener,
}

/// Errors while building a federation.
pub type TestbedError = Box<dyn std::error::Error + Send + Sync>;

/// Builds `agencies` under `dir`, each sharing `share` with every other.
pub async fn federation(
    dir: &Path,
    agencies: &[&str],
    share: &[ShareKind],
) -> Result<Vec<Member>, TestbedError> {
    let ca = Ca::generate("Entente testbed CA (not for production)")?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.crt"), ca.cert_pem())?;
    write_private_file(&dir.join("ca.key"), ca.key_pem().as_bytes())?;
    let mut built = Vec::new();
    for agency in agencies {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let keys = write_member(dir, &ca, agency)?;
        built.push((agency.to_string(), listener, keys));
    }
    let mut members = Vec::new();
    for (agency, listener, _) in &built {
        let partners = built
            .iter()
            .filter(|(other, _, _)| other != agency)
            .map(|(other, l, keys)| -> Result<PartnerConfig, TestbedError> {
                Ok(PartnerConfig {
                    agency: other.clone(),
                    endpoint: format!("https://{}", l.local_addr()?),
                    keys: keys.clone(),
                    ca: None,
                    cert_fingerprint: None,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = member_config(dir, agency, listener.local_addr()?);
        let others: Vec<&str> = partners.iter().map(|p| p.agency.as_str()).collect();
        std::fs::write(&config.policy, share_policy(&others, share))?;
        members.push((config, partners));
    }
    Ok(built
        .into_iter()
        .zip(members)
        .map(|((_, listener, _), (mut config, partners))| {
            config.partners = partners;
            Member { config, listener }
        })
        .collect())
}

/// A policy that shares and accepts `kinds` with each of `partners`, without redaction.
pub fn share_policy(partners: &[&str], kinds: &[ShareKind]) -> String {
    let kinds: Vec<String> = kinds.iter().map(|k| format!("\"{}\"", k.name())).collect();
    let kinds = kinds.join(", ");
    let mut text = String::from("version = 1\n");
    for partner in partners {
        text.push_str(&format!(
            "\n[[partner]]\nagency = \"{partner}\"\naccept = [{kinds}]\n"
        ));
        if !kinds.is_empty() {
            text.push_str(&format!(
                "  [[partner.rule]]\n  id = \"all\"\n  kinds = [{kinds}]\n  action = \"share\"\n"
            ));
        }
    }
    text
}

fn member_dir(dir: &Path, agency: &str) -> std::path::PathBuf {
    dir.join(agency.to_ascii_lowercase())
}

/// Writes keys, certificate and CA for one member; returns its public keys.
pub fn write_member(dir: &Path, ca: &Ca, agency: &str) -> Result<PublicKeys, TestbedError> {
    let d = member_dir(dir, agency);
    std::fs::create_dir_all(&d)?;
    let signing = SigningKey::generate()?;
    let encryption = EncryptionKey::generate();
    signing.save(&d.join("signing.pem"))?;
    encryption.save(&d.join("encryption.pem"))?;
    crate::identity::DataKey::create(&d.join("data.key"))?;
    let cert = setup::issue_node_cert(ca, agency, &[])?;
    std::fs::write(d.join("node.crt"), &cert.cert_pem)?;
    write_private_file(&d.join("node.key"), cert.key_pem.as_bytes())?;
    std::fs::write(d.join("ca.crt"), ca.cert_pem())?;
    Ok(PublicKeys {
        signing: signing.public(),
        encryption: encryption.public(),
    })
}

fn member_config(dir: &Path, agency: &str, listen: std::net::SocketAddr) -> Config {
    let d = member_dir(dir, agency);
    Config {
        file: d.join("entente.toml"),
        agency: agency.to_owned(),
        data_dir: d.join("data"),
        listen,
        policy: d.join("policy.toml"),
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        metrics_listen: None,
        signing_key: d.join("signing.pem"),
        encryption_key: d.join("encryption.pem"),
        data_key: d.join("data.key"),
        tls_cert: d.join("node.crt"),
        tls_key: d.join("node.key"),
        tls_ca: d.join("ca.crt"),
        tls_crl: None,
        delivery: Delivery {
            batch_size: 128,
            max_backoff_ms: 2_000,
            initial_backoff_ms: 50,
        },
        screening: crate::config::Screening::default(),
        lifecycle: crate::config::Lifecycle::default(),
        limits: crate::config::Limits::default(),
        local: None,
        partners: Vec::new(),
    }
}
