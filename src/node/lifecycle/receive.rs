//! What a node does with a lifecycle message it receives: the checks against what it holds
//! (the refusals a sender is told), and the change each message makes, stored in one
//! transaction with the message's replay record.

use tracing::warn;

use super::{LIFECYCLE_RULE, Refusal, id_text, refuse, was_sent, wire_id};
use crate::{
    audit::{Action, Event},
    lifecycle,
    node::{NodeError, Shared, Turn},
    pb::{self, item::Body},
    report,
    store::{self, Change, Incoming, Received, StoreError, StoredItem},
};

impl Shared {
    /// Handles a received lifecycle message from `sender` (already opened and checked as
    /// an envelope): checks it against what this node holds, applies it and records it.
    /// A message that does not fit is [`Received::Refused`]; `Err` is a storage failure.
    pub(crate) fn receive_lifecycle(
        &self,
        turn: &Turn<'_>,
        sender: &str,
        incoming: &Incoming,
    ) -> Result<Received, StoreError> {
        let Some(body) = incoming.item.item.as_ref().and_then(|i| i.body.as_ref()) else {
            return Ok(Received::Refused(
                pb::RefusalReason::Malformed,
                "empty item body".into(),
            ));
        };
        let message = store::id16(&incoming.item.item_id);
        // A redelivered message is answered as before, whatever has changed since.
        match self.store.seen_before(sender, &message, &incoming.digest)? {
            Some(true) => return self.seen_again(sender, &message, Received::Duplicate),
            Some(false) => return self.seen_again(sender, &message, Received::Replay),
            None => {}
        }
        let mut change = Change::new();
        change.seen(sender, &message, incoming.digest);
        let checked = match body {
            Body::Correction(c) => self.take_correction(sender, c, &mut change),
            Body::Retraction(r) => self.take_retraction(sender, r, &mut change),
            Body::ConsentRequest(r) => self.take_consent_request(sender, &message, r, &mut change),
            Body::ConsentAnswer(a) => self.take_consent_answer(sender, &message, a, &mut change),
            Body::ConsultationRequest(r) => {
                self.take_consultation(sender, &message, r, &mut change)
            }
            Body::ConsultationReply(r) => self.take_consultation_reply(sender, r, &mut change),
            Body::UndercutNotice(n) => self.take_undercut(sender, n, &mut change),
            Body::Report(_) | Body::WatchlistDelta(_) => {
                return Ok(Received::Refused(
                    pb::RefusalReason::Malformed,
                    "not a lifecycle message".into(),
                ));
            }
        };
        let after = match checked {
            Ok(after) => after,
            Err(StepError::Refused((reason, detail))) => {
                warn!(partner = sender, item_id = %id_text(&message), reason = reason.as_str_name(), detail = %detail, "refused lifecycle message");
                return Ok(Received::Refused(reason, detail));
            }
            Err(StepError::Store(e)) => return Err(e),
        };
        let outcome = self.store.apply(&change)?;
        if outcome != Received::Stored {
            return self.seen_again(sender, &message, outcome);
        }
        // Messages this one caused (a retraction passed on) go out now.
        for partner in change.queued_partners() {
            self.wake_partner(partner);
        }
        match after {
            After::Nothing => {}
            After::Reindex(item) => self.reindex(&item),
            After::Unindex(keys) => {
                let mut index = self.search_mut();
                for key in &keys {
                    index.remove(key);
                }
            }
            After::ShareAgain(item) => match self.reshare(turn, &item) {
                Ok(done) => self.announce(&done),
                Err(e) => {
                    warn!(item_id = %id_text(&item), error = %e, "cannot share the item after the consent")
                }
            },
        }
        Ok(outcome)
    }

    /// Records a message whose id was seen before: the same envelope again (acknowledged,
    /// nothing changes) or another one with that id (refused as a replay).
    fn seen_again(
        &self,
        sender: &str,
        message: &[u8; 16],
        outcome: Received,
    ) -> Result<Received, StoreError> {
        let (action, detail) = match outcome {
            Received::Duplicate => (Action::Received, "duplicate: already applied"),
            _ => (Action::Refused, "replay: item id reused"),
        };
        self.store
            .record(&[Event::new(action, sender, &id_text(message), detail)])?;
        Ok(outcome)
    }

