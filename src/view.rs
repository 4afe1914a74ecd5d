//! Plain-text and JSON views of items for the `entente` command.

use std::fmt::Write as _;

use serde_json::json;

use crate::{pb, report, store};

/// One item summary as a JSON object.
pub fn summary_json(item: &pb::ItemSummary) -> serde_json::Value {
    let deliveries: Vec<_> = item
        .deliveries
        .iter()
        .map(|d| json!({"partner": d.partner, "state": d.state, "detail": d.detail}))
        .collect();
    json!({
        "item_id": item.item_id,
        "sender": item.sender,
        "own": item.own,
        "kind": kind_name(item.kind),
        "tlp": report::tlp_name(pb::TlpLevel::try_from(item.tlp).unwrap_or_default()),
        "title": item.title,
        "subjects": item.subjects,
        "created_at": time_text(item.created_at_ms),
        "stored_at": time_text(item.stored_at_ms),
        "deliveries": deliveries,
    })
}

/// Item summaries as an aligned table, one line per item.
pub fn summary_table(items: &[pb::ItemSummary]) -> String {
    if items.is_empty() {
        return "no items\n".to_owned();
    }
    let mut out = format!(
        "{:<26}  {:<9}  {:<22}  {:<12}  {:<20}  {:<28}  {}\n",
        "ITEM", "FROM", "KIND", "TLP", "CREATED (UTC)", "SUBJECTS", "DELIVERY"
    );
    for item in items {
        let tlp = report::tlp_name(pb::TlpLevel::try_from(item.tlp).unwrap_or_default());
        let _ = writeln!(
            out,
            "{:<26}  {:<9}  {:<22}  {:<12}  {:<20}  {:<28}  {}",
            item.item_id,
            item.sender,
            kind_name(item.kind),
            tlp,
            time_text(item.created_at_ms),
            clip(&item.subjects.join("; "), 28),
            delivery_text(item),
        );
    }
    out
}

fn delivery_text(item: &pb::ItemSummary) -> String {
    if !item.own {
        return "received".to_owned();
    }
    if item.deliveries.is_empty() {
        return "no partners".to_owned();
    }
    item.deliveries
        .iter()
        .map(|d| format!("{}:{}", d.partner, d.state))
        .collect::<Vec<_>>()
        .join(" ")
}

fn kind_name(kind: i32) -> &'static str {
    report::kind_name(pb::ItemKind::try_from(kind).unwrap_or_default())
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(width - 1).collect();
        s.push('…');
        s
    }
}

/// A millisecond timestamp as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time_text(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date from days since 1970-01-01 (H. Hinnant's civil_from_days algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The ULID text of a stored item's id.
pub fn item_id_text(item: &store::StoredItem) -> String {
    store::ulid_text(&store::id16(&item.item_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(time_text(0), "1970-01-01 00:00:00");
        assert_eq!(time_text(1_796_300_000_000), "2026-12-03 12:13:20");
    }
}
