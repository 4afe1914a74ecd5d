//! The lifecycle part of the demo: what happens to items after they were sent.
//!
//! - US-BIS corrects its suspicious-transaction report; DE-BAFA, which received the first
//!   version, shows the second and keeps the first in the item's history.
//! - DE-BAFA withdraws its vessel alert; US-BIS and JP-METI delete the content, keep
//!   DE-BAFA's signed tombstone, and acknowledge; DE-BAFA's `report show` lists both.
//! - JP-METI checks a licence application that repeats US-BIS's denial (same control
//!   entry, the consignee spelled its own way); a consultation goes to US-BIS, which
//!   objects; JP-METI grants the licence anyway, and US-BIS receives the undercut notice.

use std::time::Duration;

use super::{DemoResult, by_agency, wait_for_delivery};
use crate::{control, lifecycle, node::Node, store::ulid_text};

/// JP-METI's licence application: US-BIS's denied transaction, in other words.
const APPLICATION: &str = r#"{
    "reference": "JP-LIC-2026-0815",
    "applicant": "Kansai Photonics K.K.",
    "parties": [
        {"name": "CALDERA SECURE NETWORKS", "role": "consignee", "country": "KZ"},
        {"name": "Eastern Relay Communications", "role": "end-user", "country": "KZ"}
    ],
    "goods": [
        {"description": "100G network encryptors", "control_entry": "5A002.a", "hs_code": "851762"}
    ],
    "destination": "KZ"
}"#;

/// What the lifecycle part showed.
pub(super) struct LifecycleShown {
    /// DE-BAFA shows version 2 of US-BIS's report, with version 1 in its history.
    pub(super) corrected: bool,
    /// Both partners acknowledged DE-BAFA's retraction and hold only the tombstone.
    pub(super) retracted: bool,
    /// The consultation went to US-BIS, was answered, and ended undercut at US-BIS.
    pub(super) consulted: bool,
}

impl LifecycleShown {
    pub(super) fn all(&self) -> bool {
        self.corrected && self.retracted && self.consulted
    }
}

/// `str_id` is US-BIS's report (received by DE-BAFA), `alert_id` DE-BAFA's alert
/// (received by US-BIS and JP-METI).
pub(super) async fn lifecycle_at_work(
    nodes: &[Node],
    str_id: [u8; 16],
    alert_id: [u8; 16],
    lines: &mut Vec<String>,
) -> DemoResult<LifecycleShown> {
    lines.push(String::new());
    lines.push("After sending (corrections, retractions, consultations):".into());
    let corrected = correction(nodes, str_id, lines).await?;
    let retracted = retraction(nodes, alert_id, lines).await?;
    let consulted = consultation(nodes, lines).await?;
    Ok(LifecycleShown {
        corrected,
        retracted,
        consulted,
    })
}

async fn correction(nodes: &[Node], id: [u8; 16], lines: &mut Vec<String>) -> DemoResult<bool> {
    let us = by_agency(nodes, "US-BIS")?.shared();
    let de = by_agency(nodes, "DE-BAFA")?.shared();
    let text = ulid_text(&id);
    let mut report = us
        .store
        .item(&id)?
        .into_iter()
        .find(|i| i.own)
        .and_then(|i| i.report().cloned())
        .ok_or("US-BIS does not hold its own report")?;
    report
        .red_flags
        .push("the forwarding agent named on the airway bill is the consignee's director".into());
    let done = us
        .correct(
            &text,
            report,
            "a red flag was missing from the first version",
        )
        .await?;
    wait_for_delivery(nodes, Duration::from_secs(10)).await;
    let shown = control::get_item(&de.store, &text)?;
    let corrected = shown.version == 2
        && shown.history.len() == 1
        && done.decisions.iter().any(|d| d.partner == "DE-BAFA");
    lines.push(format!(
        "  correction: US-BIS issues version 2 of its STR ({}); DE-BAFA shows version {} \
         with {} earlier version(s) kept",
        queued_to(&done.decisions),
        shown.version,
        shown.history.len()
    ));
    Ok(corrected)
}