    fn take_correction(&self, sender: &str, c: &pb::Correction, change: &mut Change) -> Step {
        let id = wire_id(&c.item_id, "correction item_id")?;
        let key = store::item_key(&id, sender);
        let Some(held) = self.store.item_at(&key)? else {
            if self.store.tombstone(&id, sender)?.is_some() {
                change.event(Event::new(
                    Action::Corrected,
                    sender,
                    &id_text(&id),
                    "ignored: the item was retracted",
                ));
                return Ok(After::Nothing);
            }
            return Err(match self.store.item(&id)?.first() {
                Some(other) => not_originator(sender, &id, &other.origin),
                None => StepError::Refused((
                    pb::RefusalReason::UnknownItem,
                    format!("no item {} from {sender} is held", id_text(&id)),
                )),
            });
        };
        if held.origin != sender {
            return Err(not_originator(sender, &id, &held.origin));
        }
        let report = c.report.clone().ok_or_else(|| {
            StepError::Refused((
                pb::RefusalReason::Malformed,
                "correction without a report".into(),
            ))
        })?;
        report::validate(&report, &format!("correction from {sender}"))
            .map_err(|e| StepError::Refused((pb::RefusalReason::Malformed, e.to_string())))?;
        self.config
            .limits
            .check_recipients(&report)
            .map_err(|why| StepError::Refused((pb::RefusalReason::Malformed, why)))?;
        if report.kind != held.kind {
            return refuse(
                pb::RefusalReason::Malformed,
                "a correction must keep the item's kind",
            )
            .map_err(StepError::Refused);
        }
        let handling = |r: &pb::Report| r.handling.clone().unwrap_or_default();
        if let Some(before) = held.report() {
            lifecycle::check_not_wider(&handling(before), &handling(&report))
                .map_err(|e| StepError::Refused((pb::RefusalReason::Malformed, e)))?;
        }
        if c.version <= held.version.max(1) {
            change.event(Event::new(
                Action::Corrected,
                sender,
                &id_text(&id),
                format!(
                    "ignored: version {} is not newer than version {}",
                    c.version,
                    held.version.max(1)
                ),
            ));
            return Ok(After::Nothing);
        }
        change.put_version(&self.store, &held)?;
        let current = StoredItem {
            item: Some(pb::Item {
                body: Some(Body::Report(report)),
                originator: String::new(),
            }),
            version: c.version,
            reason: c.reason.clone(),
            stored_at_ms: crate::now_ms(),
            ..held
        };
        change.put_item(&self.store, &current)?;
        change.remove_screening(&id, sender);
        change.event(Event::new(
            Action::Corrected,
            sender,
            &id_text(&id),
            format!("version {}", c.version),
        ));
        Ok(After::Reindex(Box::new(current)))
    }

    fn take_retraction(&self, sender: &str, r: &pb::Retraction, change: &mut Change) -> Step {
        let t = r.tombstone.as_ref().ok_or_else(|| {
            StepError::Refused((
                pb::RefusalReason::Malformed,
                "retraction without a tombstone".into(),
            ))
        })?;
        let id = wire_id(&t.item_id, "tombstone item_id")?;
        let copies = self.store.item(&id)?;
        // Every copy held has one originator: a report reusing an id held from another
        // originator is refused on receipt. The tombstone must name that originator, and
        // this node's own items are withdrawn here alone, never on a partner's word.
        if let Some(copy) = copies.iter().find(|c| c.own || c.origin != t.originator) {
            return Err(not_originator(&t.originator, &id, &copy.origin));
        }
        // A retraction comes from the originator, or from a partner that passed the item
        // on to this node.
        if t.originator != sender && !copies.iter().any(|c| c.sender == sender) {
            if self.store.tombstone(&id, &t.originator)?.is_some() {
                return Ok(tombstone_held(sender, &id, change));
            }
            return Err(not_originator(sender, &id, &t.originator));
        }
        // The originator's signature is checked whenever this node holds its keys. A
        // partner passing on the retraction of an item from an agency this node does not
        // know is believed for the copies it delivered itself, and no others.
        let vouched_by = match self.partner_keys(&t.originator) {
            Some(keys) => {
                lifecycle::verify_tombstone(t, &t.originator, &keys).map_err(StepError::Refused)?;
                None
            }
            None if t.originator == sender => {
                return refuse(
                    pb::RefusalReason::UnknownKey,
                    "no keys are held for the sender",
                )
                .map_err(StepError::Refused);
            }
            None => Some(sender),
        };
        let erased: Vec<&StoredItem> = copies
            .iter()
            .filter(|c| vouched_by.is_none() || c.sender == sender)
            .collect();
        let upgrade =
            vouched_by.is_none() && self.store.tombstone_voucher(&id, &t.originator)?.is_some();
        if erased.is_empty() && !upgrade && self.store.tombstone(&id, &t.originator)?.is_some() {
            return Ok(tombstone_held(sender, &id, change));
        }
        for copy in &erased {
            change.erase_item(&self.store, &id, &copy.sender)?;
        }
        if erased.len() == copies.len() {
            change.remove_grants(&self.store, &id, &t.originator)?;
        }
        change.put_tombstone(&self.store, t, vouched_by)?;
        self.pass_retraction_on(&id, &t.originator, r, change)?;
        let kept = copies.len() - erased.len();
        let detail = match (erased.is_empty(), vouched_by) {
            (true, _) => "tombstone kept (the item was not held)".to_owned(),
            (false, None) => "content deleted; tombstone kept".to_owned(),
            (false, Some(_)) => format!(
                "content {sender} delivered deleted on its word (no keys of {} are held to \
                 check the tombstone); {kept} copy(ies) from other partners kept",
                t.originator
            ),
        };
        change.event(Event::new(Action::Retracted, sender, &id_text(&id), detail));
        Ok(After::Unindex(
            erased
                .iter()
                .map(|c| store::item_key(&id, &c.sender))
                .collect(),
        ))
    }

