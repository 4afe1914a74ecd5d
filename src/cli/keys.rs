//! `entente keys`: rotating the node's own keys.

use std::path::PathBuf;

use clap::Subcommand;
use entente::{config::Config, control, node, pb};

use super::CliResult;

/// Key lifecycle commands.
#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Replace the node's signing, encryption and/or TLS keys, and announce the new public
    /// keys to every partner (signed by the old and the new signing key). Works on a
    /// running node (through its control socket, without downtime) and on a stopped one
    /// (the announcements then go out when it next serves). Old private encryption keys
    /// are kept in `retired/` beside the key file, so items sealed to them still open.
    ///
    /// Example: entente keys rotate --config node.toml --signing --encryption
    Rotate {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// Rotate the Ed25519 signing key.
        #[arg(long)]
        signing: bool,
        /// Rotate the X25519 encryption key.
        #[arg(long)]
        encryption: bool,
        /// Rotate the TLS key and certificate (needs --ca-cert and --ca-key).
        #[arg(long, requires_all = ["ca_cert", "ca_key"])]
        tls: bool,
        /// The CA certificate that issued the node's certificate (PEM).
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// That CA's private key (PEM); read for this command only.
        #[arg(long)]
        ca_key: Option<PathBuf>,
    },
}

/// Runs one `entente keys` command.
pub(crate) async fn run(command: KeysCommand) -> CliResult {
    let KeysCommand::Rotate {
        config,
        signing,
        encryption,
        tls,
        ca_cert,
        ca_key,
    } = command;
    if !(signing || encryption || tls) {
        return Err(
            "nothing to rotate: choose at least one of --signing, --encryption, --tls".into(),
        );
    }
    let config = Config::load(&config)?;
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let request = pb::RotateKeysRequest {
        signing,
        encryption,
        tls,
        ca_cert: path(&ca_cert),
        ca_key: path(&ca_key),
    };
    let (response, running) = match control::connect(&config.data_dir).await {
        Some(mut client) => {
            let response = client
                .rotate_keys(request)
                .await
                .map_err(|s| format!("key rotation refused: {}", s.message()))?
                .into_inner();
            (response, true)
        }
        None => (rotate_stopped(config, &request).await?, false),
    };
    print_rotated(&response, running);
    Ok(())
}

/// Rotates the keys of a node that is not running, opening its store directly.
async fn rotate_stopped(
    config: Config,
    request: &pb::RotateKeysRequest,
) -> Result<pb::RotateKeysResponse, Box<dyn std::error::Error>> {
    let rotate = control::keys_request(request)?;
    let shared = node::Shared::open(config)?;
    let response = shared.rotate_keys(rotate).await?;
    shared.store.checkpoint()?;
    shared.store.flush().await?;
    Ok(response)
}

fn print_rotated(r: &pb::RotateKeysResponse, running: bool) {
    println!("signing key     {} ({})", r.signing_key_id, r.signing_key);
    println!(
        "encryption key  {} ({})",
        r.encryption_key_id, r.encryption_key
    );
    println!("TLS certificate sha256:{}", r.tls_cert_fingerprint);
    if !r.retired_encryption_key_ids.is_empty() {
        println!(
            "kept to open older items: {}",
            r.retired_encryption_key_ids.join(", ")
        );
    }
    let when = if running {
        "now"
    } else {
        "when the node next serves"
    };
    match r.announced_to.len() {
        0 => println!("no partners to announce the new keys to"),
        _ => println!(
            "key announcement queued for {}; sent {when}, before anything made with the new keys",
            r.announced_to.join(", ")
        ),
    }
}
