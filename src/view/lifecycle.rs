//! How the item lifecycle is shown: versions, retractions, consent requests and
//! consultations, as text and as JSON.

use std::fmt::Write as _;

use serde_json::json;

use super::{decisions_text, time_rfc3339, time_text};
use crate::{pb, report};

/// What a lifecycle command did (for `report correct|retract`, `consent`, `consultations
/// reply`).
pub fn lifecycle_text(verb: &str, r: &pb::LifecycleResponse) -> String {
    let mut out = if r.message_id.is_empty() || r.message_id == r.id {
        format!("{verb} {}\n", r.id)
    } else {
        format!("{verb} {} (message {})\n", r.id, r.message_id)
    };
    if r.decisions.is_empty() {
        out.push_str("  no partner had been sent it: nothing to send\n");
    }
    out.push_str(&decisions_text(&r.decisions));
    out
}

fn statuses_json(statuses: &[pb::DeliveryStatus]) -> Vec<serde_json::Value> {
    statuses
        .iter()
        .map(
            |d| json!({"partner": d.partner, "state": d.state, "rule": d.rule, "detail": d.detail}),
        )
        .collect()
}

/// A consent request as JSON.
pub fn consent_json(c: &pb::Consent) -> serde_json::Value {
    json!({
        "request_id": c.request_id,
        "item_id": c.item_id,
        "direction": if c.incoming { "asked of us" } else { "asked by us" },
        "requester": c.requester,
        "originator": c.originator,
        "third_party": c.third_party,
        "state": c.state,
        "note": c.note,
        "answer_note": c.answer_note,
        "requested_at": time_rfc3339(c.requested_at_ms),
        "answered_at": (c.answered_at_ms != 0).then(|| time_rfc3339(c.answered_at_ms)),
    })
}

/// Consent requests as a table.
pub fn consents_text(consents: &[pb::Consent]) -> String {
    if consents.is_empty() {
        return "no consent requests\n".to_owned();
    }
    let mut out = format!(
        "{:<26}  {:<11}  {:<26}  {:<9}  {:<9}  {:<9}  {}\n",
        "REQUEST", "DIRECTION", "ITEM", "ASKED BY", "DECIDER", "FOR", "STATE"
    );
    for c in consents {
        let direction = if c.incoming {
            "asked of us"
        } else {
            "asked by us"
        };
        let _ = writeln!(
            out,
            "{:<26}  {:<11}  {:<26}  {:<9}  {:<9}  {:<9}  {}",
            c.request_id, direction, c.item_id, c.requester, c.originator, c.third_party, c.state
        );
        if !c.note.is_empty() {
            let _ = writeln!(out, "    note: {}", c.note);
        }
        if !c.answer_note.is_empty() {
            let _ = writeln!(out, "    answer: {}", c.answer_note);
        }
    }
    out
}

/// A consultation as JSON.
pub fn consultation_json(k: &pb::Consultation) -> serde_json::Value {
    let app = k.application.clone().unwrap_or_default();
    json!({
        "id": k.id,
        "direction": if k.incoming { "opened with us" } else { "opened by us" },
        "state": k.state,
        "denial_id": k.denial_id,
        "denial_title": k.denial_title,
        "denying_agency": k.denying_agency,
        "requester": k.requester,
        "application": {
            "reference": app.reference,
            "control_entries": app.control_entries,
            "parties": app.parties,
            "destination": app.destination,
        },
        "requested_at": time_rfc3339(k.requested_at_ms),
        "deadline": time_rfc3339(k.deadline_ms),
        "note": k.note,
        "objects": (k.replied_at_ms != 0).then_some(k.objects),
        "reply_note": k.reply_note,
        "replied_at": (k.replied_at_ms != 0).then(|| time_rfc3339(k.replied_at_ms)),
        "undercut_at": (k.undercut_at_ms != 0).then(|| time_rfc3339(k.undercut_at_ms)),
        "undercut_note": k.undercut_note,
    })
}

/// Consultations as a table, each with what matched and its reply.
pub fn consultations_text(consultations: &[pb::Consultation]) -> String {
    if consultations.is_empty() {
        return "no consultations\n".to_owned();
    }
    let mut out = format!(
        "{:<26}  {:<14}  {:<8}  {:<9}  {:<9}  {:<19}  {}\n",
        "CONSULTATION",
        "DIRECTION",
        "STATE",
        "DENIED BY",
        "ASKED BY",
        "DEADLINE (UTC)",
        "APPLICATION"
    );
    for k in consultations {
        let direction = if k.incoming {
            "opened with us"
        } else {
            "opened by us"
        };
        let reference = k
            .application
            .as_ref()
            .map(|a| a.reference.as_str())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "{:<26}  {:<14}  {:<8}  {:<9}  {:<9}  {:<19}  {reference}",
            k.id,
            direction,
            k.state,
            k.denying_agency,
            k.requester,
            time_text(k.deadline_ms)
        );
        let _ = writeln!(out, "    denial {}: {}", k.denial_id, k.denial_title);
        if !k.note.is_empty() {
            let _ = writeln!(out, "    matched: {}", k.note);
        }
        if k.replied_at_ms != 0 {
            let position = if k.objects { "objects" } else { "no objection" };
            let _ = writeln!(out, "    reply: {position}: {}", k.reply_note);
        }
        if k.undercut_at_ms != 0 {
            let _ = writeln!(
                out,
                "    undercut {} UTC: {}",
                time_text(k.undercut_at_ms),
                k.undercut_note
            );
        }
    }
    out
}

