//! Corrections, retractions, consent to pass on and denial consultations: what a node
//! sends and what it does with what it receives (docs/lifecycle.md).
//!
//! Every message is an item of its own: sealed for one partner, queued in the durable
//! outbox with a delivery record, and settled by the partner's signed receipt, exactly as
//! reports are. What a message changes here (a new version, a tombstone, a consent's
//! state) is written in the same transaction as the message's outbox entry, or, for a
//! received one, as its replay record. This module holds the commands; `receive` what
//! a node does with the messages it is sent.

use prost::Message as _;
use tracing::{info, warn};

use super::{NodeError, Shared, off_the_reactor};

mod receive;
use crate::{
    audit::{Action, Event},
    control::current_caller,
    envelope,
    lifecycle::{self, Application},
    pb::{self, item::Body},
    policy::{Decision, ItemFacts},
    report,
    store::{self, Change, Sealed, StoredItem},
};

/// The rule named in the delivery record of a lifecycle message that no sharing rule
/// decided (retractions, consent and consultation messages).
pub const LIFECYCLE_RULE: &str = "lifecycle";

/// Why a received lifecycle message is refused: the reason sent back, and its detail.
type Refusal = (pb::RefusalReason, String);

/// Delivery states in which a partner has, or is about to have, an item.
fn was_sent(state: &str) -> bool {
    state == "delivered" || state == "queued"
}

fn parse_id(text: &str, what: &'static str) -> Result<[u8; 16], NodeError> {
    ulid::Ulid::from_string(text.trim())
        .map(|u| u.to_bytes())
        .map_err(|_| NodeError::NoSuch {
            what,
            id: text.to_owned(),
        })
}

fn id_text(id: &[u8; 16]) -> String {
    store::ulid_text(id)
}

/// A 16-byte id from a received message, or the refusal.
fn wire_id(bytes: &[u8], field: &str) -> Result<[u8; 16], Refusal> {
    <[u8; 16]>::try_from(bytes).map_err(|_| {
        (
            pb::RefusalReason::Malformed,
            format!("{field}: expected 16 bytes, found {}", bytes.len()),
        )
    })
}

fn refuse<T>(reason: pb::RefusalReason, detail: impl Into<String>) -> Result<T, Refusal> {
    Err((reason, detail.into()))
}

/// What a lifecycle command returns: the id concerned, the message and its decisions.
fn response(
    id: &[u8; 16],
    message: Option<[u8; 16]>,
    change: &[pb::DeliveryStatus],
) -> pb::LifecycleResponse {
    pb::LifecycleResponse {
        id: id_text(id),
        message_id: message.map(|m| id_text(&m)).unwrap_or_default(),
        decisions: change.to_vec(),
    }
}

fn queued_status(s: &Sealed) -> pb::DeliveryStatus {
    pb::DeliveryStatus {
        partner: s.partner.clone(),
        state: "queued".into(),
        detail: String::new(),
        rule: s.rule.clone(),
        redactions: s.redactions.clone(),
    }
}

impl Shared {
    /// Seals `body` for `partner` as message `id`.
    fn seal_body(
        &self,
        partner: &str,
        id: [u8; 16],
        body: Body,
        rule: &str,
        redactions: Vec<String>,
    ) -> Result<Sealed, NodeError> {
        let config = self.partner(partner).ok_or_else(|| {
            NodeError::NotAllowed(format!("{partner} is not a registered partner"))
        })?;
        let kind = lifecycle::body_kind(&body);
        let payload = pb::Item {
            body: Some(body),
            originator: String::new(),
        }
        .encode_to_vec();
        let envelope = envelope::seal(
            &self.own_keys().identity,
            partner,
            &self.sealing_keys(&config),
            id,
            kind,
            crate::now_ms(),
            &payload,
        )
        .map_err(|source| NodeError::Seal {
            partner: partner.to_owned(),
            source,
        })?;
        let digest = envelope::envelope_digest(&envelope);
        Ok(Sealed {
            partner: partner.to_owned(),
            envelope,
            digest,
            rule: rule.to_owned(),
            redactions,
        })
    }

