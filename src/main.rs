//! The `entente` command: run a node, submit and list reports, make keys and certificates,
//! and run the three-agency demo.
//!
//! Each subcommand parses its arguments, calls the library, and prints the result; no
//! decision is made here.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod cli;

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
    /// Your personal certificate (PEM) from the agency's staff CA. With --user-key, a
    /// command reaches the running node through its local listener (`[local]`) with the
    /// role your certificate carries; without them, through the node's control socket,
    /// which only the node's own operating-system user can open.
    #[arg(long, global = true, env = "ENTENTE_USER_CERT", value_name = "FILE")]
    user_cert: Option<PathBuf>,
    /// The private key (PEM) of --user-cert.
    #[arg(long, global = true, env = "ENTENTE_USER_KEY", value_name = "FILE")]
    user_key: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Check a sharing policy, see what a partner would receive, reload it.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Screen a name against every watchlist the node holds, own and received: ranked
    /// matches with their score, the name or alias matched, the list, the entry id and why
    /// it matched. Every screening is recorded in the audit log.
    Screen(ScreenArgs),
    /// Publish watchlists this agency owns, and see every list the node holds (own and
    /// received from their owners) with its version, digest and sync state per partner.
    #[command(subcommand)]
    Watchlist(cli::watchlist::WatchlistCommand),
    /// Read and check the audit log: the newest entries, a search, and a check of its
    /// hash chain and signed checkpoints.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Links between held items whose subjects match (across agencies) or match a
    /// watchlist entry, with the evidence; the open ones unless --all. Close one after
    /// review with --close ID --note TEXT.
    Correlations(cli::CorrelationsArgs),
    /// Ask an item's originator for consent to pass it on (the third-party rule), and, as
    /// originator, grant or refuse such requests.
    #[command(subcommand)]
    Consent(cli::lifecycle::ConsentCommand),
    /// Check a licence application against the denial notifications received, opening
    /// consultations with the denying agencies; record the decision.
    #[command(subcommand)]
    Licence(cli::lifecycle::LicenceCommand),
    /// Denial consultations, opened by this node and opened with it: open, overdue,
    /// answered or undercut. `consultations reply` answers one as the denying agency.
    Consultations(cli::lifecycle::ConsultationsArgs),
    /// Who the node takes you to be, and your role.
    Whoami {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
    },
    /// Make certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Rotate the node's own keys and announce them to its partners.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Start three agencies on loopback, exchange reports under their sharing policies
    /// (redaction, a deny rule, the third-party rule, an inbound refusal), and show that a
    /// forged item and an unregistered agency are refused.
    Demo {
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure end-to-end delivery between nodes on loopback, with durability on.
    Bench(entente::bench::BenchArgs),
}

