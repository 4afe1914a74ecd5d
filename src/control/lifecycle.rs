//! The control calls of the item lifecycle: corrections, retractions, consent and
//! consultations, and what `report show` adds about them.

use crate::{
    node::{NodeError, consultation_state},
    pb, store,
};

/// Consent requests, newest first; the same for the socket and for a stopped node.
pub fn list_consents(store: &store::Store) -> Result<pb::ListConsentsResponse, NodeError> {
    super::record_query(store, "consent list", "")?;
    Ok(pb::ListConsentsResponse {
        consents: store.consents()?,
    })
}

/// Consultations, newest first, an open one past its deadline (at `request.as_of_ms`, or
/// now) shown as overdue; the same for the socket and for a stopped node.
pub fn list_consultations(
    store: &store::Store,
    request: &pb::ListConsultationsRequest,
) -> Result<pb::ListConsultationsResponse, NodeError> {
    super::record_query(store, "consultations", "")?;
    let now = match request.as_of_ms {
        0 => crate::now_ms(),
        at => at,
    };
    let consultations = store
        .consultations()?
        .into_iter()
        .map(|mut k| {
            k.state = consultation_state(&k, now);
            k
        })
        .collect();
    Ok(pb::ListConsultationsResponse { consultations })
}

/// The lifecycle of item `id` as `report show` gives it: versions, the tombstone, the
/// acknowledgements of the retraction, the corrections sent, and consent requests.
pub(super) fn add_lifecycle(
    store: &store::Store,
    id: &[u8; 16],
    item: Option<&store::StoredItem>,
    response: &mut pb::GetItemResponse,
) -> Result<(), NodeError> {
    if let Some(item) = item {
        response.version = item.version.max(1);
        response.reason = item.reason.clone();
        response.history = store
            .versions(id, &item.sender)?
            .into_iter()
            .map(|v| pb::ItemVersion {
                version: v.version.max(1),
                stored_at_ms: v.stored_at_ms,
                report: v.report().cloned(),
                reason: v.reason.clone(),
            })
            .collect();
        if item.own {
            for (message, version) in store.correction_messages(id)? {
                for (partner, r) in store.deliveries(&message)? {
                    response.corrections.push(pb::DeliveryStatus {
                        partner,
                        state: r.state,
                        detail: format!("version {version}{}", detail_suffix(&r.detail)),
                        rule: r.rule,
                        redactions: r.redactions,
                    });
                }
            }
            if let Some(message) = store.retraction_message(id)? {
                for (partner, r) in store.deliveries(&message)? {
                    response.retraction.push(pb::DeliveryStatus {
                        partner,
                        state: r.state,
                        detail: r.detail,
                        rule: r.rule,
                        redactions: r.redactions,
                    });
                }
            }
        }
    }
    response.tombstone = store.tombstones_of(id)?.into_iter().next();
    let text = store::ulid_text(id);
    response.consents = store
        .consents()?
        .into_iter()
        .filter(|c| c.item_id == text)
        .collect();
    Ok(())
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}
