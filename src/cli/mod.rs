//! The handlers behind each subcommand: parse, call the library, print.
//!
//! Commands that act on a node reach a running node through its control socket and,
//! when none is running, open its store themselves (see `entente::control`).

mod analyst;
pub(crate) mod audit;
pub(crate) mod keys;
pub(crate) mod lifecycle;
mod policy;
mod report;
mod screen;
pub(crate) mod watchlist;

use std::path::{Path, PathBuf};

use entente::{config::Config, identity, node};

use crate::{CertsCommand, Command, InitArgs, PolicyCommand, ReportCommand};

pub(crate) type CliResult = Result<(), Box<dyn std::error::Error>>;

pub(crate) use analyst::{CorrelationsArgs, ExportFormat, SearchArgs};

/// The personal certificate and key given with `--user-cert` and `--user-key`.
static USER: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();

/// Remembers the user's certificate for [`connect`]; both or neither must be given.
pub(crate) fn set_user(cert: Option<PathBuf>, key: Option<PathBuf>) -> CliResult {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let _ = USER.set((cert, key));
            Ok(())
        }
        (None, None) => Ok(()),
        _ => Err("--user-cert and --user-key (ENTENTE_USER_CERT, ENTENTE_USER_KEY) go together: give both or neither".into()),
    }
}

/// The running node to talk to: through its local listener with the user's certificate
/// when one was given, else through its control socket; `None` when no node is running
/// and no certificate was given (the command then opens the store itself). With a
/// certificate, an unreachable node is an error: only the node's own operating-system
/// user may open its store.
pub(crate) async fn connect(
    config: &Config,
) -> Result<
    Option<entente::pb::control_client::ControlClient<tonic::transport::Channel>>,
    Box<dyn std::error::Error>,
> {
    if let Some((cert, key)) = USER.get() {
        return Ok(Some(entente::local::connect(config, cert, key).await?));
    }
    Ok(entente::control::connect(&config.data_dir).await)
}

/// Runs one command.
pub(crate) async fn run(command: Command) -> CliResult {
    match command {
        Command::Init(args) => init(args),
        Command::Serve { config } => serve(&config).await,
        Command::Report(ReportCommand::Submit { config, file }) => {
            report::submit(&config, &file).await
        }
        Command::Report(ReportCommand::List {
            config,
            limit,
            json,
        }) => report::list(&config, limit, json).await,
        Command::Report(ReportCommand::Show { config, id, json }) => {
            report::show(&config, &id, json).await
        }
        Command::Report(ReportCommand::Share { config, id }) => report::share(&config, &id).await,
        Command::Report(ReportCommand::Correct {
            config,
            id,
            file,
            reason,
        }) => lifecycle::correct(&config, &id, &file, &reason).await,
        Command::Report(ReportCommand::Retract { config, id, reason }) => {
            lifecycle::retract(&config, &id, &reason).await
        }
        Command::Consent(command) => lifecycle::consent(command).await,
        Command::Licence(command) => lifecycle::licence(command).await,
        Command::Consultations(args) => lifecycle::consultations(args).await,
        Command::Report(ReportCommand::Search(args)) => analyst::search(*args).await,
        Command::Report(ReportCommand::Export {
            config,
            format,
            out,
            ids,
        }) => analyst::export(&config, format, out.as_deref(), &ids).await,
        Command::Correlations(args) => analyst::correlations(args).await,
        Command::Whoami { config } => analyst::whoami(&config).await,
        Command::Certs(CertsCommand::StaffCa { agency, dir }) => {
            entente::setup::write_staff_ca(&dir, &agency)?;
            println!(
                "wrote the staff CA of {agency} to {}/ca.crt and ca.key; name ca.crt in [local] ca \
                 and keep ca.key offline",
                dir.display()
            );
            Ok(())
        }
        Command::Certs(CertsCommand::User {
            ca_cert,
            ca_key,
            name,
            role,
            dir,
        }) => {
            let role = entente::config::Role::parse(&role)
                .ok_or_else(|| format!("--role {role:?}: expected analyst or operator"))?;
            let ca = entente::setup::Ca::load(&ca_cert, &ca_key)?;
            let (cert, key) = entente::setup::write_user_cert(&dir, &ca, &name, role)?;
            println!(
                "wrote the {} certificate of {name} to {} and its key to {}",
                role.name(),
                cert.display(),
                key.display()
            );
            Ok(())
        }
        Command::Policy(PolicyCommand::Check { config }) => policy::check(&config),
        Command::Policy(PolicyCommand::Explain {
            config,
            partner,
            origin,
            file,
        }) => policy::explain(&config, &partner, origin.as_deref(), &file),
        Command::Policy(PolicyCommand::Reload { config }) => policy::reload(&config).await,
        Command::Screen(args) => screen::run(args).await,
        Command::Watchlist(command) => watchlist::run(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Certs(CertsCommand::Example { dir }) => {
            entente::setup::write_example(&dir)?;
            println!(
                "wrote example material to {} (never use it in production)",
                dir.display()
            );
            Ok(())
        }
        Command::Certs(CertsCommand::Revoke {
            ca_cert,
            ca_key,
            out,
            number,
            days,
            certs,
        }) => {
            let ca = entente::setup::Ca::load(&ca_cert, &ca_key)?;
            let mut revoked = Vec::new();
            for cert in &certs {
                let text = std::fs::read_to_string(cert)
                    .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
                revoked.push((cert.display().to_string(), text));
            }
            let crl = ca.revocation_list(&revoked, number, days)?;
            std::fs::write(&out, crl).map_err(|e| format!("{}: {e}", out.display()))?;
            println!(
                "wrote revocation list {number} to {}: {} certificate(s) revoked, next update due in {days} days",
                out.display(),
                certs.len()
            );
            Ok(())
        }
        Command::Demo { json } => entente::demo::run(json).await,
        Command::Bench(args) => entente::bench::run(args).await,
    }
}

fn init(args: InitArgs) -> CliResult {
    let ca = match (&args.ca_cert, &args.ca_key) {
        (Some(cert), Some(key)) => Some(entente::setup::Ca::load(cert, key)?),
        _ => None,
    };
    let options = entente::setup::InitOptions {
        agency: args.agency,
        listen: args.listen,
        ca,
        hosts: args.hosts,
    };
    let summary = entente::setup::init_node(&args.dir, &options)?;
    println!("{summary}");
    Ok(())
}

async fn serve(config: &Path) -> CliResult {
    let config = Config::load(config)?;
    for key in [
        &config.signing_key,
        &config.encryption_key,
        &config.data_key,
        &config.tls_key,
    ] {
        identity::check_private_file(key)?;
    }
    if let Some(addr) = config.metrics_listen {
        entente::metrics::serve(addr)
            .map_err(|e| format!("cannot serve metrics on {addr} (node.metrics_listen): {e}"))?;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    let node = node::Node::start(config).await?;
    println!(
        "serving on {}; SIGHUP reloads the policy; stop with Ctrl-C or SIGTERM",
        node.addr()
    );
    wait_for_stop(node.shared()).await;
    node.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM; on SIGHUP reloads the sharing policy and goes on.
async fn wait_for_stop(shared: &node::Shared) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return,
                    _ = term.recv() => return,
                    _ = hup.recv() => reload_on_signal(shared),
                }
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn reload_on_signal(shared: &node::Shared) {
    // A refused reload is logged by the node itself, on one line with the first error.
    if let Ok(warnings) = shared.reload_policy() {
        for w in warnings {
            tracing::warn!(warning = %w, "sharing policy");
        }
    }
}