    /// Seals `body` as message `id` for `partner`, queues it in `change` and returns its
    /// decision.
    fn queue_body(
        &self,
        change: &mut Change,
        partner: &str,
        id: [u8; 16],
        body: Body,
        what: &str,
    ) -> Result<pb::DeliveryStatus, NodeError> {
        let sealed = self.seal_body(partner, id, body, LIFECYCLE_RULE, Vec::new())?;
        change.queue(&id, &sealed);
        change.event(Event::new(Action::Queued, partner, &id_text(&id), what));
        Ok(queued_status(&sealed))
    }

    /// Makes a stored change durable and wakes the delivery tasks of the partners it
    /// queued messages for.
    async fn commit(
        &self,
        change: &Change,
        queued: &[pb::DeliveryStatus],
    ) -> Result<(), NodeError> {
        off_the_reactor(|| self.store.apply(change))?;
        self.store.flush().await?;
        self.wake(queued);
        Ok(())
    }

    fn wake(&self, queued: &[pb::DeliveryStatus]) {
        for d in queued.iter().filter(|d| d.state == "queued") {
            self.wake_partner(&d.partner);
        }
    }

    /// Counts a message queued for `partner` and wakes its delivery task.
    fn wake_partner(&self, partner: &str) {
        metrics::counter!(crate::metrics::QUEUED, "partner" => partner.to_owned()).increment(1);
        if let Some(n) = self.notifiers.get(partner) {
            n.notify_one();
        }
    }

    /// The own item `item_id`, if this node's agency created it and has not withdrawn it.
    fn own_item(&self, item_id: &str, doing: &str) -> Result<([u8; 16], StoredItem), NodeError> {
        let id = ulid::Ulid::from_string(item_id.trim())
            .map_err(|_| NodeError::NoSuchItem(item_id.to_owned()))?
            .to_bytes();
        let own = &self.config.agency;
        let Some(item) = self.store.item_at(&store::item_key(&id, own))? else {
            return Err(match self.store.item(&id)?.first() {
                Some(other) => NodeError::NotAllowed(format!(
                    "item {item_id} was created by {}; only its originator may {doing} it",
                    other.origin
                )),
                None => NodeError::NoSuchItem(item_id.to_owned()),
            });
        };
        if self.store.tombstone(&id, own)?.is_some() {
            return Err(NodeError::NotAllowed(format!(
                "item {item_id} was retracted; it cannot be {doing}ed"
            )));
        }
        Ok((id, item))
    }

    /// Issues version n+1 of own item `item_id`: stores it (keeping the earlier version)
    /// and sends it to every partner that was sent an earlier version, in the form the
    /// current policy gives each; a partner the policy now denies is recorded as withheld
    /// and keeps its earlier version. The handling may only stay or narrow.
    pub async fn correct(
        &self,
        item_id: &str,
        report: pb::Report,
        reason: &str,
    ) -> Result<pb::LifecycleResponse, NodeError> {
        let result = self.correct_checked(item_id, report, reason).await;
        if let Err(e) = &result {
            self.record_local_refusal("correction", item_id, e);
        }
        result
    }

