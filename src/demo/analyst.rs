//! The analyst part of the demo: JP-METI sends DE-BAFA an alert naming the consignee of
//! the suspicious-transaction reports of US-BIS and DE-BAFA, spelled its own way; DE-BAFA
//! links the alert with both. Then
//! DE-BAFA's analyst, with the example analyst certificate, connects to DE-BAFA's local
//! listener, searches by the subject's name and lists the link; the same analyst is
//! refused an operator's call, and a partner node's certificate is refused at the door.

use std::{path::Path, time::Duration};

use super::{DemoResult, by_agency, member_dir, wait_for_delivery};
use crate::{node::Node, pb, report};

/// The alert JP-METI sends.
const ALERT: &str = include_str!("../../examples/reports/alert-free-zone-broker.json");

/// What the analyst part showed.
pub(super) struct AnalystShown {
    /// Items the subject search found at DE-BAFA.
    pub(super) found: usize,
    /// DE-BAFA linked JP-METI's alert with US-BIS's report (and its own).
    pub(super) correlated: bool,
    /// The analyst was refused an operator's call.
    pub(super) operator_call_refused: bool,
    /// A partner node's certificate was refused on the local listener.
    pub(super) partner_refused: bool,
}

impl AnalystShown {
    pub(super) fn all(&self) -> bool {
        self.found >= 3 && self.correlated && self.operator_call_refused && self.partner_refused
    }
}

pub(super) async fn analyst_at_work(
    nodes: &[Node],
    material: &Path,
    lines: &mut Vec<String>,
) -> DemoResult<AnalystShown> {
    let jp = by_agency(nodes, "JP-METI")?;
    let alert = report::parse_report_json(ALERT, "JP-METI's alert")?;
    let sent = jp.shared().submit(alert).await?;
    wait_for_delivery(nodes, Duration::from_secs(30)).await;
    let de = by_agency(nodes, "DE-BAFA")?;
    let id = crate::store::ulid_text(&sent.item_id);
    let mut config = de.shared().config.clone();
    if let (Some(local), Some(addr)) = (config.local.as_mut(), de.local_addr()) {
        local.listen = addr;
    }
    let staff = member_dir(material, "DE-BAFA").join("staff");
    let mut analyst = crate::local::connect(
        &config,
        &staff.join("analyst.crt"),
        &staff.join("analyst.key"),
    )
    .await?;
    lines.push(String::new());
    lines.push(format!(
        "Analyst access (DE-BAFA's local listener {}, example analyst certificate):",
        config
            .local
            .as_ref()
            .map(|l| l.listen.to_string())
            .unwrap_or_default()
    ));
    let found = analyst
        .search_items(pb::SearchItemsRequest {
            subject: "Meridian Horizon Trading".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .items;
    lines.push(format!(
        "  search --subject \"Meridian Horizon Trading\": {} item(s), from {}",
        found.len(),
        found
            .iter()
            .map(|i| i.sender.as_str())
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    let links = analyst
        .list_correlations(pb::ListCorrelationsRequest {
            item_id: id.clone(),
            include_closed: false,
        })
        .await?
        .into_inner()
        .correlations;
    let correlated = links
        .iter()
        .any(|c| c.other_sender == "US-BIS" || c.sender == "US-BIS");
    for c in &links {
        if let Some(e) = c.evidence.first() {
            lines.push(format!(
                "  correlation: {}'s {:?} ~ {}'s {:?}, score {:.3} ({})",
                c.sender,
                e.subject,
                if c.other_sender.is_empty() {
                    &c.list
                } else {
                    &c.other_sender
                },
                e.matched,
                e.score,
                e.why.join("; ")
            ));
        }
    }
    let operator_call_refused = analyst
        .search_audit(pb::SearchAuditRequest::default())
        .await
        .is_err_and(|s| s.code() == tonic::Code::PermissionDenied);
    lines.push(format!(
        "  audit search by the analyst: {}",
        if operator_call_refused {
            "refused (an operator's call)"
        } else {
            "NOT REFUSED"
        }
    ));
    let partner_tls = member_dir(material, "US-BIS").join("tls");
    let partner_refused = crate::local::connect(
        &config,
        &partner_tls.join("node.crt"),
        &partner_tls.join("node.key"),
    )
    .await
    .is_err();
    lines.push(format!(
        "  US-BIS's node certificate on DE-BAFA's local listener: {}",
        if partner_refused {
            "refused at the handshake"
        } else {
            "NOT REFUSED"
        }
    ));
    Ok(AnalystShown {
        found: found.len(),
        correlated,
        operator_call_refused,
        partner_refused,
    })
}
