//! `entente watchlist import|list|show`.

use std::{fmt::Write as _, path::Path, path::PathBuf};

use clap::Subcommand;
use entente::{
    config::Config,
    control, node, pb, view,
    watchlist::{self, Format},
};
use serde_json::json;

use super::CliResult;

/// `entente watchlist ...`
#[derive(Subcommand)]
pub(crate) enum WatchlistCommand {
    /// Publish a list this agency owns from a file in a published format. The node diffs
    /// the file against the version it holds and publishes the changes (adds, changes,
    /// removals) as the next version, sealed for every partner whose sharing policy allows
    /// the list; importing the same file again publishes nothing. A malformed row is
    /// reported with its file, line and reason and the rest is imported, unless --strict.
    ///
    /// Example: entente watchlist import --config entente.toml --list US-BIS/dpl
    /// --format bis-dpl dpl.txt
    Import {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The list to publish, AGENCY/list, where AGENCY is this node's agency (for
        /// example US-BIS/dpl). Lists of other agencies come from their owners.
        #[arg(long, value_name = "AGENCY/list")]
        list: String,
        /// The file's format.
        #[arg(long, value_enum)]
        format: Format,
        /// Stop at the first malformed row and publish nothing.
        #[arg(long)]
        strict: bool,
        /// The file (for ofac-sdn and ofac-cons: the directory holding the four CSV
        /// files, or the main CSV file with the other three beside it).
        path: PathBuf,
    },
    /// The lists the node holds, own and received: owner, version, entries, digest, last
    /// update, and the sync state per partner.
    List {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One list: its summary, sync state, recent versions and first entries; or, with
    /// --entry, one entry in full.
    Show {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The list, AGENCY/list.
        list: String,
        /// Show this entry (its id, as `watchlist show` lists them).
        #[arg(long, value_name = "ID")]
        entry: Option<String>,
        /// List at most this many entries.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `watchlist` subcommand.
pub(crate) async fn run(command: WatchlistCommand) -> CliResult {
    match command {
        WatchlistCommand::Import {
            config,
            list,
            format,
            strict,
            path,
        } => import(&config, &list, format, strict, &path).await,
        WatchlistCommand::List { config, json } => list(&config, json).await,
        WatchlistCommand::Show {
            config,
            list,
            entry,
            limit,
            json,
        } => show(&config, &list, entry.as_deref(), limit, json).await,
    }
}

async fn import(config: &Path, list: &str, format: Format, strict: bool, path: &Path) -> CliResult {
    let config = Config::load(config)?;
    watchlist::validate_list_name(list)?;
    let owner = watchlist::list_owner(list).unwrap_or_default();
    if owner != config.agency {
        return Err(node::ListError::NotOwner {
            list: list.to_owned(),
            owner: owner.to_owned(),
            agency: config.agency.clone(),
        }
        .into());
    }
    let imported = watchlist::import(format, path, strict)?;
    for row in &imported.rejected {
        eprintln!("skipped {row}");
    }
    if !imported.rejected.is_empty() {
        eprintln!(
            "{} malformed row(s) skipped; the other {} entries are imported (use --strict to \
             stop at the first)",
            imported.rejected.len(),
            imported.entries.len()
        );
    }
    let source = format!("{} ({})", path.display(), format_name(format));
    let response = match super::connect(&config).await? {
        Some(mut client) => {
            let request = pb::ImportWatchlistRequest {
                list: list.to_owned(),
                entries: imported.entries,
                source,
            };
            client.import_watchlist(request).await?.into_inner()
        }
        None => {
            let shared = node::Shared::open(config)?;
            let published = shared.import_list(list, imported.entries, &source).await?;
            control::import_response(&published)
        }
    };
    if response.published {
        println!(
            "published {} v{}: {} added or changed, {} removed; {} entries; digest {}",
            response.list,
            response.version,
            response.upserts,
            response.removals,
            response.entry_count,
            response.digest
        );
        print!("{}", view::decisions_text(&response.decisions));
    } else {
        println!(
            "{} unchanged at v{} ({} entries): nothing published",
            response.list, response.version, response.entry_count
        );
    }
    Ok(())
}

fn format_name(format: Format) -> String {
    use clap::ValueEnum as _;
    format
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}

async fn list(config: &Path, json: bool) -> CliResult {
    let config = Config::load(config)?;
    let lists = match super::connect(&config).await? {
        Some(mut client) => {
            let request = pb::ListWatchlistsRequest {};
            client.list_watchlists(request).await?.into_inner().lists
        }
        None => {
            let (policy, _) = node::load_policy(&config)?;
            let store = control::open_store(&config)?;
            control::record_query(&store, "watchlist list", "")?;
            control::list_watchlists(&store, &config, &policy)?
        }
    };
    if json {
        let rows: Vec<_> = lists.iter().map(summary_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", summary_table(&lists));
    }
    Ok(())
}

async fn show(config: &Path, list: &str, entry: Option<&str>, limit: u32, json: bool) -> CliResult {
    let config = Config::load(config)?;
    watchlist::validate_list_name(list)?;
    let request = pb::ShowWatchlistRequest {
        list: list.to_owned(),
        entry_id: entry.unwrap_or_default().to_owned(),
        limit,
    };
    let shown = match super::connect(&config).await? {
        Some(mut client) => client.show_watchlist(request).await?.into_inner(),
        None => {
            let (policy, _) = node::load_policy(&config)?;
            let store = control::open_store(&config)?;
            let what = format!("{list} {}", entry.unwrap_or_default());
            control::record_query(&store, "watchlist show", what.trim_end())?;
            control::show_watchlist(&store, &config, &policy, &request)?
        }
    };
    if json {
        let value = json!({
            "summary": shown.summary.as_ref().map(summary_json),
            "versions": shown.versions.iter().map(|v| json!({
                "version": v.version,
                "published_at": view::time_text(v.published_at_ms),
                "snapshot": v.snapshot,
                "upserts": v.upserts,
                "removals": v.removals,
                "entries": v.entry_count,
            })).collect::<Vec<_>>(),
            "entries": shown.entries.iter().map(entry_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if entry.is_some() {
        for e in &shown.entries {
            print!("{}", entry_text(list, e));
        }
    } else {
        print!("{}", show_text(&shown));
    }
    Ok(())
}

fn summary_json(s: &pb::WatchlistSummary) -> serde_json::Value {
    json!({
        "list": s.list,
        "owner": s.owner,
        "own": s.own,
        "version": s.version,
        "entries": s.entry_count,
        "digest": s.digest,
        "updated_at": view::time_text(s.updated_at_ms),
        "sync": s.sync.iter().map(|p| json!({
            "partner": p.partner,
            "version": p.version,
            "state": p.state,
            "detail": p.detail,
        })).collect::<Vec<_>>(),
    })
}

fn summary_table(lists: &[pb::WatchlistSummary]) -> String {
    if lists.is_empty() {
        return "no watchlists held (publish one with `entente watchlist import`)\n".into();
    }
    let mut out = format!(
        "{:<24} {:<10} {:>7} {:>8}  {:<16}  {:<20}  SYNC\n",
        "LIST", "OWNER", "VERSION", "ENTRIES", "DIGEST", "UPDATED"
    );
    for s in lists {
        let sync: Vec<String> = s.sync.iter().map(sync_text).collect();
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:>7} {:>8}  {:<16}  {:<20}  {}",
            s.list,
            s.owner,
            s.version,
            s.entry_count,
            s.digest.get(..16).unwrap_or(&s.digest),
            view::time_text(s.updated_at_ms),
            sync.join("; ")
        );
    }
    out
}

fn sync_text(p: &pb::WatchlistSync) -> String {
    match p.state.as_str() {
        "withheld" => format!("{} withheld", p.partner),
        state => format!("{} {state} v{}", p.partner, p.version),
    }
}

fn show_text(shown: &pb::ShowWatchlistResponse) -> String {
    let Some(s) = shown.summary.as_ref() else {
        return "no such watchlist\n".into();
    };
    let mut out = String::new();
    let whose = if s.own { " (this node)" } else { "" };
    let _ = writeln!(out, "list      {}", s.list);
    let _ = writeln!(out, "owner     {}{whose}", s.owner);
    let _ = writeln!(out, "version   {}", s.version);
    let _ = writeln!(out, "entries   {}", s.entry_count);
    let _ = writeln!(out, "digest    {}", s.digest);
    let _ = writeln!(out, "updated   {}", view::time_text(s.updated_at_ms));
    let _ = writeln!(out, "sync");
    for p in &s.sync {
        let detail = if p.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.detail)
        };
        let _ = writeln!(
            out,
            "  {:<10} {:<9} v{}{detail}",
            p.partner, p.state, p.version
        );
    }
    if !shown.versions.is_empty() {
        let _ = writeln!(out, "versions (newest first)");
        for v in &shown.versions {
            let what = if v.snapshot {
                format!("snapshot of {} entries", v.entry_count)
            } else {
                format!(
                    "{} added or changed, {} removed; {} entries",
                    v.upserts, v.removals, v.entry_count
                )
            };
            let _ = writeln!(
                out,
                "  v{:<5} {}  {what}",
                v.version,
                view::time_text(v.published_at_ms)
            );
        }
    }
    let _ = writeln!(out, "entries (first {}, by id)", shown.entries.len());
    for e in &shown.entries {
        let _ = writeln!(out, "  {:<16} {:<13} {}", e.id, type_name(e.r#type), e.name);
    }
    out
}

fn type_name(raw: i32) -> &'static str {
    match pb::SubjectType::try_from(raw).unwrap_or_default() {
        pb::SubjectType::Person => "person",
        pb::SubjectType::Organisation => "organisation",
        pb::SubjectType::Vessel => "vessel",
        pb::SubjectType::Aircraft => "aircraft",
        pb::SubjectType::Unspecified => "-",
    }
}

fn entry_text(list: &str, e: &pb::WatchlistEntry) -> String {
    let mut out = format!("list        {list}\nid          {}\n", e.id);
    let _ = writeln!(out, "type        {}", type_name(e.r#type));
    let _ = writeln!(out, "name        {}", e.name);
    for alias in &e.aliases {
        let _ = writeln!(out, "alias       {alias}");
    }
    if !e.countries.is_empty() {
        let _ = writeln!(out, "countries   {}", e.countries.join(", "));
    }
    for id in &e.identifiers {
        let _ = writeln!(
            out,
            "identifier  {}: {} {}",
            id.scheme, id.value, id.country
        );
    }
    for a in &e.addresses {
        let mut parts = a.lines.clone();
        parts.extend(
            [&a.city, &a.postal_code, &a.country]
                .into_iter()
                .filter(|s| !s.is_empty())
                .cloned(),
        );
        let _ = writeln!(out, "address     {}", parts.join(", "));
    }
    if !e.programs.is_empty() {
        let _ = writeln!(out, "programs    {}", e.programs.join(", "));
    }
    if !e.listed_on.is_empty() {
        let _ = writeln!(out, "listed on   {}", e.listed_on);
    }
    if !e.remarks.is_empty() {
        let _ = writeln!(out, "remarks     {}", e.remarks);
    }
    out
}

fn entry_json(e: &pb::WatchlistEntry) -> serde_json::Value {
    json!({
        "id": e.id,
        "type": type_name(e.r#type),
        "name": e.name,
        "aliases": e.aliases,
        "countries": e.countries,
        "identifiers": e.identifiers.iter().map(|i| json!({
            "scheme": i.scheme, "value": i.value, "country": i.country,
        })).collect::<Vec<_>>(),
        "addresses": e.addresses.iter().map(|a| json!({
            "lines": a.lines, "city": a.city, "postal_code": a.postal_code,
            "country": a.country,
        })).collect::<Vec<_>>(),
        "programs": e.programs,
        "listed_on": e.listed_on,
        "remarks": e.remarks,
    })
}
