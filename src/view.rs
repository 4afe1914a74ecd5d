//! Plain-text and JSON views of items for the `entente` command.

use std::fmt::Write as _;

use serde_json::json;

use crate::{pb, report, store};

mod lifecycle;

pub use lifecycle::{
    consent_json, consents_text, consultation_json, consultations_text, licence_check_json,
    licence_check_text, lifecycle_text,
};

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
        "screening_hits": item.screening_hits,
    })
}

/// Item summaries as an aligned table, one line per item.
pub fn summary_table(items: &[pb::ItemSummary]) -> String {
    if items.is_empty() {
        return "no items\n".to_owned();
    }
    let mut out = format!(
        "{:<26}  {:<9}  {:<22}  {:<12}  {:<20}  {:<28}  {:>4}  {}\n",
        "ITEM", "FROM", "KIND", "TLP", "CREATED (UTC)", "SUBJECTS", "HITS", "DELIVERY"
    );
    for item in items {
        let tlp = report::tlp_name(pb::TlpLevel::try_from(item.tlp).unwrap_or_default());
        let _ = writeln!(
            out,
            "{:<26}  {:<9}  {:<22}  {:<12}  {:<20}  {:<28}  {:>4}  {}",
            item.item_id,
            item.sender,
            kind_name(item.kind),
            tlp,
            time_text(item.created_at_ms),
            clip(&item.subjects.join("; "), 28),
            item.screening_hits,
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

/// Per-partner decisions, one line each (for `report submit` and `report share`).
pub fn decisions_text(decisions: &[pb::DeliveryStatus]) -> String {
    let mut out = String::new();
    for d in decisions {
        let _ = writeln!(out, "  {:<10} {}", d.partner, decision_text(d));
    }
    out
}

fn decision_text(d: &pb::DeliveryStatus) -> String {
    let rule = if d.rule.is_empty() {
        String::new()
    } else {
        format!(" (rule {})", d.rule)
    };
    let mut text = format!("{}{rule}", d.state);
    if !d.redactions.is_empty() {
        let _ = write!(text, "; changed: {}", d.redactions.join(", "));
    }
    if !d.detail.is_empty() {
        let _ = write!(text, "; {}", d.detail);
    }
    text
}

/// One item in full as JSON (for `report show --json`).
pub fn item_json(item: &pb::GetItemResponse) -> serde_json::Value {
    let mut out = item.summary.as_ref().map(summary_json).unwrap_or_default();
    if let (Some(obj), Some(summary)) = (out.as_object_mut(), item.summary.as_ref()) {
        obj.insert("originator".into(), summary.originator.clone().into());
        let decisions: Vec<_> = summary
            .deliveries
            .iter()
            .map(|d| {
                json!({"partner": d.partner, "state": d.state, "rule": d.rule,
                       "changed": d.redactions, "detail": d.detail})
            })
            .collect();
        obj.insert("deliveries".into(), decisions.into());
        let report = item.report.as_ref().map(report::report_to_json);
        obj.insert("report".into(), report.unwrap_or_default());
        let hits: Vec<_> = item.screening_hits.iter().map(hit_json).collect();
        obj.insert("screening_hits".into(), hits.into());
        obj.insert("signature".into(), item.signature.clone().into());
        let links: Vec<_> = item.correlations.iter().map(correlation_json).collect();
        obj.insert("correlations".into(), links.into());
        lifecycle::item_lifecycle_json(item, obj);
    }
    out
}

/// A link between items (or an item and a watchlist entry) as JSON.
pub fn correlation_json(c: &pb::Correlation) -> serde_json::Value {
    let evidence: Vec<_> = c
        .evidence
        .iter()
        .map(
            |e| json!({"subject": e.subject, "matched": e.matched, "score": e.score, "why": e.why}),
        )
        .collect();
    let mut value = json!({
        "id": c.id, "open": c.open, "created": time_rfc3339(c.created_at_ms),
        "item_id": c.item_id, "sender": c.sender, "evidence": evidence,
    });
    if let Some(obj) = value.as_object_mut() {
        if c.list.is_empty() {
            obj.insert("other_item_id".into(), c.other_item_id.clone().into());
            obj.insert("other_sender".into(), c.other_sender.clone().into());
        } else {
            obj.insert("list".into(), c.list.clone().into());
            obj.insert("entry_id".into(), c.entry_id.clone().into());
        }
        if !c.open {
            obj.insert("closed_by".into(), c.closed_by.clone().into());
            obj.insert("closed".into(), time_rfc3339(c.closed_at_ms).into());
            obj.insert("note".into(), c.note.clone().into());
        }
    }
    value
}

/// A link as text: what it links, then one line of evidence per matched subject.
pub fn correlation_text(c: &pb::Correlation) -> String {
    let with = if c.list.is_empty() {
        format!("item {} from {}", c.other_item_id, c.other_sender)
    } else {
        format!("watchlist {} entry {}", c.list, c.entry_id)
    };
    let state = if c.open {
        "open".to_owned()
    } else {
        format!("closed by {} ({})", c.closed_by, c.note)
    };
    let mut out = format!(
        "{}  {}  item {} from {}  <->  {with}  [{state}]\n",
        c.id,
        time_text(c.created_at_ms),
        c.item_id,
        c.sender
    );
    for e in &c.evidence {
        let _ = writeln!(
            out,
            "    {:.3}  {:?} ~ {:?}  ({})",
            e.score,
            e.subject,
            e.matched,
            e.why.join("; ")
        );
    }
    out
}

/// One item in full as text (for `report show`).
pub fn item_text(item: &pb::GetItemResponse) -> String {
    let Some(s) = item.summary.as_ref() else {
        return "no such item\n".to_owned();
    };
    if item.report.is_none() && item.tombstone.is_some() {
        // Withdrawn by its originator: only the tombstone is held.
        let mut out = format!("item        {}\noriginator  {}\n", s.item_id, s.originator);
        let _ = writeln!(out, "signature   {}", item.signature);
        lifecycle::item_lifecycle_text(item, &mut out);
        return out;
    }
    let mut out = format!(
        "item        {}\nkind        {}\n",
        s.item_id,
        kind_name(s.kind)
    );
    if let Some(h) = item.report.as_ref().and_then(|r| r.handling.as_ref()) {
        let tlp = report::tlp_name(pb::TlpLevel::try_from(h.tlp).unwrap_or_default());
        let control = if h.originator_control {
            ", originator control"
        } else {
            ""
        };
        let releasable = if h.releasable_to.is_empty() {
            String::new()
        } else {
            format!(", releasable to {}", h.releasable_to.join(", "))
        };
        let _ = writeln!(out, "handling    TLP:{tlp}{control}{releasable}");
    }
    let _ = writeln!(out, "originator  {}", s.originator);
    if s.own {
        let _ = writeln!(out, "sender      {} (this node)", s.sender);
    } else {
        let _ = writeln!(out, "sender      {}", s.sender);
    }
    if !item.signature.is_empty() {
        let _ = writeln!(out, "signature   {}", item.signature);
    }
    let _ = writeln!(out, "created     {} UTC", time_text(s.created_at_ms));
    let _ = writeln!(out, "stored      {} UTC", time_text(s.stored_at_ms));
    if !s.deliveries.is_empty() {
        out.push_str("sharing\n");
        out.push_str(&decisions_text(&s.deliveries));
    }
    out.push_str(&report_hits_text(&item.screening_hits));
    if item.correlations.is_empty() {
        out.push_str("links       none\n");
    } else {
        let _ = writeln!(out, "links       {}", item.correlations.len());
        for c in &item.correlations {
            out.push_str("  ");
            out.push_str(&correlation_text(c));
        }
    }
    lifecycle::item_lifecycle_text(item, &mut out);
    if let Some(r) = &item.report {
        let json = serde_json::to_string_pretty(&report::report_to_json(r)).unwrap_or_default();
        let _ = writeln!(out, "report\n{json}");
    }
    out
}

/// The watchlist hits kept with a report, one line each with its reasons below (for
/// `report show`).
fn report_hits_text(hits: &[pb::ScreeningHit]) -> String {
    if hits.is_empty() {
        return "screening   no watchlist hits\n".to_owned();
    }
    let mut out = format!("screening   {} watchlist hit(s)\n", hits.len());
    for h in hits {
        let screened = if h.screened_name == h.subject {
            String::new()
        } else {
            format!(" (as {:?})", h.screened_name)
        };
        let _ = writeln!(
            out,
            "  {:.3}  subject {:?}{screened} matched {:?} in {} entry {}",
            h.score, h.subject, h.matched_name, h.list, h.entry_id
        );
        let _ = writeln!(out, "         why: {}", h.why.join("; "));
    }
    out
}

/// One hit as JSON.
fn hit_json(h: &pb::ScreeningHit) -> serde_json::Value {
    let mut value = json!({
        "score": h.score,
        "list": h.list,
        "entry_id": h.entry_id,
        "matched_name": h.matched_name,
        "primary_name": h.primary_name,
        "why": h.why,
    });
    if let Some(obj) = value.as_object_mut()
        && !h.subject.is_empty()
    {
        obj.insert("subject".into(), h.subject.clone().into());
        obj.insert("screened_name".into(), h.screened_name.clone().into());
    }
    value
}

/// The answer to `entente screen` as JSON: the entries screened and the hits, best first.
pub fn screen_json(response: &pb::ScreenResponse) -> serde_json::Value {
    let hits: Vec<_> = response.hits.iter().map(hit_json).collect();
    json!({"entries": response.entries, "hits": hits})
}

/// The answer to `entente screen` as text: one line per hit, its reasons below.
pub fn screen_text(response: &pb::ScreenResponse, min_score: f64) -> String {
    if response.hits.is_empty() {
        return format!(
            "no match scoring {min_score:.2} or more among {} watchlist entries\n",
            response.entries
        );
    }
    let width = |f: fn(&pb::ScreeningHit) -> &str, least: usize| {
        response
            .hits
            .iter()
            .map(|h| f(h).chars().count())
            .fold(least, usize::max)
    };
    let (lists, ids) = (width(|h| &h.list, 4), width(|h| &h.entry_id, 5));
    let mut out = format!(
        "{:<6}  {:<lists$}  {:<ids$}  {:<36}  {}\n",
        "SCORE", "LIST", "ENTRY", "MATCHED NAME", "PRIMARY NAME"
    );
    for h in &response.hits {
        let matched = if h.why.iter().any(|w| w == "alias") {
            format!("{} (alias)", h.matched_name)
        } else {
            h.matched_name.clone()
        };
        let _ = writeln!(
            out,
            "{:<6.3}  {:<lists$}  {:<ids$}  {:<36}  {}",
            h.score,
            h.list,
            h.entry_id,
            clip(&matched, 36),
            h.primary_name
        );
        let _ = writeln!(out, "        why: {}", h.why.join("; "));
    }
    let _ = writeln!(
        out,
        "{} match(es) among {} watchlist entries",
        response.hits.len(),
        response.entries
    );
    out
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

/// A millisecond timestamp as RFC 3339 in UTC, to the second (`2026-12-04T10:00:00Z`).
pub fn time_rfc3339(ms: i64) -> String {
    format!("{}Z", time_text(ms).replacen(' ', "T", 1))
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
        assert_eq!(time_rfc3339(1_796_300_000_000), "2026-12-03T12:13:20Z");
    }
}