#[derive(clap::Args)]
pub(crate) struct InitArgs {
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

#[derive(clap::Args)]
pub(crate) struct ScreenArgs {
    /// The node's config file.
    #[arg(long, short, env = "ENTENTE_CONFIG")]
    config: PathBuf,
    /// The name to screen, as written (any case, accents, word order).
    name: String,
    /// Only entries of this type (person, organisation, vessel, aircraft), or of no
    /// stated type.
    #[arg(long = "type", value_name = "TYPE")]
    subject_type: Option<String>,
    /// Only entries connected to this country (ISO 3166-1 alpha-2, such as IR), or to
    /// none.
    #[arg(long)]
    country: Option<String>,
    /// Show at most this many matches (1 to 1000).
    #[arg(long, default_value_t = 10)]
    limit: u32,
    /// Lowest score shown, above 0 and at most 1.
    #[arg(long, default_value_t = entente::screen::DEFAULT_MIN_SCORE)]
    min_score: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum ReportCommand {
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
    /// Show one item: handling, sender, sharing decisions per partner, and the report.
    Show {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The item id (as `report list` shows it).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find items: by subject name (fuzzy, as screening matches), sender, kind, TLP,
    /// subject or route country, control-list entry, HS prefix, time received and free
    /// text. Newest first, one page at a time; --all prints every page.
    ///
    /// Example: entente report search --config entente.toml --subject "Shahed Aviation"
    /// --route-country AE --since 2026-11-01
    Search(Box<cli::SearchArgs>),
    /// Write held items as a STIX 2.1 bundle (identities, reports, subjects, locations,
    /// relationships, TLP markings) for a threat-intelligence platform.
    ///
    /// Example: entente report export --config entente.toml --format stix --out b.json ID
    Export {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The format.
        #[arg(long, value_enum, default_value = "stix")]
        format: cli::ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The item ids (as `report list` or `report search` show them).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Issue a corrected version of an own item: it goes to every partner that was sent
    /// the item, in the form the current policy gives each. The handling may only stay or
    /// narrow.
    Correct {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The item id.
        id: String,
        /// The whole report as corrected (JSON, as for `report submit`).
        file: PathBuf,
        /// Why it was corrected, for the receiving analysts.
        #[arg(long)]
        reason: String,
    },
    /// Withdraw an own item: every partner that was sent it gets a signed retraction,
    /// deletes the content and keeps the tombstone; `report show` lists who acknowledged.
    Retract {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The item id.
        id: String,
        /// Why it was withdrawn, for the receiving analysts.
        #[arg(long)]
        reason: String,
    },
    /// Run the sharing policy again for a held item (own or received) and queue it for
    /// every partner that may now have it. A received item stays bound by its
    /// originator's marking (the third-party rule).
    Share {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The item id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate the policy file against the config: every error with its file, line and
    /// what is expected; shadowed rules as warnings. Exits non-zero on an error.
    Check {
        /// The node's config file (its `[node] policy` names the policy file).
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
    },
    /// Show the decision for one report and one partner, the rule that made it, and the
    /// exact copy the partner would receive. Sends nothing.
    Explain {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The partner's agency id.
        #[arg(long)]
        partner: String,
        /// The agency that created the report, when it is not this node (to see the
        /// third-party rule at work).
        #[arg(long)]
        origin: Option<String>,
        /// The report (JSON).
        file: PathBuf,
    },
    /// Make a running node read its policy file again (as SIGHUP does). An invalid file
    /// is refused and the policy in force stays.
    Reload {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum CertsCommand {
    /// Write example material for US-BIS, DE-BAFA and JP-METI (never for production).
    Example {
        /// Directory to write into.
        dir: PathBuf,
    },
    /// Make the agency's staff CA, which the local listener (`[local] ca`) trusts for
    /// analysts' and operators' personal certificates. Keep it apart from the
    /// federation's CA: a partner must never be able to issue a certificate for your staff.
    StaffCa {
        /// Your agency id.
        #[arg(long)]
        agency: String,
        /// Directory to write ca.crt and ca.key into.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a personal certificate for the local listener, from the staff CA: CN = the
    /// person's name, OU = the role. Writes DIR/NAME.crt and DIR/NAME.key.
    ///
    /// Example: entente certs user --ca-cert staff/ca.crt --ca-key staff/ca.key --name
    /// j.smith --role analyst --dir staff
    User {
        /// The staff CA certificate (PEM).
        #[arg(long)]
        ca_cert: PathBuf,
        /// The staff CA private key (PEM).
        #[arg(long)]
        ca_key: PathBuf,
        /// The person's name (the certificate's CN; the audit log records it).
        #[arg(long)]
        name: String,
        /// analyst (query and submit) or operator (everything).
        #[arg(long)]
        role: String,
        /// Directory to write into.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write a certificate revocation list, signed by the federation CA, that revokes the
    /// given node certificates. Put it in each node's `[tls] crl` (and reload by restarting):
    /// a revoked certificate is then refused at the TLS handshake, whichever side shows it.
    ///
    /// Example: entente certs revoke --ca-cert ca.crt --ca-key ca.key --out crl.pem --number 2 old-node.crt
    Revoke {
        /// The CA certificate (PEM).
        #[arg(long)]
        ca_cert: PathBuf,
        /// The CA private key (PEM).
        #[arg(long)]
        ca_key: PathBuf,
        /// Where to write the list (PEM); an existing file is replaced.
        #[arg(long)]
        out: PathBuf,
        /// The list's number: larger than that of any list this CA issued before.
        #[arg(long, default_value_t = 1)]
        number: u64,
        /// Days until the list's next update is due (1 to 3650).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// The certificates to revoke (PEM files issued by this CA). None: an empty list.
        certs: Vec<PathBuf>,
    },
}

/// Makes a command whose reader went away (`entente audit tail | head`) end at once with
/// status 141, as a shell reports a process stopped by SIGPIPE, instead of panicking.
/// Rust ignores SIGPIPE, so a closed pipe reaches `println!`, which panics; resetting the
/// signal would need `unsafe`, which this crate forbids.
fn end_quietly_on_a_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    // A serving node logs its lifecycle and every sharing decision at info. The other
    // commands print their own results; the demo and the bench provoke refusals on
    // purpose, so they show errors only. RUST_LOG overrides all of this.
    let level = match cli.command {
        Command::Serve { .. } => "info",
        Command::Demo { .. } | Command::Bench(_) => "error",
        _ => "warn",
    };
    init_logging(level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        cli::set_user(cli.user_cert, cli.user_key)?;
        cli::run(cli.command).await
    };
    match runtime.block_on(run) {
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
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}