    async fn correct_checked(
        &self,
        item_id: &str,
        report: pb::Report,
        reason: &str,
    ) -> Result<pb::LifecycleResponse, NodeError> {
        self.check_local_report(&report, "corrected report")?;
        let _turn = self.turn().await;
        let (id, held) = self.own_item(item_id, "correct")?;
        let original = held
            .report()
            .ok_or_else(|| NodeError::NotAllowed(format!("item {item_id} is not a report")))?;
        if report.kind != original.kind {
            return Err(NodeError::Invalid(format!(
                "kind: a correction keeps the item's kind ({}), found {}",
                report::kind_name(pb::ItemKind::try_from(original.kind).unwrap_or_default()),
                report::kind_name(report.kind())
            )));
        }
        lifecycle::check_not_wider(
            &original.handling.clone().unwrap_or_default(),
            &report.handling.clone().unwrap_or_default(),
        )
        .map_err(NodeError::Invalid)?;
        let version = held.version.max(1) + 1;
        let message = self.next_item_id();
        let now = crate::now_ms();
        let mut change = Change::new();
        change.put_version(&self.store, &held)?;
        let current = StoredItem {
            item: Some(pb::Item {
                body: Some(Body::Report(report.clone())),
                originator: String::new(),
            }),
            version,
            reason: reason.to_owned(),
            stored_at_ms: now,
            ..held.clone()
        };
        change.put_item(&self.store, &current)?;
        change.remove_screening(&id, &self.config.agency);
        change.put_correction_message(&self.store, &id, &message, version)?;
        let grants = self.store.grants(&id, &self.config.agency)?;
        let facts = ItemFacts {
            report: &report,
            origin: &self.config.agency,
            created_at_ms: held.created_at_ms,
            now_ms: now,
            consented_to: &grants,
        };
        let policy = self.policy();
        let mut decisions = Vec::new();
        for (partner, record) in self.store.deliveries(&id)? {
            if !was_sent(&record.state) {
                continue;
            }
            match policy.decide(&self.config.agency, &partner, &facts) {
                Decision::Share {
                    rule,
                    report,
                    redactions,
                } => {
                    let body = Body::Correction(pb::Correction {
                        item_id: id.to_vec(),
                        version,
                        report: Some(report),
                        reason: reason.to_owned(),
                    });
                    let sealed = self.seal_body(&partner, message, body, &rule, redactions)?;
                    change.queue(&message, &sealed);
                    change.event(Event::new(
                        Action::Queued,
                        &partner,
                        &id_text(&message),
                        format!(
                            "correction of {}, version {version}; rule {rule}",
                            id_text(&id)
                        ),
                    ));
                    decisions.push(queued_status(&sealed));
                }
                Decision::Deny { rule, reason } => {
                    let rule = rule.unwrap_or_default();
                    // The partner keeps what it was sent; only a retraction takes that back.
                    let reason = format!(
                        "{reason}; {partner} keeps the version it was last sent (retract the item to withdraw it)"
                    );
                    change.withhold(&message, &partner, &reason, &rule);
                    change.event(Event::new(
                        Action::Withheld,
                        &partner,
                        &id_text(&message),
                        format!("correction of {}: {reason}", id_text(&id)),
                    ));
                    decisions.push(pb::DeliveryStatus {
                        partner,
                        state: "withheld".into(),
                        detail: reason,
                        rule,
                        redactions: Vec::new(),
                    });
                }
            }
        }
        change.event(Event::new(
            Action::Corrected,
            &current_caller().audit_name,
            &id_text(&id),
            format!("version {version}; message {}", id_text(&message)),
        ));
        self.commit(&change, &decisions).await?;
        self.reindex(&current);
        info!(item_id = %id_text(&id), version, partners = decisions.len(), "corrected");
        Ok(response(&id, Some(message), &decisions))
    }

    /// Withdraws own item `item_id`: keeps a tombstone signed by this node, takes the item
    /// (and any correction of it) out of the outboxes where it still waits, and sends the
    /// tombstone to every partner that was sent the item, whatever the policy says now.
    pub async fn retract(
        &self,
        item_id: &str,
        reason: &str,
    ) -> Result<pb::LifecycleResponse, NodeError> {
        let _turn = self.turn().await;
        let (id, _) = self.own_item(item_id, "retract")?;
        let tombstone =
            lifecycle::sign_tombstone(&self.own_keys().identity, id, crate::now_ms(), reason);
        let message = self.next_item_id();
        let mut change = Change::new();
        change.put_tombstone(&self.store, &tombstone, None)?;
        change.put_retraction_message(&self.store, &id, &message)?;
        for (correction, _) in self.store.correction_messages(&id)? {
            for (partner, record) in self.store.deliveries(&correction)? {
                if record.state == "queued" {
                    change.recall(&partner, &correction, "retracted before delivery");
                }
            }
        }
        let mut decisions = Vec::new();
        for (partner, record) in self.store.deliveries(&id)? {
            if !was_sent(&record.state) {
                continue;
            }
            if record.state == "queued" {
                change.recall(&partner, &id, "retracted before delivery");
            }
            let body = Body::Retraction(pb::Retraction {
                tombstone: Some(tombstone.clone()),
            });
            let what = format!("retraction of {}", id_text(&id));
            // The item is withdrawn here whatever happens to the message: a partner it
            // cannot be sealed for (no longer registered, say) is recorded as withheld.
            match self.queue_body(&mut change, &partner, message, body, &what) {
                Ok(decision) => decisions.push(decision),
                Err(NodeError::Store(e)) => return Err(NodeError::Store(e)),
                Err(other) => {
                    let why = format!("the retraction cannot be sent: {other}");
                    warn!(partner = %partner, item_id = %id_text(&id), "{why}");
                    change.withhold(&message, &partner, &why, LIFECYCLE_RULE);
                    change.event(Event::new(
                        Action::Withheld,
                        &partner,
                        &id_text(&message),
                        format!("{what}: {why}"),
                    ));
                    decisions.push(pb::DeliveryStatus {
                        partner,
                        state: "withheld".into(),
                        detail: why,
                        rule: LIFECYCLE_RULE.into(),
                        redactions: Vec::new(),
                    });
                }
            }
        }
        change.event(Event::new(
            Action::Retracted,
            &current_caller().audit_name,
            &id_text(&id),
            format!("message {}", id_text(&message)),
        ));
        self.commit(&change, &decisions).await?;
        info!(item_id = %id_text(&id), partners = decisions.len(), "retracted");
        Ok(response(&id, Some(message), &decisions))
    }

