//! The `entente` command: run a node, submit and list reports, make keys and certificates,
//! and run the three-agency demo.
//!
//! Each subcommand parses its arguments, calls the library, and prints the result; no
//! decision is made here.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use entente::{config::Config, control, node, pb, report, store};

/// Entente: share signed, encrypted export-control intelligence with partner agencies.
///
/// Start with `entente demo` to watch three agencies exchange reports on this machine,
/// then `entente init` to create a real node. Every command that acts on a node takes
/// `--config FILE`, the node's TOML file; it works whether or not `entente serve` is
/// running for that node.
#[derive(Parser)]
#[command(name = "entente", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new node: signing and encryption keys, a TLS certificate, and a config.
    Init(InitArgs),
    /// Run a node: accept partners' deliveries and deliver this node's outbox.
    Serve {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
    },
    /// Submit and list reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Make certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Start three agencies on loopback, exchange reports, and show refusals of a forged
    /// item and of an unregistered agency.
    Demo {
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure end-to-end delivery between nodes on loopback, with durability on.
    Bench(entente::bench::BenchArgs),
}

#[derive(clap::Args)]
struct InitArgs {
    /// Directory to create the node in (keys/, tls/, entente.toml, public.toml).
    #[arg(long)]
    dir: PathBuf,
    /// This node's agency id, such as US-BIS.
    #[arg(long)]
    agency: String,
    /// Address for the peer listener.
    #[arg(long, default_value = "127.0.0.1:7401")]
    listen: SocketAddr,
    /// Certificate of the federation's CA (PEM); with --ca-key. Without them a new CA is
    /// made in DIR/tls/.
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// Private key of the federation's CA (PEM).
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Extra host names or IP addresses for the TLS certificate (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Submit a report (JSON; see examples/reports/) from this agency.
    Submit {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The report file.
        file: PathBuf,
    },
    /// List items held by the node, own and received, newest first.
    List {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// Show at most this many items.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain and name the first bad entry.
    Verify {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write example material for US-BIS, DE-BAFA and JP-METI (never for production).
    Example {
        /// Directory to write into.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo and the bench print their own summaries; their expected refusals would
    // otherwise fill the screen with warnings (RUST_LOG still overrides this).
    let quiet = matches!(cli.command, Command::Demo { .. } | Command::Bench(_));
    init_logging(if quiet { "error" } else { "info" });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

async fn run(command: Command) -> CliResult {
    match command {
        Command::Init(args) => init(args),
        Command::Serve { config } => serve(&config).await,
        Command::Report(ReportCommand::Submit { config, file }) => submit(&config, &file).await,
        Command::Report(ReportCommand::List {
            config,
            limit,
            json,
        }) => list(&config, limit, json).await,
        Command::Audit(AuditCommand::Verify { config }) => audit_verify(&config),
        Command::Certs(CertsCommand::Example { dir }) => {
            entente::setup::write_example(&dir)?;
            println!(
                "wrote example material to {} (never use it in production)",
                dir.display()
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
    let node = node::Node::start(config).await?;
    println!("serving on {}; stop with Ctrl-C or SIGTERM", node.addr());
    wait_for_signal().await;
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn submit(config: &Path, file: &Path) -> CliResult {
    let config = Config::load(config)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read report file {}: {e}", file.display()))?;
    let report = report::parse_report_json(&text, &file.display().to_string())?;
    let (item_id, queued, withheld) = match control::connect(&config.data_dir).await {
        Some(mut client) => {
            let request = pb::SubmitReportRequest {
                report: Some(report),
            };
            let r = client.submit_report(request).await?.into_inner();
            (r.item_id, r.queued_for, r.withheld_from)
        }
        None => {
            let shared = node::Shared::open(config)?;
            let s = shared.submit(report).await?;
            let withheld = s.withheld_from.into_iter().map(|(p, _)| p).collect();
            (store::ulid_text(&s.item_id), s.queued_for, withheld)
        }
    };
    println!("submitted {item_id}");
    println!("  queued for:    {}", join_or_none(&queued));
    println!("  withheld from: {}", join_or_none(&withheld));
    Ok(())
}

fn join_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

async fn list(config: &Path, limit: u32, json: bool) -> CliResult {
    let config = Config::load(config)?;
    let items = match control::connect(&config.data_dir).await {
        Some(mut client) => {
            let request = pb::ListItemsRequest { limit };
            client.list_items(request).await?.into_inner().items
        }
        None => {
            let store = store::Store::open(&config.data_dir)?;
            control::list_items(&store, limit as usize)?
        }
    };
    if json {
        let rows: Vec<_> = items.iter().map(entente::view::summary_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", entente::view::summary_table(&items));
    }
    Ok(())
}

fn audit_verify(config: &Path) -> CliResult {
    let config = Config::load(config)?;
    let store = store::Store::open(&config.data_dir).map_err(|e| {
        format!("{e} (stop `entente serve` for this node before verifying its audit log)")
    })?;
    match store.verify_audit()? {
        Ok(n) => {
            println!("audit log intact: {n} entries");
            Ok(())
        }
        Err(seq) => {
            Err(format!("audit log broken at entry {seq}: changed, removed or reordered").into())
        }
    }
}
