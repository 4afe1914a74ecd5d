//! `entente report search|export`, `entente correlations`, `entente whoami`.

use std::{fmt::Write as _, path::PathBuf};

use entente::{config::Config, control, node, pb, report, sharing::ShareKind, view};
use serde_json::json;

use super::{CliResult, connect};

/// `entente report search`: every condition given must hold.
#[derive(clap::Args)]
pub(crate) struct SearchArgs {
    /// The node's config file.
    #[arg(long, short, env = "ENTENTE_CONFIG")]
    config: PathBuf,
    /// A subject's name, matched as screening matches names (accents, word order, legal
    /// forms and small misspellings do not matter).
    #[arg(long)]
    subject: Option<String>,
    /// Lowest name score for --subject, above 0 and at most 1 (default 0.80).
    #[arg(long)]
    min_score: Option<f64>,
    /// The agency that sent the item (this node's own agency for its own items).
    #[arg(long)]
    sender: Option<String>,
    /// suspicious-transaction, denial-notification or enforcement-alert.
    #[arg(long)]
    kind: Option<String>,
    /// TLP level: CLEAR, GREEN, AMBER, AMBER+STRICT or RED.
    #[arg(long)]
    tlp: Option<String>,
    /// Country connected to a subject (ISO 3166-1 alpha-2, such as IR).
    #[arg(long)]
    subject_country: Option<String>,
    /// Control-list entry, or its beginning up to a dot (3A001 finds 3A001.b.2).
    #[arg(long)]
    control_entry: Option<String>,
    /// The first digits of an HS code (8542).
    #[arg(long = "hs")]
    hs_prefix: Option<String>,
    /// A country on the route: origin, transit, destination or end user.
    #[arg(long)]
    route_country: Option<String>,
    /// Received (stored by this node) at or after: YYYY-MM-DD or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Received before: YYYY-MM-DD or an RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Words that must all occur in the title, narrative, red flags or goods.
    #[arg(long)]
    text: Option<String>,
    /// Items per page (1 to 1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Print every page, not only the first.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `entente correlations`.
#[derive(clap::Args)]
pub(crate) struct CorrelationsArgs {
    /// The node's config file.
    #[arg(long, short, env = "ENTENTE_CONFIG")]
    config: PathBuf,
    /// Include the links already closed.
    #[arg(long)]
    all: bool,
    /// Only the links of this item.
    #[arg(long)]
    item: Option<String>,
    /// Close this link (after review) instead of listing.
    #[arg(long, value_name = "LINK-ID")]
    close: Option<String>,
    /// With --close: why it was closed.
    #[arg(long, default_value = "")]
    note: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Export formats.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// A STIX 2.1 bundle.
    Stix,
}

fn request(args: &SearchArgs) -> Result<pb::SearchItemsRequest, String> {
    let kind = match &args.kind {
        None => 0,
        Some(k) => k
            .trim()
            .parse::<ShareKind>()
            .map(|k| k.item_kind() as i32)
            .map_err(|_| {
                format!("--kind {k:?}: expected suspicious-transaction, denial-notification or enforcement-alert")
            })?,
    };
    let tlp = match &args.tlp {
        None => 0,
        Some(t) => {
            let wanted = t.trim().trim_start_matches("TLP:").to_ascii_uppercase();
            [
                pb::TlpLevel::Clear,
                pb::TlpLevel::Green,
                pb::TlpLevel::Amber,
                pb::TlpLevel::AmberStrict,
                pb::TlpLevel::Red,
            ]
            .into_iter()
            .find(|l| report::tlp_name(*l) == wanted)
            .map(|l| l as i32)
            .ok_or_else(|| {
                format!("--tlp {t:?}: expected CLEAR, GREEN, AMBER, AMBER+STRICT or RED")
            })?
        }
    };
    let time = |flag: &str, value: &Option<String>| -> Result<i64, String> {
        value.as_deref().map_or(Ok(0), |v| {
            parse_time(v).ok_or_else(|| {
                format!("{flag} {v:?}: expected YYYY-MM-DD or an RFC 3339 time such as 2026-12-01T08:00:00Z")
            })
        })
    };
    Ok(pb::SearchItemsRequest {
        subject: args.subject.clone().unwrap_or_default(),
        min_score: args.min_score.unwrap_or(0.0),
        sender: args.sender.clone().unwrap_or_default(),
        kind,
        tlp,
        subject_country: args.subject_country.clone().unwrap_or_default(),
        control_entry: args.control_entry.clone().unwrap_or_default(),
        hs_prefix: args.hs_prefix.clone().unwrap_or_default(),
        route_country: args.route_country.clone().unwrap_or_default(),
        received_after_ms: time("--since", &args.since)?,
        received_before_ms: time("--until", &args.until)?,
        text: args.text.clone().unwrap_or_default(),
        limit: args.limit,
        cursor: args.cursor.clone().unwrap_or_default(),
    })
}

/// Milliseconds since the epoch of `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
fn parse_time(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let parsed = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339))
        .ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