    /// Asks the originator of held item `item_id` for consent to pass it to `third_party`.
    pub async fn request_consent(
        &self,
        item_id: &str,
        third_party: &str,
        note: &str,
    ) -> Result<pb::LifecycleResponse, NodeError> {
        crate::identity::validate_agency_id(third_party)
            .map_err(|e| NodeError::Invalid(format!("third agency {third_party:?}: {e}")))?;
        let id = ulid::Ulid::from_string(item_id.trim())
            .map_err(|_| NodeError::NoSuchItem(item_id.to_owned()))?
            .to_bytes();
        let _turn = self.turn().await;
        let copies = self.store.item(&id)?;
        let item = copies
            .iter()
            .find(|i| !i.own)
            .ok_or_else(|| match copies.first() {
                Some(_) => NodeError::NotAllowed(format!(
                    "item {item_id} is this agency's own: its sharing policy alone decides"
                )),
                None => NodeError::NoSuchItem(item_id.to_owned()),
            })?;
        let originator = item.origin.clone();
        if third_party == originator || third_party == self.config.agency {
            return Err(NodeError::Invalid(format!(
                "third agency: {third_party} is the originator or this agency; name the agency to pass the item to"
            )));
        }
        if self.partner(&originator).is_none() {
            return Err(NodeError::NotAllowed(format!(
                "originator {originator} is not a registered partner: a request cannot reach it"
            )));
        }
        let handling = item
            .report()
            .and_then(|r| r.handling.clone())
            .unwrap_or_default();
        if !handling.originator_control {
            return Err(NodeError::NotAllowed(format!(
                "item {item_id} is not originator-controlled: the sharing policy alone decides"
            )));
        }
        if handling.releasable_to.iter().any(|a| a == third_party) {
            return Err(NodeError::NotAllowed(format!(
                "item {item_id} is releasable to {third_party} already"
            )));
        }
        if self
            .store
            .grants(&id, &originator)?
            .iter()
            .any(|a| a == third_party)
        {
            return Err(NodeError::NotAllowed(format!(
                "{originator} has already consented to item {item_id} going to {third_party}"
            )));
        }
        let request = self.next_item_id();
        let consent = pb::Consent {
            request_id: id_text(&request),
            item_id: id_text(&id),
            requester: self.config.agency.clone(),
            originator: originator.clone(),
            third_party: third_party.to_owned(),
            note: note.to_owned(),
            state: "pending".into(),
            requested_at_ms: crate::now_ms(),
            incoming: false,
            ..Default::default()
        };
        let mut change = Change::new();
        change.put_consent(&self.store, &request, &consent)?;
        let body = Body::ConsentRequest(pb::ConsentRequest {
            item_id: id.to_vec(),
            third_party: third_party.to_owned(),
            note: note.to_owned(),
        });
        let what = format!("consent request: {} to {third_party}", id_text(&id));
        let decision = self.queue_body(&mut change, &originator, request, body, &what)?;
        change.event(Event::new(
            Action::Consent,
            &current_caller().audit_name,
            &id_text(&id),
            format!(
                "asked {originator} to release it to {third_party}; request {}",
                id_text(&request)
            ),
        ));
        self.commit(&change, std::slice::from_ref(&decision))
            .await?;
        Ok(response(&request, Some(request), &[decision]))
    }

