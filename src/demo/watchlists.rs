//! The watchlist part of the demo: US-BIS publishes a small Denied Persons List, DE-BAFA
//! receives it, US-BIS publishes an update, and both nodes end with the same version and
//! digest. JP-METI's policy entry names no watchlist rule, so it is sent nothing. Then
//! DE-BAFA screens a few names, written as an analyst might type them, against the list it
//! received.

use std::{path::Path, time::Duration};

use super::{DemoResult, by_agency};
use crate::{
    node::{Node, Shared},
    screen,
    watchlist::{self, Format},
};

/// The list US-BIS publishes.
pub(super) const LIST: &str = "US-BIS/dpl";

/// Two publications of a fictional list, in the BIS DPL format.
const PUBLICATIONS: [(&str, &str); 2] = [
    (
        "dpl-2026-11.txt",
        include_str!("../../examples/watchlists/dpl-2026-11.txt"),
    ),
    (
        "dpl-2026-12.txt",
        include_str!("../../examples/watchlists/dpl-2026-12.txt"),
    ),
];

/// What the watchlist part showed.
pub(super) struct ListsShown {
    /// DE-BAFA held each published version with US-BIS's digest.
    pub(super) converged: bool,
    /// The final version at both nodes.
    pub(super) version: u64,
    /// The final digest at US-BIS.
    pub(super) digest: String,
    /// JP-METI received nothing of it.
    pub(super) withheld_from_jp: bool,
    /// Every screened name found the entry it was written from, and only the removed
    /// party found nothing.
    pub(super) screened_as_expected: bool,
}

/// Names DE-BAFA screens, and the primary name each must find first (none: the party was
/// removed in the update).
const SCREENED: [(&str, Option<&str>); 4] = [
    ("El Haddad, Sámira", Some("SAMIRA EL-HADDAD")),
    (
        "Orion Machine Tools Company",
        Some("ORION MACHINE TOOLS CO., LTD."),
    ),
    ("Kestrel Avionics", Some("KESTREL AVIONICS LLC")),
    ("Blue Lantern Components", None),
];

/// Publishes both versions and waits for DE-BAFA to converge after each.
pub(super) async fn watchlists_at_work(
    nodes: &[Node],
    scratch: &Path,
    lines: &mut Vec<String>,
) -> DemoResult<ListsShown> {
    let us = by_agency(nodes, "US-BIS")?.shared();
    let de = by_agency(nodes, "DE-BAFA")?.shared();
    let jp = by_agency(nodes, "JP-METI")?.shared();
    lines.push(String::new());
    lines.push(format!(
        "Watchlists (US-BIS publishes {LIST}; DE-BAFA's policy accepts it, JP-METI's gets none):"
    ));
    let mut converged = true;
    for (name, text) in PUBLICATIONS {
        let path = scratch.join(name);
        std::fs::write(&path, text)?;
        let imported = watchlist::import(Format::BisDpl, &path, true)?;
        let p = us
            .import_list(LIST, imported.entries, &format!("{name} (bis-dpl)"))
            .await?;
        lines.push(format!(
            "  US-BIS imports {name}: v{} published, {} added or changed, {} removed, {} \
             entries",
            p.version, p.upserts, p.removals, p.entry_count
        ));
        let same = wait_for_version(us, de, p.version, Duration::from_secs(20)).await?;
        converged &= same;
        lines.push(format!(
            "  {:<8} v{} digest {}\n  {:<8} v{} digest {}  {}",
            "US-BIS",
            version(us)?,
            digest(us)?,
            "DE-BAFA",
            version(de)?,
            digest(de)?,
            if same { "(equal)" } else { "(NOT EQUAL)" }
        ));
    }
    let withheld_from_jp = jp.store.list_meta(LIST)?.is_none();
    lines.push(format!(
        "  JP-METI holds {LIST}: {}",
        if withheld_from_jp {
            "no (withheld by US-BIS's policy)"
        } else {
            "YES (should not)"
        }
    ));
    let screened_as_expected = screen_names(de, lines);
    Ok(ListsShown {
        converged,
        version: version(us)?,
        digest: digest(us)?,
        withheld_from_jp,
        screened_as_expected,
    })
}

/// Screens [`SCREENED`] at `node`, prints the best hit of each, and says whether each
/// found what it should.
fn screen_names(node: &Shared, lines: &mut Vec<String>) -> bool {
    lines.push("  DE-BAFA screens names against the lists it holds:".to_owned());
    let mut all = true;
    for (name, expected) in SCREENED {
        let hits = node.screen(&screen::Query::new(name));
        let best = hits.first();
        all &= best.map(|h| h.primary_name.as_str()) == expected;
        let shown = match best {
            Some(h) => format!(
                "{:.2} {} ({} {}; {})",
                h.score,
                h.primary_name,
                h.list,
                h.entry_id,
                h.why.join(", ")
            ),
            None => "no match (removed in v2)".to_owned(),
        };
        lines.push(format!("    {:<30} {shown}", format!("{name:?}")));
    }
    all
}

async fn wait_for_version(
    owner: &Shared,
    partner: &Shared,
    v: u64,
    limit: Duration,
) -> DemoResult<bool> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        let (a, b) = (owner.store.list_meta(LIST)?, partner.store.list_meta(LIST)?);
        if let (Some(a), Some(b)) = (a, b)
            && a.version == v
            && b.version == v
        {
            return Ok(a.digest == b.digest);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(false)
}

fn version(node: &Shared) -> DemoResult<u64> {
    Ok(node.store.list_meta(LIST)?.map_or(0, |m| m.version))
}

fn digest(node: &Shared) -> DemoResult<String> {
    Ok(node
        .store
        .list_meta(LIST)?
        .map_or_else(String::new, |m| m.digest().hex()))
}