    /// Queues retraction `r` of item `id` (by `origin`) for every partner this node passed
    /// the item on to. A partner it cannot be sealed for (no longer registered, no keys)
    /// is recorded as withheld, so that the withdrawal still takes effect here.
    fn pass_retraction_on(
        &self,
        id: &[u8; 16],
        origin: &str,
        r: &pb::Retraction,
        change: &mut Change,
    ) -> Result<(), StepError> {
        let message = self.next_item_id();
        for (partner, record) in self.store.deliveries(id)? {
            if !was_sent(&record.state) || partner == origin {
                continue;
            }
            if record.state == "queued" {
                change.recall(&partner, id, "retracted by its originator before delivery");
            }
            let body = Body::Retraction(r.clone());
            let what = format!("retraction of {} by {origin}, passed on", id_text(id));
            match self.queue_body(change, &partner, message, body, &what) {
                Ok(_) => {}
                Err(NodeError::Store(e)) => return Err(StepError::Store(e)),
                Err(other) => {
                    let why = format!("the retraction cannot be passed on: {other}");
                    warn!(partner = %partner, item_id = %id_text(id), "{why}");
                    change.withhold(&message, &partner, &why, LIFECYCLE_RULE);
                    change.event(Event::new(
                        Action::Withheld,
                        &partner,
                        &id_text(&message),
                        format!("retraction of {} by {origin}: {why}", id_text(id)),
                    ));
                }
            }
        }
        Ok(())
    }

    fn take_consent_request(
        &self,
        sender: &str,
        request: &[u8; 16],
        r: &pb::ConsentRequest,
        change: &mut Change,
    ) -> Step {
        let id = wire_id(&r.item_id, "consent request item_id")?;
        crate::identity::validate_agency_id(&r.third_party).map_err(|e| {
            StepError::Refused((pb::RefusalReason::Malformed, format!("third_party: {e}")))
        })?;
        self.sent_own(&id, sender, "consent request")?;
        if self.store.consent(request)?.is_some() {
            return Err(id_in_use(request, "a consent request"));
        }
        let consent = pb::Consent {
            request_id: id_text(request),
            item_id: id_text(&id),
            requester: sender.to_owned(),
            originator: self.config.agency.clone(),
            third_party: r.third_party.clone(),
            note: r.note.clone(),
            state: "pending".into(),
            requested_at_ms: crate::now_ms(),
            incoming: true,
            ..Default::default()
        };
        change.put_consent(&self.store, request, &consent)?;
        change.event(Event::new(
            Action::Consent,
            sender,
            &id_text(&id),
            format!(
                "{sender} asks to release it to {}; request {}",
                r.third_party,
                id_text(request)
            ),
        ));
        Ok(After::Nothing)
    }

    /// Checks that own item `id` exists, is not withdrawn, and was sent to `partner`.
    fn sent_own(&self, id: &[u8; 16], partner: &str, what: &str) -> Result<StoredItem, StepError> {
        let own = &self.config.agency;
        let unknown = |why: String| StepError::Refused((pb::RefusalReason::UnknownItem, why));
        let item = self
            .store
            .item_at(&store::item_key(id, own))?
            .ok_or_else(|| {
                unknown(format!(
                    "{what} about item {}, which {own} did not create",
                    id_text(id)
                ))
            })?;
        if self.store.tombstone(id, own)?.is_some() {
            return Err(unknown(format!(
                "{what} about item {}, which was retracted",
                id_text(id)
            )));
        }
        match self.store.delivery(id, partner)? {
            Some(r) if was_sent(&r.state) => Ok(item),
            _ => Err(unknown(format!(
                "{what} about item {}, which was never sent to {partner}",
                id_text(id)
            ))),
        }
    }