    /// Grants or refuses consent request `request_id`, asked of this node as originator.
    pub async fn answer_consent(
        &self,
        request_id: &str,
        grant: bool,
        note: &str,
    ) -> Result<pb::LifecycleResponse, NodeError> {
        let request = parse_id(request_id, "consent request")?;
        let _turn = self.turn().await;
        let mut consent = self
            .store
            .consent(&request)?
            .ok_or_else(|| NodeError::NoSuch {
                what: "consent request",
                id: request_id.to_owned(),
            })?;
        if !consent.incoming {
            return Err(NodeError::NotAllowed(format!(
                "consent request {request_id} was asked by this node; only the item's originator, {}, answers it",
                consent.originator
            )));
        }
        if consent.state != "pending" {
            return Err(NodeError::NotAllowed(format!(
                "consent request {request_id} was answered already ({})",
                consent.state
            )));
        }
        if !grant && note.trim().is_empty() {
            return Err(NodeError::Invalid(
                "note: say why the request is refused (--note)".into(),
            ));
        }
        let item = parse_id(&consent.item_id, "item")?;
        if grant && self.store.tombstone(&item, &self.config.agency)?.is_some() {
            return Err(NodeError::NotAllowed(format!(
                "item {} was retracted; consent cannot be granted",
                consent.item_id
            )));
        }
        let message = self.next_item_id();
        consent.state = if grant { "granted" } else { "refused" }.into();
        consent.answer_note = note.to_owned();
        consent.answered_at_ms = crate::now_ms();
        consent.answer_id = id_text(&message);
        let mut change = Change::new();
        change.put_consent(&self.store, &request, &consent)?;
        let body = Body::ConsentAnswer(pb::ConsentAnswer {
            request_id: request.to_vec(),
            item_id: item.to_vec(),
            third_party: consent.third_party.clone(),
            granted: grant,
            note: note.to_owned(),
        });
        let what = format!(
            "consent answer: {} to {}: {}",
            consent.item_id, consent.third_party, consent.state
        );
        let decision = self.queue_body(&mut change, &consent.requester, message, body, &what)?;
        change.event(Event::new(
            Action::Consent,
            &current_caller().audit_name,
            &consent.item_id,
            format!(
                "{} {}'s request {} to release it to {}",
                consent.state, consent.requester, consent.request_id, consent.third_party
            ),
        ));
        self.commit(&change, std::slice::from_ref(&decision))
            .await?;
        Ok(response(&request, Some(message), &[decision]))
    }

