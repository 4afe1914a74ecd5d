//! `entente audit verify|tail|search`.

use std::{fmt::Write as _, path::Path};

use clap::Subcommand;
use entente::{audit, config::Config, control, identity::SigningKey, pb, store, view};
use serde_json::json;

use super::CliResult;

/// The `audit` subcommands.
#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the audit log: its hash chain and every signed checkpoint. Names the first
    /// bad entry and exits non-zero if there is one. The node must be stopped.
    Verify {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: std::path::PathBuf,
    },
    /// Show the newest entries of the audit log, oldest first.
    Tail {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: std::path::PathBuf,
        /// How many entries (1 to 10000).
        #[arg(short = 'n', long = "lines", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        lines: u32,
        /// Print JSON instead of one line per entry.
        #[arg(long)]
        json: bool,
    },
    /// Show the audit entries that match every condition given, the newest `--limit` of
    /// them, oldest first.
    Search(SearchArgs),
}

/// Conditions of `entente audit search`.
#[derive(clap::Args)]
pub(crate) struct SearchArgs {
    /// The node's config file.
    #[arg(long, short, env = "ENTENTE_CONFIG")]
    config: std::path::PathBuf,
    /// Only this action (submitted, queued, withheld, delivered, refused-by-partner,
    /// received, refused, query, policy, list-published, list-applied, list-mismatch,
    /// list-pull, checkpoint).
    #[arg(long)]
    action: Option<String>,
    /// Only entries naming this partner (agency id) or peer (address, or "local").
    #[arg(long)]
    peer: Option<String>,
    /// Only entries naming this item id.
    #[arg(long = "item", value_name = "ID")]
    item: Option<String>,
    /// Only entries at or after TIME: RFC 3339 (2026-12-04T10:00:00Z) or a date
    /// (2026-12-04, from midnight UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: Option<i64>,
    /// Only entries before TIME: RFC 3339 (2026-12-04T10:00:00Z) or a date (2026-12-04,
    /// up to the end of that day, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    until: Option<i64>,
    /// Show at most this many entries, the newest that match (1 to 10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
    /// Print JSON instead of one line per entry.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::Verify { config } => verify(&config),
        AuditCommand::Tail {
            config,
            lines,
            json,
        } => {
            let request = pb::SearchAuditRequest {
                limit: lines,
                ..Default::default()
            };
            show(&config, request, json).await
        }
        AuditCommand::Search(args) => {
            if let (Some(since), Some(until)) = (args.since, args.until) {
                if since >= until {
                    return Err("--since must be earlier than --until".into());
                }
            }
            let request = pb::SearchAuditRequest {
                action: args.action.unwrap_or_default(),
                peer: args.peer.unwrap_or_default(),
                item_id: args.item.unwrap_or_default(),
                since_ms: args.since.unwrap_or_default(),
                until_ms: args.until.unwrap_or_default(),
                limit: args.limit,
            };
            show(&args.config, request, args.json).await
        }
    }
}

/// Asks the running node, or reads the store of a stopped one.
async fn show(config: &Path, request: pb::SearchAuditRequest, json: bool) -> CliResult {
    let config = Config::load(config)?;
    let found = match super::connect(&config).await? {
        Some(mut client) => client
            .search_audit(request)
            .await
            .map_err(|status| status.message().to_owned())?
            .into_inner(),
        None => {
            let store = control::open_store(&config)?;
            control::search_audit(&store, &request)?
        }
    };
    if json {
        let rows: Vec<_> = found.entries.iter().map(entry_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", entries_text(&found.entries));
    }
    Ok(())
}

fn entry_json(e: &pb::AuditEntry) -> serde_json::Value {
    json!({
        "seq": e.seq,
        "time": view::time_rfc3339(e.at_ms),
        "at_ms": e.at_ms,
        "action": e.action,
        "peer": e.peer,
        "item_id": e.item_id,
        "detail": e.detail,
    })
}

/// One line per entry, columns as wide as their longest value; time in UTC.
fn entries_text(entries: &[pb::AuditEntry]) -> String {
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            let item = if e.item_id.is_empty() {
                "-"
            } else {
                &e.item_id
            };
            [
                e.seq.to_string(),
                format!("{} UTC", view::time_text(e.at_ms)),
                e.action.clone(),
                e.peer.clone(),
                item.to_owned(),
                e.detail.clone(),
            ]
        })
        .collect();
    let header = ["SEQ", "TIME", "ACTION", "PEER", "ITEM", "DETAIL"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// What a TIME option accepts, for its error message.
const TIME_EXPECTED: &str =
    "expected an RFC 3339 time such as 2026-12-04T10:00:00Z, or a date such as 2026-12-04";

/// `--since`: a date means its first moment (midnight UTC).
fn parse_since(text: &str) -> Result<i64, String> {
    parse_time(text, 0)
}

/// `--until`: a date means up to the end of that day.
fn parse_until(text: &str) -> Result<i64, String> {
    parse_time(text, 1)
}

/// Milliseconds since the epoch of an RFC 3339 time, or of midnight UTC `days_after` days
/// after a `YYYY-MM-DD` date.
fn parse_time(text: &str, days_after: i64) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let at = if text.len() == 10 {
        date(text).map(|d| d.midnight().assume_utc() + time::Duration::days(days_after))
    } else {
        time::OffsetDateTime::parse(text, &Rfc3339).ok()
    };
    let at = at.ok_or_else(|| TIME_EXPECTED.to_owned())?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| TIME_EXPECTED.to_owned())
}