    fn take_consent_answer(
        &self,
        sender: &str,
        message: &[u8; 16],
        a: &pb::ConsentAnswer,
        change: &mut Change,
    ) -> Step {
        let request = wire_id(&a.request_id, "consent answer request_id")?;
        let mut consent = self
            .store
            .consent(&request)?
            .filter(|c| !c.incoming)
            .ok_or_else(|| {
                StepError::Refused((
                    pb::RefusalReason::UnknownItem,
                    format!(
                        "no consent request {} was sent from here",
                        id_text(&request)
                    ),
                ))
            })?;
        let item = wire_id(&a.item_id, "consent answer item_id")?;
        if consent.originator != sender {
            return Err(not_originator(sender, &item, &consent.originator));
        }
        if consent.item_id != id_text(&item) || consent.third_party != a.third_party {
            return refuse(
                pb::RefusalReason::Malformed,
                "the answer names another item or agency than its request",
            )
            .map_err(StepError::Refused);
        }
        if consent.state != "pending" {
            change.event(Event::new(
                Action::Consent,
                sender,
                &consent.item_id,
                "ignored: answered already",
            ));
            return Ok(After::Nothing);
        }
        consent.state = if a.granted { "granted" } else { "refused" }.into();
        consent.answer_note = a.note.clone();
        consent.answered_at_ms = crate::now_ms();
        consent.answer_id = id_text(message);
        change.put_consent(&self.store, &request, &consent)?;
        if a.granted {
            change.put_grant(&self.store, &item, sender, &a.third_party, &request)?;
        }
        change.event(Event::new(
            Action::Consent,
            sender,
            &consent.item_id,
            format!(
                "{} the release to {}; request {}",
                consent.state, a.third_party, consent.request_id
            ),
        ));
        Ok(if a.granted {
            After::ShareAgain(item)
        } else {
            After::Nothing
        })
    }

    fn take_consultation(
        &self,
        sender: &str,
        id: &[u8; 16],
        r: &pb::ConsultationRequest,
        change: &mut Change,
    ) -> Step {
        let denial_id = wire_id(&r.denial_id, "consultation denial_id")?;
        let denial = self.sent_own(&denial_id, sender, "consultation")?;
        if denial.kind != pb::ItemKind::DenialNotification as i32 {
            return refuse(
                pb::RefusalReason::UnknownItem,
                format!("item {} is not a denial notification", id_text(&denial_id)),
            )
            .map_err(StepError::Refused);
        }
        if self.store.consultation(id)?.is_some() {
            return Err(id_in_use(id, "a consultation"));
        }
        let consultation = pb::Consultation {
            id: id_text(id),
            denial_id: id_text(&denial_id),
            denying_agency: self.config.agency.clone(),
            requester: sender.to_owned(),
            application: r.application.clone(),
            requested_at_ms: crate::now_ms(),
            deadline_ms: r.deadline_ms,
            note: r.note.clone(),
            state: "open".into(),
            incoming: true,
            denial_title: denial.report().map(|d| d.title.clone()).unwrap_or_default(),
            ..Default::default()
        };
        change.put_consultation(&self.store, id, &consultation)?;
        change.event(Event::new(
            Action::Consultation,
            sender,
            &consultation.denial_id,
            format!("{sender} opened consultation {}", consultation.id),
        ));
        Ok(After::Nothing)
    }