    /// Matches `application` against the denial notifications received in the last three
    /// years and, unless `dry_run`, opens a consultation with the denying agency for each
    /// denial it essentially repeats (one per denial and application).
    pub async fn check_licence(
        &self,
        application: &Application,
        deadline_days: u32,
        dry_run: bool,
    ) -> Result<pb::CheckLicenceResponse, NodeError> {
        let now = crate::now_ms();
        let threshold = self.screening_threshold();
        let mut compared = std::collections::HashSet::new();
        let mut found: Vec<(StoredItem, lifecycle::DenialMatch)> = Vec::new();
        off_the_reactor(|| {
            self.store.each_item(|_, item| {
                let Some(denial) = item.report() else { return };
                if item.own || denial.kind != pb::ItemKind::DenialNotification as i32 {
                    return;
                }
                let at = lifecycle::denial_time_ms(denial, item.created_at_ms);
                if now - at > lifecycle::DENIAL_LOOKBACK_MS {
                    return;
                }
                // A denial held twice (from its originator and passed on) is one denial.
                if !compared.insert(item.item_id.clone()) {
                    return;
                }
                if let Some(m) = lifecycle::match_denial(application, denial, threshold) {
                    found.push((item, m));
                }
            })
        })?;
        let days = if deadline_days == 0 {
            self.config.lifecycle.consultation_days
        } else {
            deadline_days.min(365)
        };
        let deadline = now + i64::from(days) * 24 * 3600 * 1000;
        // The scan above only reads; what follows reads the application's record and the
        // consultations open for it, then writes them.
        let _turn = self.turn().await;
        let mut record = self
            .store
            .licence(&application.reference)?
            .unwrap_or_default();
        if !record.decision.is_empty() && !dry_run {
            return Err(NodeError::NotAllowed(format!(
                "application {} was decided already ({})",
                application.reference, record.decision
            )));
        }
        let open: Vec<pb::Consultation> = record
            .consultations
            .iter()
            .filter_map(|k| ulid::Ulid::from_string(k).ok())
            .filter_map(|k| self.store.consultation(&k.to_bytes()).ok().flatten())
            .collect();
        let mut change = Change::new();
        let mut matches = Vec::new();
        let mut queued = Vec::new();
        for (item, m) in &found {
            let denial = item.report().cloned().unwrap_or_default();
            let denial_id = store::id16(&item.item_id);
            let mut row = pb::DenialMatch {
                denial_id: id_text(&denial_id),
                denying_agency: item.origin.clone(),
                title: denial.title.clone(),
                denial_date: denial.denial_date.clone(),
                why: m.describe(),
                consultation_id: String::new(),
            };
            let already = open.iter().find(|k| k.denial_id == row.denial_id);
            if let Some(k) = already {
                row.consultation_id = k.id.clone();
            } else if !dry_run {
                if self.partner(&item.origin).is_none() {
                    row.why.push_str(&format!(
                        "; {} is not a registered partner, so no consultation was opened",
                        item.origin
                    ));
                } else {
                    let id = self.next_item_id();
                    let consultation = pb::Consultation {
                        id: id_text(&id),
                        denial_id: row.denial_id.clone(),
                        denying_agency: item.origin.clone(),
                        requester: self.config.agency.clone(),
                        application: Some(lifecycle::summary(application)),
                        requested_at_ms: now,
                        deadline_ms: deadline,
                        note: row.why.clone(),
                        state: "open".into(),
                        incoming: false,
                        denial_title: denial.title.clone(),
                        ..Default::default()
                    };
                    change.put_consultation(&self.store, &id, &consultation)?;
                    let body = Body::ConsultationRequest(pb::ConsultationRequest {
                        denial_id: denial_id.to_vec(),
                        application: Some(lifecycle::summary(application)),
                        deadline_ms: deadline,
                        note: row.why.clone(),
                    });
                    let what = format!("consultation on denial {}", row.denial_id);
                    queued.push(self.queue_body(&mut change, &item.origin, id, body, &what)?);
                    change.event(Event::new(
                        Action::Consultation,
                        &current_caller().audit_name,
                        &row.denial_id,
                        format!(
                            "opened {} with {} for application {}",
                            consultation.id, item.origin, application.reference
                        ),
                    ));
                    record.consultations.push(consultation.id.clone());
                    row.consultation_id = consultation.id;
                }
            }
            matches.push(row);
        }
        if !dry_run {
            record.reference = application.reference.clone();
            record.application = Some(lifecycle::summary(application));
            record.checked_at_ms = now;
            change.put_licence(&self.store, &record)?;
        }
        change.event(Event::new(
            Action::Licence,
            &current_caller().audit_name,
            "",
            format!(
                "checked application {}{}: {} denial(s) compared, {} matched",
                application.reference,
                if dry_run { " (dry run)" } else { "" },
                compared.len(),
                matches.len()
            ),
        ));
        self.commit(&change, &queued).await?;
        Ok(pb::CheckLicenceResponse {
            reference: application.reference.clone(),
            matches,
            denials_checked: u32::try_from(compared.len()).unwrap_or(u32::MAX),
        })
    }