pub(crate) async fn search(args: SearchArgs) -> CliResult {
    let mut request = request(&args)?;
    let config = Config::load(&args.config)?;
    let mut client = connect(&config).await?;
    // A stopped node: its index is built once for all pages.
    let local = match client {
        Some(_) => None,
        None => {
            let store = control::open_store(&config)?;
            let index = node::build_search_index(&store)?;
            Some((store, index))
        }
    };
    let mut items = Vec::new();
    let mut pages = 0;
    let next = loop {
        let page = match (client.as_mut(), local.as_ref()) {
            (Some(client), _) => client
                .search_items(request.clone())
                .await
                .map_err(|s| control::status_text(&s))?
                .into_inner(),
            (None, Some((store, index))) => {
                control::search_items(store, &request, |s| index.search(s))?
            }
            (None, None) => return Err("no running node and no store to read".into()),
        };
        pages += 1;
        items.extend(page.items);
        if !args.all || page.next_cursor.is_empty() {
            break page.next_cursor;
        }
        request.cursor = page.next_cursor;
    };
    if args.json {
        let rows: Vec<_> = items.iter().map(view::summary_json).collect();
        let out = json!({"items": rows, "next_cursor": next, "pages": pages});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", view::summary_table(&items));
        if !next.is_empty() {
            println!("more: --cursor {next}");
        }
    }
    Ok(())
}

pub(crate) async fn export(
    config: &std::path::Path,
    _format: ExportFormat,
    out: Option<&std::path::Path>,
    ids: &[String],
) -> CliResult {
    let config = Config::load(config)?;
    let mut client = connect(&config).await?;
    let mut items = Vec::new();
    let store = match client {
        Some(_) => None,
        None => Some(control::open_store(&config)?),
    };
    for id in ids {
        let item = match (client.as_mut(), store.as_ref()) {
            (Some(client), _) => client
                .get_item(pb::GetItemRequest {
                    item_id: id.clone(),
                })
                .await
                .map_err(|s| format!("item {id}: {}", control::status_text(&s)))?
                .into_inner(),
            (None, Some(store)) => {
                control::record_query(store, "export", id)
                    .map_err(|e| format!("item {id}: {e}"))?;
                control::get_item(store, id).map_err(|e| format!("item {id}: {e}"))?
            }
            (None, None) => return Err("no running node and no store to read".into()),
        };
        items.push(item);
    }
    let bundle = entente::stix::bundle(&items, entente::now_ms());
    let text = serde_json::to_string_pretty(&bundle)?;
    match out {
        Some(path) => {
            std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "wrote a STIX 2.1 bundle of {} item(s) to {}",
                items.len(),
                path.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}

pub(crate) async fn correlations(args: CorrelationsArgs) -> CliResult {
    let config = Config::load(&args.config)?;
    let mut client = connect(&config).await?;
    if let Some(id) = &args.close {
        let request = pb::CloseCorrelationRequest {
            id: id.clone(),
            note: args.note.clone(),
        };
        let closed = match client.as_mut() {
            Some(client) => client
                .close_correlation(request)
                .await
                .map_err(|s| control::status_text(&s))?
                .into_inner(),
            None => control::close_correlation(&control::open_store(&config)?, &request)?,
        };
        println!("closed {} ({})", closed.id, closed.closed_by);
        return Ok(());
    }
    let request = pb::ListCorrelationsRequest {
        include_closed: args.all,
        item_id: args.item.clone().unwrap_or_default(),
    };
    let found = match client.as_mut() {
        Some(client) => client
            .list_correlations(request)
            .await
            .map_err(|s| control::status_text(&s))?
            .into_inner(),
        None => control::correlations(&control::open_store(&config)?, &request)?,
    };
    if args.json {
        let rows: Vec<_> = found
            .correlations
            .iter()
            .map(view::correlation_json)
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if found.correlations.is_empty() {
        println!("no {}correlations", if args.all { "" } else { "open " });
    } else {
        let mut out = String::new();
        for c in &found.correlations {
            let _ = write!(out, "{}", view::correlation_text(c));
        }
        print!("{out}");
    }
    Ok(())
}

pub(crate) async fn whoami(config: &std::path::Path) -> CliResult {
    let config = Config::load(config)?;
    let me = match connect(&config).await? {
        Some(mut client) => client
            .who_am_i(pb::WhoAmIRequest {})
            .await
            .map_err(|s| control::status_text(&s))?
            .into_inner(),
        None => pb::WhoAmIResponse {
            name: "local".into(),
            role: "operator".into(),
            agency: config.agency.clone(),
        },
    };
    println!("{} ({}) on the node of {}", me.name, me.role, me.agency);
    Ok(())
}
