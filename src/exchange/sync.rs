//! Watchlist sync: applying the deltas partners deliver, pulling missing versions from a
//! list's owner, and answering partners' pulls.
//!
//! A receiver applies a list's deltas strictly in order. A delta that does not follow the
//! version held is kept (staged) and the missing versions are pulled from the owner; one
//! older than the version held is acknowledged and ignored. A delta split into parts is
//! applied once every part is held. After applying, the list's digest must equal the one
//! the delta carries: otherwise nothing is written, the mismatch is recorded, and a
//! snapshot is pulled. Only a list's owner may send deltas for it: the check is made when
//! the envelope is opened, before anything is stored.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::watch;
use tonic::Status;
use tracing::{debug, info, warn};

use super::receive::{MAX_BATCH_ENVELOPES, open_one};
use crate::{
    audit::{Action, Event},
    config::PartnerConfig,
    node::{Shared, Turn, check_delta},
    pb::{self, peer_exchange_client::PeerExchangeClient},
    policy::ListDecision,
    store::{self, ApplyOutcome, Incoming, Received, StoreError},
    tls, watchlist,
};

/// Room left in a pull answer for the batch's own fields.
const MESSAGE_OVERHEAD: usize = 1024;
/// How many times a delta is tried again when the list moved under it.
const APPLY_ATTEMPTS: usize = 5;
/// First wait before a failed or incomplete pull is tried again.
const PULL_RETRY: Duration = Duration::from_millis(200);

/// Checks a received watchlist delta before it is stored: well formed, from its list's
/// owner, and a list this node accepts from that partner.
pub(super) fn check_incoming(
    shared: &Shared,
    sender: &str,
    delta: &pb::WatchlistDelta,
    originator: &str,
) -> Result<(), (pb::RefusalReason, String)> {
    if !originator.is_empty() {
        return Err((
            pb::RefusalReason::Malformed,
            "a watchlist delta names no originator: only its owner sends it".into(),
        ));
    }
    check_delta(delta).map_err(|e| {
        (
            pb::RefusalReason::Malformed,
            format!("watchlist delta: {e}"),
        )
    })?;
    let owner = watchlist::list_owner(&delta.list).unwrap_or_default();
    if owner != sender {
        return Err((
            pb::RefusalReason::NotListOwner,
            format!(
                "watchlist {} is owned by {owner}; only {owner} may publish it, and this delta \
                 is from {sender}",
                delta.list
            ),
        ));
    }
    if !shared.policy().accepts_list(sender, &delta.list) {
        return Err((
            pb::RefusalReason::NotAccepted,
            format!(
                "{} does not accept watchlist {} from {sender}",
                shared.config.agency, delta.list
            ),
        ));
    }
    Ok(())
}