async fn retraction(nodes: &[Node], id: [u8; 16], lines: &mut Vec<String>) -> DemoResult<bool> {
    let de = by_agency(nodes, "DE-BAFA")?.shared();
    let text = ulid_text(&id);
    let done = de
        .retract(&text, "the vessel was misidentified: wrong IMO number")
        .await?;
    wait_for_delivery(nodes, Duration::from_secs(10)).await;
    let acks = control::get_item(&de.store, &text)?.retraction;
    let acknowledged: Vec<&str> = acks
        .iter()
        .filter(|d| d.state == "delivered")
        .map(|d| d.partner.as_str())
        .collect();
    let mut gone = true;
    for agency in ["US-BIS", "JP-METI"] {
        let held = by_agency(nodes, agency)?.shared();
        gone &= held.store.item(&id)?.is_empty() && held.store.tombstone(&id, "DE-BAFA")?.is_some();
    }
    lines.push(format!(
        "  retraction: DE-BAFA withdraws its vessel alert ({}); acknowledged by {}; \
         content deleted and signed tombstone kept at both: {}",
        queued_to(&done.decisions),
        super::or_none(&acknowledged.join(" and ")),
        super::yes_no(gone)
    ));
    Ok(gone && acknowledged.len() == 2)
}

async fn consultation(nodes: &[Node], lines: &mut Vec<String>) -> DemoResult<bool> {
    let us = by_agency(nodes, "US-BIS")?.shared();
    let jp = by_agency(nodes, "JP-METI")?.shared();
    let application = lifecycle::parse_application(APPLICATION, "JP-METI's application")?;
    let checked = jp.check_licence(&application, 0, false).await?;
    let Some(found) = checked.matches.first() else {
        lines.push(format!(
            "  consultation: JP-METI's application {} matched NO denial ({} compared)",
            checked.reference, checked.denials_checked
        ));
        return Ok(false);
    };
    lines.push(format!(
        "  consultation: JP-METI's application {} repeats {}'s denial {:?}\n           ({}); \
         consultation {} opened",
        checked.reference, found.denying_agency, found.title, found.why, found.consultation_id
    ));
    wait_for_delivery(nodes, Duration::from_secs(10)).await;
    us.reply_consultation(
        &found.consultation_id,
        true,
        "the end user supplies the state security service",
    )
    .await?;
    wait_for_delivery(nodes, Duration::from_secs(10)).await;
    let request = crate::pb::ListConsultationsRequest { as_of_ms: 0 };
    let state_at = |node: &crate::node::Shared| -> DemoResult<String> {
        Ok(control::list_consultations(&node.store, &request)?
            .consultations
            .into_iter()
            .find(|k| k.id == found.consultation_id)
            .map(|k| k.state)
            .unwrap_or_default())
    };
    let answered = state_at(jp)?;
    let decided = jp
        .decide_licence(
            &checked.reference,
            true,
            "end use verified by an on-site inspection",
        )
        .await?;
    wait_for_delivery(nodes, Duration::from_secs(10)).await;
    let at_us = state_at(us)?;
    lines.push(format!(
        "           US-BIS replies (objects); JP-METI sees it {answered}, grants the licence \
         anyway and sends {} undercut notice(s); US-BIS sees the consultation {at_us}",
        decided.undercut_notices.len()
    ));
    Ok(answered == "answered" && at_us == "undercut")
}

fn queued_to(decisions: &[crate::pb::DeliveryStatus]) -> String {
    let to: Vec<&str> = decisions
        .iter()
        .filter(|d| d.state == "queued")
        .map(|d| d.partner.as_str())
        .collect();
    format!("sent to {}", super::or_none(&to.join(", ")))
}

/// The denial as the demo submits it: dated a few weeks ago, so that it stays within the
/// three years a consultation looks back whenever the demo runs.
pub(super) fn recent_denial(mut report: crate::pb::Report) -> crate::pb::Report {
    if report.kind() == crate::pb::ItemKind::DenialNotification {
        let weeks_ago = time::OffsetDateTime::now_utc() - time::Duration::weeks(6);
        let date = weeks_ago.date();
        report.denial_date = format!(
            "{:04}-{:02}-{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_application_is_accepted_and_the_denial_is_redated() {
        lifecycle::parse_application(APPLICATION, "demo").unwrap();
        let denial = crate::report::parse_report_json(
            include_str!("../../examples/reports/denial-dual-use.json"),
            "denial",
        )
        .unwrap();
        let dated = recent_denial(denial);
        let at = lifecycle::denial_time_ms(&dated, 0);
        let age = crate::now_ms() - at;
        assert!(
            age > 0 && age < lifecycle::DENIAL_LOOKBACK_MS,
            "{}",
            dated.denial_date
        );
    }
}