    /// Records the decision on checked application `reference`. Granting it sends every
    /// agency consulted about it an undercut notice.
    pub async fn decide_licence(
        &self,
        reference: &str,
        grant: bool,
        note: &str,
    ) -> Result<pb::DecideLicenceResponse, NodeError> {
        let _turn = self.turn().await;
        let mut record = self
            .store
            .licence(reference)?
            .ok_or_else(|| NodeError::NoSuch {
                what: "checked licence application",
                id: reference.to_owned(),
            })?;
        if !record.decision.is_empty() {
            return Err(NodeError::NotAllowed(format!(
                "application {reference} was decided already ({})",
                record.decision
            )));
        }
        let now = crate::now_ms();
        record.decision = if grant { "granted" } else { "refused" }.into();
        record.decision_note = note.to_owned();
        record.decided_at_ms = now;
        let mut change = Change::new();
        let mut notices = Vec::new();
        let mut queued = Vec::new();
        let mut consultations = Vec::new();
        for k in &record.consultations {
            let id = parse_id(k, "consultation")?;
            let Some(mut consultation) = self.store.consultation(&id)? else {
                continue;
            };
            if grant {
                let message = self.next_item_id();
                let body = Body::UndercutNotice(pb::UndercutNotice {
                    consultation_id: id.to_vec(),
                    denial_id: parse_id(&consultation.denial_id, "denial")?.to_vec(),
                    reference: reference.to_owned(),
                    note: note.to_owned(),
                });
                let what = format!("undercut notice for consultation {k}");
                queued.push(self.queue_body(
                    &mut change,
                    &consultation.denying_agency,
                    message,
                    body,
                    &what,
                )?);
                consultation.state = "undercut".into();
                consultation.undercut_at_ms = now;
                consultation.undercut_note = note.to_owned();
                change.put_consultation(&self.store, &id, &consultation)?;
                change.event(Event::new(
                    Action::Consultation,
                    &consultation.denying_agency,
                    &consultation.denial_id,
                    format!("undercut notice {} for consultation {k}", id_text(&message)),
                ));
                notices.push(id_text(&message));
            }
            consultations.push(consultation);
        }
        change.put_licence(&self.store, &record)?;
        change.event(Event::new(
            Action::Licence,
            &current_caller().audit_name,
            "",
            format!("application {reference} {}", record.decision),
        ));
        self.commit(&change, &queued).await?;
        Ok(pb::DecideLicenceResponse {
            reference: reference.to_owned(),
            undercut_notices: notices,
            consultations,
        })
    }

    /// Replies to consultation `id`, opened with this node as the denying agency.
    pub async fn reply_consultation(
        &self,
        consultation_id: &str,
        objects: bool,
        note: &str,
    ) -> Result<pb::LifecycleResponse, NodeError> {
        let id = parse_id(consultation_id, "consultation")?;
        let _turn = self.turn().await;
        let mut consultation = self
            .store
            .consultation(&id)?
            .ok_or_else(|| NodeError::NoSuch {
                what: "consultation",
                id: consultation_id.to_owned(),
            })?;
        if !consultation.incoming {
            return Err(NodeError::NotAllowed(format!(
                "consultation {consultation_id} was opened by this node; only the denying agency, {}, replies to it",
                consultation.denying_agency
            )));
        }
        if consultation.replied_at_ms != 0 {
            return Err(NodeError::NotAllowed(format!(
                "consultation {consultation_id} was replied to already"
            )));
        }
        let message = self.next_item_id();
        // A reply after the undercut notice is still recorded; the undercut stands.
        if consultation.state != "undercut" {
            consultation.state = "answered".into();
        }
        consultation.objects = objects;
        consultation.reply_note = note.to_owned();
        consultation.replied_at_ms = crate::now_ms();
        let mut change = Change::new();
        change.put_consultation(&self.store, &id, &consultation)?;
        let body = Body::ConsultationReply(pb::ConsultationReply {
            consultation_id: id.to_vec(),
            denial_id: parse_id(&consultation.denial_id, "denial")?.to_vec(),
            objects,
            note: note.to_owned(),
        });
        let what = format!("reply to consultation {consultation_id}");
        let decision =
            self.queue_body(&mut change, &consultation.requester, message, body, &what)?;
        change.event(Event::new(
            Action::Consultation,
            &current_caller().audit_name,
            &consultation.denial_id,
            format!(
                "replied to {consultation_id} from {}: {}",
                consultation.requester,
                if objects { "objects" } else { "no objection" }
            ),
        ));
        self.commit(&change, std::slice::from_ref(&decision))
            .await?;
        Ok(response(&id, Some(message), &[decision]))
    }

    /// Updates the search index and the screening hits after an item's content changed.
    fn reindex(&self, item: &StoredItem) {
        let id = store::id16(&item.item_id);
        let key = store::item_key(&id, &item.sender);
        {
            let mut index = self.search_mut();
            index.remove(&key);
            if let Some(report) = item.report() {
                index.insert(&key, &item.sender, item.stored_at_ms, report);
            }
        }
        self.screen_stored(&item.sender, item);
    }
}

/// The state a consultation shows at `now_ms`: an open one past its deadline is overdue.
pub fn consultation_state(k: &pb::Consultation, now_ms: i64) -> String {
    if k.state == "open" && k.replied_at_ms == 0 && now_ms > k.deadline_ms {
        "overdue".into()
    } else {
        k.state.clone()
    }
}