/// Stores a checked batch from `sender`: reports as items, then, in the batch's order,
/// watchlist deltas (applied or staged in order) and lifecycle messages (corrections,
/// retractions, consent, consultations), so that a message about an item delivered in
/// the same batch finds it stored. Returns one outcome per item, in order.
pub(super) fn receive(
    shared: &Shared,
    turn: &Turn<'_>,
    sender: &str,
    batch: &[Incoming],
) -> Result<Vec<Received>, StoreError> {
    let is_report = |i: &Incoming| i.item.report().is_some();
    // A report whose id is held already from another originator is refused before
    // anything is stored: an item id names one item of one originator.
    let conflicts = batch
        .iter()
        .map(|i| match is_report(i) {
            true => id_conflict(shared, i),
            false => Ok(None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if batch.iter().all(is_report) && conflicts.iter().all(Option::is_none) {
        return shared.store.receive(sender, batch);
    }
    let reports: Vec<Incoming> = batch
        .iter()
        .zip(&conflicts)
        .filter(|(i, conflict)| is_report(i) && conflict.is_none())
        .map(|(i, _)| i.clone())
        .collect();
    let mut stored = shared.store.receive(sender, &reports)?.into_iter();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (incoming, conflict) in batch.iter().zip(conflicts) {
        let outcome = match (delta_of(incoming), conflict) {
            (_, Some(why)) => Received::Refused(pb::RefusalReason::Replay, why),
            (Some(delta), None) => receive_delta(shared, sender, incoming, delta)?,
            (None, None) if is_report(incoming) => stored.next().unwrap_or(Received::Stored),
            (None, None) => shared.receive_lifecycle(turn, sender, incoming)?,
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Why received report `incoming` may not be stored under its id, if the id is held
/// already from another originator: an item of this node's own, a copy or a tombstone of
/// another agency's item. Copies of one originator's item delivered by several partners
/// (the originator, and partners passing it on) share the id, and are kept side by side.
fn id_conflict(shared: &Shared, incoming: &Incoming) -> Result<Option<String>, StoreError> {
    let id = store::id16(&incoming.item.item_id);
    let origin = &incoming.item.origin;
    let held = shared.store.item(&id)?;
    let other = held
        .iter()
        .map(|c| c.origin.clone())
        .chain(
            shared
                .store
                .tombstones_of(&id)?
                .into_iter()
                .map(|t| t.originator),
        )
        .find(|o| o != origin);
    Ok(other.map(|other| {
        format!(
            "item id {} is held already for an item of {other}; this one names {origin}",
            store::ulid_text(&id)
        )
    }))
}

fn delta_of(incoming: &Incoming) -> Option<&pb::WatchlistDelta> {
    match incoming.item.item.as_ref()?.body.as_ref()? {
        pb::item::Body::WatchlistDelta(d) => Some(d),
        _ => None,
    }
}

/// One received delta or part: deduplicated by (sender, item id), then staged or applied.
fn receive_delta(
    shared: &Shared,
    sender: &str,
    incoming: &Incoming,
    delta: &pb::WatchlistDelta,
) -> Result<Received, StoreError> {
    let id = store::id16(&incoming.item.item_id);
    let id_text = store::ulid_text(&id);
    match shared.store.seen_before(sender, &id, &incoming.digest)? {
        Some(true) => return Ok(Received::Duplicate),
        Some(false) => {
            let event = Event::new(Action::Refused, sender, &id_text, "replay: item id reused");
            shared.store.record(&[event])?;
            return Ok(Received::Replay);
        }
        None => {}
    }
    let seen = vec![(sender.to_owned(), id, incoming.digest)];
    let detail = format!(
        "watchlist {} v{}->v{} part {}/{}",
        delta.list, delta.from_version, delta.to_version, delta.part, delta.parts
    );
    let received = Event::new(Action::Received, sender, &id_text, detail);
    if delta.parts > 1 {
        shared
            .store
            .stage_list_delta(delta, &seen, std::slice::from_ref(&received))?;
        let parts = shared
            .store
            .staged_parts(&delta.list, delta.from_version, delta.to_version)?;
        if parts.len() == delta.parts as usize {
            match watchlist::assemble(parts) {
                Some(whole) => handle_whole(shared, &whole, &[], &[])?,
                None => {
                    warn!(partner = %sender, list = %delta.list, "watchlist delta parts disagree; they are dropped and the list is pulled");
                    shared
                        .store
                        .drop_staged(&delta.list, delta.from_version, delta.to_version)?;
                    shared.want_pull(&delta.list);
                }
            }
        }
    } else {
        handle_whole(shared, delta, &seen, &[received])?;
    }
    apply_staged(shared, &delta.list)?;
    Ok(Received::Stored)
}

/// What to do with a whole delta, given the version held.
#[derive(Debug, PartialEq, Eq)]
enum Fit {
    /// It applies now.
    Applies,
    /// It is older than what is held: acknowledge and ignore.
    Old,
    /// Versions between are missing: keep it and pull them.
    Ahead,
}

fn fit(delta: &pb::WatchlistDelta, meta: &store::ListMeta) -> Fit {
    let held = meta.version;
    if delta.from_version == 0 {
        // A snapshot replaces what is held when it is newer, or when what is held is
        // known to be wrong.
        if delta.to_version > held || (meta.state == "mismatch" && delta.to_version >= held) {
            Fit::Applies
        } else {
            Fit::Old
        }
    } else if delta.from_version == held {
        Fit::Applies
    } else if delta.from_version < held {
        Fit::Old
    } else {
        Fit::Ahead
    }
}

/// Applies, stages or ignores a whole delta. `seen` and `events` are written with
/// whatever is done.
fn handle_whole(
    shared: &Shared,
    delta: &pb::WatchlistDelta,
    seen: &[(String, [u8; 16], [u8; 32])],
    events: &[Event],
) -> Result<(), StoreError> {
    let list = delta.list.as_str();
    let owner = watchlist::list_owner(list).unwrap_or_default();
    for _ in 0..APPLY_ATTEMPTS {
        let meta = shared.store.list_meta(list)?.unwrap_or_default();
        match fit(delta, &meta) {
            Fit::Old => {
                debug!(
                    list,
                    from = delta.from_version,
                    to = delta.to_version,
                    held = meta.version,
                    "watchlist delta older than the version held; ignored"
                );
                shared.store.mark_list_seen(seen, events)?;
                return shared
                    .store
                    .drop_staged(list, delta.from_version, delta.to_version);
            }
            Fit::Ahead => {
                let waiting = format!(
                    "v{}->v{} waits for v{}..v{}",
                    delta.from_version,
                    delta.to_version,
                    meta.version + 1,
                    delta.from_version
                );
                info!(
                    list,
                    held = meta.version,
                    from = delta.from_version,
                    "watchlist delta ahead of the version held; pulling the missing versions"
                );
                shared
                    .store
                    .drop_staged(list, delta.from_version, delta.to_version)?;
                let whole = pb::WatchlistDelta {
                    part: 1,
                    parts: 1,
                    ..delta.clone()
                };
                shared.store.stage_list_delta(&whole, seen, events)?;
                shared
                    .store
                    .set_list_state(list, "waiting", &waiting, &[])?;
                shared.want_pull(list);
                return Ok(());
            }
            Fit::Applies => {}
        }
        let kind = if delta.from_version == 0 {
            "snapshot"
        } else {
            "delta"
        };
        let applied = Event::new(
            Action::ListApplied,
            owner,
            "",
            format!(
                "{list} {kind} v{}->v{}: {} added or changed, {} removed, {} entries, digest ok",
                delta.from_version,
                delta.to_version,
                delta.upserts.len(),
                delta.removals.len(),
                delta.entry_count
            ),
        );
        let all_events: Vec<Event> = events.iter().cloned().chain([applied]).collect();
        match shared
            .store
            .apply_list_delta(delta, meta.version, seen, &all_events)?
        {
            ApplyOutcome::Applied => {
                info!(
                    list,
                    kind,
                    version = delta.to_version,
                    entries = delta.entry_count,
                    "watchlist applied"
                );
                if delta.from_version == 0 {
                    shared.index_drop_list(list);
                }
                shared.index_changes(list, &delta.upserts, &delta.removals);
                return Ok(());
            }
            ApplyOutcome::Moved => continue,
            ApplyOutcome::Mismatch { computed } => {
                return mismatch(shared, delta, meta.version, computed, seen, events);
            }
        }
    }
    warn!(
        list,
        "watchlist kept changing while a delta was applied; pulling it"
    );
    shared.want_pull(list);
    Ok(())
}

/// Records a digest mismatch (nothing of the delta was written) and pulls a snapshot.
fn mismatch(
    shared: &Shared,
    delta: &pb::WatchlistDelta,
    held: u64,
    computed: watchlist::Digest,
    seen: &[(String, [u8; 16], [u8; 32])],
    events: &[Event],
) -> Result<(), StoreError> {
    let list = delta.list.as_str();
    let carried = watchlist::Digest(delta.digest.as_slice().try_into().unwrap_or([0; 32]));
    let detail = format!(
        "{list} v{}->v{} on v{held}: digest would be {computed}, the owner's is {carried}; \
         not applied, pulling a snapshot",
        delta.from_version, delta.to_version
    );
    warn!(list, from = delta.from_version, to = delta.to_version, %computed, %carried, "watchlist digest mismatch; pulling a snapshot");
    let owner = watchlist::list_owner(list).unwrap_or_default();
    shared.store.mark_list_seen(seen, events)?;
    shared
        .store
        .drop_staged(list, delta.from_version, delta.to_version)?;
    let event = Event::new(Action::ListMismatch, owner, "", detail.as_str());
    shared
        .store
        .set_list_state(list, "mismatch", &detail, &[event])?;
    shared.want_pull(list);
    Ok(())
}

/// Applies the staged deltas of `list` that now follow the version held, in order.
fn apply_staged(shared: &Shared, list: &str) -> Result<(), StoreError> {
    loop {
        let meta = shared.store.list_meta(list)?.unwrap_or_default();
        let next = shared
            .store
            .staged_versions(list)?
            .into_iter()
            .find(|(from, to)| {
                let probe = pb::WatchlistDelta {
                    from_version: *from,
                    to_version: *to,
                    ..Default::default()
                };
                fit(&probe, &meta) == Fit::Applies
            });
        let Some((from, to)) = next else {
            return Ok(());
        };
        let parts = shared.store.staged_parts(list, from, to)?;
        let complete = parts
            .first()
            .is_some_and(|p| parts.len() == p.parts.max(1) as usize);
        if !complete {
            return Ok(());
        }
        let Some(whole) = watchlist::assemble(parts) else {
            shared.store.drop_staged(list, from, to)?;
            continue;
        };
        handle_whole(shared, &whole, &[], &[])?;
        let after = shared.store.list_meta(list)?.unwrap_or_default();
        if after.version == meta.version && after.state == meta.state {
            // Nothing moved (a mismatch was recorded): stop rather than loop.
            return Ok(());
        }
    }
}

/// Works through the node's pull queue until `stopped` turns true: for each list, asks
/// its owner for the versions missing, and tries again with backoff while some still are.
pub async fn run_pulls(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let Some(mut queue) = shared.take_pull_queue() else {
        return;
    };
    let max_backoff = Duration::from_millis(shared.config.delivery.max_backoff_ms);
    let mut backoff: HashMap<String, Duration> = HashMap::new();
    loop {
        let list = tokio::select! {
            list = queue.recv() => match list { Some(l) => l, None => return },
            _ = stopped.changed() => return,
        };
        let mut lists = vec![list];
        while let Ok(more) = queue.try_recv() {
            if !lists.contains(&more) {
                lists.push(more);
            }
        }
        for list in lists {
            let done = match pull_list(&shared, &list).await {
                Ok(done) => done,
                Err(e) => {
                    warn!(list = %list, error = %e, "watchlist pull failed");
                    false
                }
            };
            if done {
                backoff.remove(&list);
                continue;
            }
            let wait = backoff.entry(list.clone()).or_insert(PULL_RETRY);
            let delay = *wait;
            *wait = (*wait * 2).min(max_backoff.max(PULL_RETRY));
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                shared.want_pull(&list);
            });
        }
    }
}

/// Pulls what `list` misses from its owner and applies it. Returns whether the list is
/// complete afterwards (nothing staged ahead, no mismatch).
async fn pull_list(shared: &Arc<Shared>, list: &str) -> Result<bool, String> {
    let meta = shared
        .store
        .list_meta(list)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if needs_nothing(shared, list, &meta)? {
        return Ok(true);
    }
    let owner = watchlist::list_owner(list).ok_or("invalid list name")?;
    let partner = shared
        .config
        .partner(owner)
        .ok_or_else(|| format!("the owner {owner} is not a registered partner"))?
        .clone();
    let held = if meta.state == "mismatch" {
        0
    } else {
        meta.version
    };
    info!(partner = %owner, list, held, "pulling watchlist versions");
    shared.record(Event::new(
        Action::ListPull,
        owner,
        "",
        format!("asked for {list} after v{held}"),
    ));
    let client_config = shared.client_config(&partner).map_err(|e| e.to_string())?;
    let channel = tls::channel(&partner.endpoint, client_config).map_err(|e| e.to_string())?;
    let limit = shared.config.max_message_bytes;
    let mut client = PeerExchangeClient::new(channel)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let request = pb::PullRequest {
        list: list.to_owned(),
        held_version: held,
    };
    let mut batches = client
        .pull(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    while let Some(batch) = batches
        .message()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
    {
        apply_pulled(shared, &partner, list, batch).await?;
    }
    let after = shared
        .store
        .list_meta(list)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    needs_nothing(shared, list, &after)
}

/// Whether `list` is complete: nothing staged waits and no mismatch is recorded.
fn needs_nothing(shared: &Shared, list: &str, meta: &store::ListMeta) -> Result<bool, String> {
    let staged = shared
        .store
        .staged_versions(list)
        .map_err(|e| e.to_string())?;
    Ok(staged.is_empty() && meta.state != "mismatch" && meta.version > 0)
}

/// Opens, checks and applies one batch of a pull answer, as for delivered envelopes.
async fn apply_pulled(
    shared: &Shared,
    partner: &PartnerConfig,
    list: &str,
    batch: pb::PullBatch,
) -> Result<(), String> {
    if batch.envelopes.len() > MAX_BATCH_ENVELOPES {
        return Err(format!(
            "pull answer of {} envelopes exceeds {MAX_BATCH_ENVELOPES}",
            batch.envelopes.len()
        ));
    }
    let mut items = Vec::new();
    let mut events = Vec::new();
    for env in &batch.envelopes {
        let id = store::ulid_text(&store::id16(&env.item_id));
        let opened =
            open_one(shared, partner, env).and_then(|incoming| match delta_of(&incoming) {
                Some(d) if d.list == list => Ok(incoming),
                _ => Err((
                    pb::RefusalReason::Malformed,
                    format!("a pull answer for {list} holds something else"),
                )),
            });
        match opened {
            Ok(incoming) => items.push(incoming),
            Err((reason, detail)) => {
                warn!(partner = %partner.agency, item_id = %id, reason = reason.as_str_name(), detail = %detail, "refused pulled envelope");
                events.push(Event::new(
                    Action::Refused,
                    &partner.agency,
                    &id,
                    format!("pulled: {}: {detail}", reason.as_str_name()),
                ));
            }
        }
    }
    shared.record_all(&events);
    {
        let turn = shared.turn().await;
        receive(shared, &turn, &partner.agency, &items).map_err(|e| e.to_string())?;
    }
    shared.store.flush().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Answers a partner's pull of a list this node owns: the deltas after `held_version`,
/// or a snapshot, sealed for the partner now and grouped into batches that fit a message.
pub(super) fn serve_pull(
    shared: &Shared,
    partner: &PartnerConfig,
    request: &pb::PullRequest,
) -> Result<Vec<pb::PullBatch>, Status> {
    let list = request.list.as_str();
    let refuse = |status: Status| {
        warn!(partner = %partner.agency, list, reason = %status.message(), "refused watchlist pull");
        shared.record(Event::new(
            Action::Refused,
            &partner.agency,
            "",
            format!("pull of {list:?}: {}", status.message()),
        ));
        status
    };
    watchlist::validate_list_name(list)
        .map_err(|e| refuse(Status::invalid_argument(e.to_string())))?;
    if watchlist::list_owner(list) != Some(shared.config.agency.as_str()) {
        return Err(refuse(Status::failed_precondition(format!(
            "{} does not own watchlist {list}; pull it from its owner",
            shared.config.agency
        ))));
    }
    if let ListDecision::Deny { reason, .. } =
        shared
            .policy()
            .decide_list(&shared.config.agency, &partner.agency, list)
    {
        return Err(refuse(Status::permission_denied(format!(
            "the sharing policy does not give watchlist {list} to {}: {reason}",
            partner.agency
        ))));
    }
    let internal = |e: StoreError| {
        tracing::error!(error = %e, "cannot read a watchlist to answer a pull");
        Status::unavailable("cannot read the watchlist now; retry later")
    };
    let Some(meta) = shared.store.list_meta(list).map_err(internal)? else {
        return Err(refuse(Status::not_found(format!(
            "no watchlist {list} is published"
        ))));
    };
    let deltas = plan(shared, list, &meta, request.held_version).map_err(internal)?;
    let mut envelopes = Vec::new();
    for delta in &deltas {
        let sealed = shared.seal_list_delta(partner, delta).map_err(|e| {
            tracing::error!(error = %e, "cannot seal a watchlist delta");
            Status::internal("cannot seal the answer")
        })?;
        envelopes.extend(sealed.into_iter().map(|(_, env)| env));
    }
    let what = match deltas.first() {
        None => "nothing (up to date)".to_owned(),
        Some(d) if d.from_version == 0 => format!("a snapshot at v{}", d.to_version),
        Some(d) => format!("deltas v{}..v{}", d.to_version, meta.version),
    };
    info!(partner = %partner.agency, list, held = request.held_version, envelopes = envelopes.len(), what = %what, "serving watchlist pull");
    shared.record(Event::new(
        Action::ListPull,
        &partner.agency,
        "",
        format!(
            "served {list} after v{}: {what} in {} envelope(s)",
            request.held_version,
            envelopes.len()
        ),
    ));
    Ok(batches(envelopes, shared.config.max_message_bytes))
}

/// The deltas that bring a partner holding `held` up to the current version: the ones
/// kept, or one snapshot when the partner holds nothing, holds a version this node never
/// published, or would receive more changes than the list has entries.
fn plan(
    shared: &Shared,
    list: &str,
    meta: &store::ListMeta,
    held: u64,
) -> Result<Vec<pb::WatchlistDelta>, StoreError> {
    if held == meta.version {
        return Ok(Vec::new());
    }
    if held != 0 && held < meta.version {
        let deltas = shared.store.list_deltas(list, held)?;
        let changes: usize = deltas
            .iter()
            .map(|d| d.upserts.len() + d.removals.len())
            .sum();
        let complete = deltas.len() as u64 == meta.version - held
            && deltas
                .iter()
                .zip(held..)
                .all(|(d, v)| d.from_version == v && d.from_version != 0);
        if complete && changes as u64 <= meta.entry_count.max(1) {
            return Ok(deltas);
        }
    }
    Ok(vec![pb::WatchlistDelta {
        list: list.to_owned(),
        from_version: 0,
        to_version: meta.version,
        upserts: shared.store.list_entries(list)?,
        removals: Vec::new(),
        digest: meta.digest.clone(),
        entry_count: meta.entry_count,
        part: 1,
        parts: 1,
        published_at_ms: meta.published_at_ms,
    }])
}

/// Groups envelopes, in order, into batches under the message limit.
fn batches(envelopes: Vec<pb::Envelope>, max_message_bytes: usize) -> Vec<pb::PullBatch> {
    let limit = max_message_bytes.saturating_sub(MESSAGE_OVERHEAD);
    let mut out: Vec<pb::PullBatch> = Vec::new();
    let mut size = 0;
    for env in envelopes {
        let len = prost::Message::encoded_len(&env) + 8;
        let full = out
            .last()
            .is_none_or(|b| size + len > limit || b.envelopes.len() >= MAX_BATCH_ENVELOPES);
        if full {
            out.push(pb::PullBatch::default());
            size = 0;
        }
        size += len;
        if let Some(batch) = out.last_mut() {
            batch.envelopes.push(env);
        }
    }
    out
}