fn date(text: &str) -> Option<time::Date> {
    let mut parts = text.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// Reads the store directly (the node must be stopped) and checks the log against the
/// node's public signing key.
fn verify(config: &Path) -> CliResult {
    let config = Config::load(config)?;
    let mut keys = vec![SigningKey::load(&config.signing_key)?.public()];
    keys.extend(entente::keys::files::load_retired_signing(
        &config.signing_key,
    )?);
    let store = store::Store::open_with_key_file(&config.data_dir, &config.data_key).map_err(
        |e| match e {
            store::StoreError::Locked { dir } => format!(
                "data directory {dir} is in use: stop `entente serve` for this node before \
             verifying its audit log (verification reads the store directly)"
            ),
            other => other.to_string(),
        },
    )?;
    let done = store.verify_audit_any(&keys)?;
    print!("{}", verification_text(&done));
    match done.first_bad {
        None => Ok(()),
        Some(bad) => Err(format!("audit log broken at entry {}: {}", bad.seq, bad.flaw).into()),
    }
}

fn verification_text(done: &audit::Verification) -> String {
    let mut out = String::new();
    let intact = if done.is_intact() {
        "audit log intact"
    } else {
        "intact before the first bad entry"
    };
    let entries = match done.entries {
        1 => "1 entry".to_owned(),
        n => format!("{n} entries"),
    };
    let checkpoints = match done.checkpoints {
        1 => "1 signed checkpoint".to_owned(),
        n => format!("{n} signed checkpoints"),
    };
    let _ = writeln!(out, "{intact}: {entries}, {checkpoints} verified");
    if !done.is_intact() {
        return out;
    }
    let span = |from: u64, to: u64| {
        if from == to {
            format!("entry {to} is")
        } else {
            format!("entries {from} to {to} are")
        }
    };
    let (last, n) = (done.last_checkpoint, done.entries);
    if n == 0 {
        return out;
    }
    let _ = if last == 0 {
        writeln!(
            out,
            "no checkpoint yet: {} covered by no signature (the node has not stopped cleanly \
             since the log began)",
            span(1, n)
        )
    } else if last == n {
        writeln!(out, "the log ends with the checkpoint at entry {last}")
    } else {
        writeln!(
            out,
            "last checkpoint at entry {last}; {} not yet covered by a signature",
            span(last + 1, n)
        )
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_rfc3339_or_as_dates() {
        assert_eq!(parse_since("2026-12-04T10:00:00Z"), Ok(1_796_378_400_000));
        assert_eq!(
            parse_since("2026-12-04T11:00:00+01:00"),
            Ok(1_796_378_400_000)
        );
        assert_eq!(parse_since("2026-12-04"), Ok(1_796_342_400_000));
        assert_eq!(parse_until("2026-12-04"), Ok(1_796_428_800_000));
    }

    #[test]
    fn a_bad_time_says_what_is_expected() {
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-12-04 10:00",
            "12/04/2026",
        ] {
            assert_eq!(parse_since(bad), Err(TIME_EXPECTED.to_owned()), "{bad}");
        }
    }

    #[test]
    fn entries_print_one_line_each_with_aligned_columns() {
        let entry = |seq, action: &str, item: &str| pb::AuditEntry {
            seq,
            at_ms: 1_796_378_400_000,
            action: action.to_owned(),
            peer: "DE-BAFA".to_owned(),
            item_id: item.to_owned(),
            detail: "receipt 1".to_owned(),
        };
        let text = entries_text(&[
            entry(9, "queued", "01KBQ3V0000000000000000000"),
            entry(10, "delivered", ""),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("SEQ  TIME"), "{text}");
        assert!(
            lines[2].starts_with("10   2026-12-04 10:00:00 UTC  delivered  DE-BAFA  -"),
            "{text}"
        );
    }
}