/// What a licence check found, as text.
pub fn licence_check_text(r: &pb::CheckLicenceResponse, dry_run: bool) -> String {
    let mut out = format!(
        "application {}: {} denial notification(s) compared, {} essentially identical\n",
        r.reference,
        r.denials_checked,
        r.matches.len()
    );
    for m in &r.matches {
        let _ = writeln!(
            out,
            "  denial {} by {} ({}): {}",
            m.denial_id, m.denying_agency, m.denial_date, m.title
        );
        let _ = writeln!(out, "    {}", m.why);
        if !m.consultation_id.is_empty() {
            let _ = writeln!(out, "    consultation {}", m.consultation_id);
        } else if dry_run {
            out.push_str("    (dry run: no consultation opened)\n");
        }
    }
    out
}

/// What a licence check found, as JSON.
pub fn licence_check_json(r: &pb::CheckLicenceResponse) -> serde_json::Value {
    let matches: Vec<_> = r
        .matches
        .iter()
        .map(|m| {
            json!({"denial_id": m.denial_id, "denying_agency": m.denying_agency, "title": m.title,
                   "denial_date": m.denial_date, "why": m.why, "consultation_id": m.consultation_id})
        })
        .collect();
    json!({"reference": r.reference, "denials_checked": r.denials_checked, "matches": matches})
}

/// The lifecycle part of `report show`, as text.
pub(super) fn item_lifecycle_text(item: &pb::GetItemResponse, out: &mut String) {
    if let Some(t) = &item.tombstone {
        let _ = writeln!(
            out,
            "retracted   {} UTC by {}: {}",
            time_text(t.retracted_at_ms),
            t.originator,
            t.reason
        );
    }
    if !item.retraction.is_empty() {
        out.push_str("retraction acknowledged\n");
        for d in &item.retraction {
            let ack = if d.state == "delivered" {
                "yes (signed receipt)"
            } else {
                "not yet"
            };
            let _ = writeln!(out, "  {:<10} {ack}; {}", d.partner, d.state);
        }
    }
    if item.version > 1 {
        let _ = writeln!(
            out,
            "version     {} (earlier: {}): {}",
            item.version,
            item.history.len(),
            item.reason
        );
        for v in &item.history {
            let title = v.report.as_ref().map(|r| r.title.as_str()).unwrap_or("");
            let _ = writeln!(
                out,
                "  v{}  stored {} UTC  {title}",
                v.version,
                time_text(v.stored_at_ms)
            );
        }
    }
    if !item.corrections.is_empty() {
        out.push_str("corrections\n");
        out.push_str(&decisions_text(&item.corrections));
    }
    if !item.consents.is_empty() {
        out.push_str("consent\n");
        for c in &item.consents {
            let _ = writeln!(
                out,
                "  {} {} for {}: {}",
                c.request_id, c.requester, c.third_party, c.state
            );
        }
    }
}

/// The lifecycle part of `report show --json`.
pub(super) fn item_lifecycle_json(
    item: &pb::GetItemResponse,
    obj: &mut serde_json::Map<String, serde_json::Value>,
) {
    obj.insert("version".into(), item.version.max(1).into());
    obj.insert("reason".into(), item.reason.clone().into());
    let history: Vec<_> = item
        .history
        .iter()
        .map(|v| {
            json!({"version": v.version, "stored_at": time_rfc3339(v.stored_at_ms), "reason": v.reason,
                   "report": v.report.as_ref().map(report::report_to_json)})
        })
        .collect();
    obj.insert("history".into(), history.into());
    let tombstone = item.tombstone.as_ref().map(|t| {
        json!({"originator": t.originator, "retracted_at": time_rfc3339(t.retracted_at_ms),
               "reason": t.reason, "signer_key_id": hex::encode(&t.signer_key_id)})
    });
    obj.insert("tombstone".into(), tombstone.into());
    obj.insert("retraction".into(), statuses_json(&item.retraction).into());
    obj.insert(
        "corrections".into(),
        statuses_json(&item.corrections).into(),
    );
    let consents: Vec<_> = item.consents.iter().map(consent_json).collect();
    obj.insert("consents".into(), consents.into());
}