    fn take_consultation_reply(
        &self,
        sender: &str,
        r: &pb::ConsultationReply,
        change: &mut Change,
    ) -> Step {
        let id = wire_id(&r.consultation_id, "consultation reply consultation_id")?;
        let mut consultation = self
            .store
            .consultation(&id)?
            .filter(|k| !k.incoming)
            .ok_or_else(|| {
                StepError::Refused((
                    pb::RefusalReason::UnknownItem,
                    format!("no consultation {} was opened from here", id_text(&id)),
                ))
            })?;
        if consultation.denying_agency != sender {
            return Err(StepError::Refused((
                pb::RefusalReason::NotOriginator,
                format!(
                    "consultation {} is with {}; {sender} did not issue that denial",
                    consultation.id, consultation.denying_agency
                ),
            )));
        }
        if consultation.denial_id
            != id_text(&wire_id(&r.denial_id, "consultation reply denial_id")?)
        {
            return refuse(
                pb::RefusalReason::Malformed,
                "the reply names another denial than its consultation",
            )
            .map_err(StepError::Refused);
        }
        if consultation.replied_at_ms != 0 {
            change.event(Event::new(
                Action::Consultation,
                sender,
                &consultation.denial_id,
                "ignored: replied already",
            ));
            return Ok(After::Nothing);
        }
        if consultation.state != "undercut" {
            consultation.state = "answered".into();
        }
        consultation.objects = r.objects;
        consultation.reply_note = r.note.clone();
        consultation.replied_at_ms = crate::now_ms();
        change.put_consultation(&self.store, &id, &consultation)?;
        change.event(Event::new(
            Action::Consultation,
            sender,
            &consultation.denial_id,
            format!(
                "reply to {}: {}",
                consultation.id,
                if r.objects { "objects" } else { "no objection" }
            ),
        ));
        Ok(After::Nothing)
    }

    fn take_undercut(&self, sender: &str, n: &pb::UndercutNotice, change: &mut Change) -> Step {
        let id = wire_id(&n.consultation_id, "undercut notice consultation_id")?;
        let mut consultation = self
            .store
            .consultation(&id)?
            .filter(|k| k.incoming)
            .ok_or_else(|| {
                StepError::Refused((
                    pb::RefusalReason::UnknownItem,
                    format!("no consultation {} was opened with this node", id_text(&id)),
                ))
            })?;
        if consultation.requester != sender {
            return Err(StepError::Refused((
                pb::RefusalReason::NotOriginator,
                format!(
                    "consultation {} was opened by {}, not {sender}",
                    consultation.id, consultation.requester
                ),
            )));
        }
        if consultation.denial_id != id_text(&wire_id(&n.denial_id, "undercut notice denial_id")?) {
            return refuse(
                pb::RefusalReason::Malformed,
                "the undercut notice names another denial than its consultation",
            )
            .map_err(StepError::Refused);
        }
        if consultation.undercut_at_ms != 0 {
            change.event(Event::new(
                Action::Consultation,
                sender,
                &consultation.denial_id,
                "ignored: undercut notice received already",
            ));
            return Ok(After::Nothing);
        }
        consultation.state = "undercut".into();
        consultation.undercut_at_ms = crate::now_ms();
        consultation.undercut_note = n.note.clone();
        change.put_consultation(&self.store, &id, &consultation)?;
        change.event(Event::new(
            Action::Consultation,
            sender,
            &consultation.denial_id,
            format!(
                "undercut: {sender} granted application {} despite the denial",
                n.reference
            ),
        ));
        Ok(After::Nothing)
    }
}

/// What to do once a received lifecycle message is stored.
enum After {
    Nothing,
    /// The item's content changed: index and screen it again.
    Reindex(Box<StoredItem>),
    /// The item's content is gone: take it out of the search index (its store keys).
    Unindex(Vec<Vec<u8>>),
    /// A consent was granted: run the policy again for the item.
    ShareAgain([u8; 16]),
}

enum StepError {
    Refused(Refusal),
    Store(StoreError),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::Store(e)
    }
}

impl From<Refusal> for StepError {
    fn from(r: Refusal) -> Self {
        StepError::Refused(r)
    }
}

type Step = Result<After, StepError>;

/// A retraction of an item whose tombstone is held already: acknowledged, recorded.
fn tombstone_held(sender: &str, id: &[u8; 16], change: &mut Change) -> After {
    change.event(Event::new(
        Action::Retracted,
        sender,
        &id_text(id),
        "tombstone held already",
    ));
    After::Nothing
}

/// A request whose message id names a record this node holds already (its own request or
/// consultation, say): refused, so that no partner can overwrite a record by its id.
fn id_in_use(id: &[u8; 16], what: &str) -> StepError {
    StepError::Refused((
        pb::RefusalReason::Replay,
        format!("id {} is in use here for {what}", id_text(id)),
    ))
}

fn not_originator(sender: &str, id: &[u8; 16], origin: &str) -> StepError {
    StepError::Refused((
        pb::RefusalReason::NotOriginator,
        format!(
            "{sender} is not the originator of item {}: only {origin} may correct, retract or release it",
            id_text(id)
        ),
    ))
}
