//! A node: its identity, store and partners, and, when serving, the peer listener, the
//! delivery tasks and the control socket.
//!
//! [`Shared`] is what every part of a running node reads: it is built once at start-up
//! from a validated [`Config`]. [`Shared::submit`] is the one path by which an own item
//! enters the node: validate, store, decide per partner, seal, queue.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
};

use prost::Message as _;
use tokio::{
    net::TcpListener,
    sync::{Notify, broadcast, watch},
    task::JoinSet,
};
use tokio_stream::{StreamExt as _, wrappers::TcpListenerStream};
use tracing::{info, warn};

use crate::{
    audit::{Action, Event},
    config::{Config, PartnerConfig},
    envelope,
    exchange::{self, DeliveryEvent, PeerService},
    identity::{EncryptionKey, SigningKey},
    pb,
    policy::{Decision, ItemFacts, PolicyError, PolicyErrors, PolicySet, PolicyWarning},
    report,
    screen::{Hit, Query, ScreeningIndex},
    store::{self, Sealed, Store, StoreError, StoredItem, Withheld},
    tls::{self, TlsMaterial},
};

mod lists;

pub(crate) use lists::check_delta;
pub use lists::{ListError, Published};

mod screening;

pub use screening::{IndexBuilt, build_index};

mod keys;

pub use keys::{KeyError, LearnError, RotateRequest};

mod analysis;

mod lifecycle;

pub use lifecycle::{LIFECYCLE_RULE, consultation_state};

pub use analysis::open_search as build_search_index;

/// Why a node could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A key file could not be used.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// TLS material could not be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The submitted report is invalid.
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// A watchlist could not be published or read.
    #[error(transparent)]
    List(#[from] ListError),
    /// The sharing policy is invalid.
    #[error("invalid sharing policy:\n{0}")]
    Policy(#[from] PolicyErrors),
    /// A report too large to deliver within the message limit.
    #[error(
        "the report is {size} bytes; at most {limit} bytes fit in one message to a partner \
         (node.max_message_bytes)"
    )]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// The largest accepted.
        limit: usize,
    },
    /// A sealing thread failed (a bug: please report it).
    #[error("a sealing thread failed unexpectedly")]
    Worker,
    /// No item with this id is held.
    #[error("no item {0} is held by this node")]
    NoSuchItem(String),
    /// No consent request, consultation or licence application with this id is held.
    #[error("no {what} {id} is held by this node")]
    NoSuch {
        /// What was looked for.
        what: &'static str,
        /// The id or reference given.
        id: String,
    },
    /// A lifecycle request that is malformed: what is wrong with it.
    #[error("{0}")]
    Invalid(String),
    /// A lifecycle request that the item's state does not allow: why not.
    #[error("{0}")]
    NotAllowed(String),
    /// Sealing failed.
    #[error("sealing for {partner}: {source}")]
    Seal {
        /// The partner.
        partner: String,
        /// The cause.
        source: envelope::SealError,
    },
    /// The certificate does not name this node's agency.
    #[error("TLS certificate {file} names agency {found}, but node.agency is {expected}")]
    CertificateAgency {
        /// Certificate file.
        file: PathBuf,
        /// Agency in the certificate.
        found: String,
        /// Agency in the config.
        expected: String,
    },
    /// The listener could not be bound or served.
    #[error("peer listener on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The control socket failed.
    #[error("control socket {path}: {source}")]
    Control {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// What became of a submitted report.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The new item id.
    pub item_id: [u8; 16],
    /// Its kind.
    pub kind: pb::ItemKind,
    /// Partners it was sealed and queued for.
    pub queued_for: Vec<String>,
    /// Partners it was withheld from, with the reason.
    pub withheld_from: Vec<(String, String)>,
    /// Every decision, by partner.
    pub decisions: Vec<pb::DeliveryStatus>,
}

/// The state every part of a node shares.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The durable store.
    pub store: Store,
    /// Own keys, partner keys and TLS material, replaceable while serving.
    keys: keys::KeyState,
    policy: RwLock<Arc<PolicySet>>,
    notifiers: HashMap<String, Arc<Notify>>,
    deliveries: broadcast::Sender<DeliveryEvent>,
    record_failures: Mutex<u64>,
    ids: Mutex<ulid::Generator>,
    /// Watchlists whose missing versions are to be pulled from their owners.
    pulls: lists::PullQueue,
    /// The names of every watchlist entry held, for screening.
    screening: RwLock<ScreeningIndex>,
    /// What analysts search the held items by.
    search: RwLock<crate::search::SearchIndex>,
    /// True once the search index covers every item stored before the node started.
    search_ready: watch::Sender<bool>,
    /// Held by whatever checks what is stored and then changes it on that basis (see
    /// [`Turn`]).
    turn: tokio::sync::Mutex<()>,
}

/// One writer's turn at the checks-then-writes that depend on what is held: storing a
/// received batch (reports, deltas and lifecycle messages), and each lifecycle command and
/// re-share. A received retraction lists the copies it erases, a correction reads the
/// version it replaces, an answer reads the request it settles; with one turn at a time,
/// nothing changes between the read and the transaction that acts on it. The turn is not
/// held across the flush that follows, so that batches still share their disk syncs.
///
/// Functions that need it take a `&Turn`, so that calling them without it does not
/// compile.
pub(crate) struct Turn<'a> {
    _held: tokio::sync::MutexGuard<'a, ()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("agency", &self.config.agency)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Loads keys and TLS material named by `config`, opens the store and builds the
    /// search index over it (for a command acting on a stopped node).
    pub fn open(config: Config) -> Result<Self, NodeError> {
        let shared = Self::open_unindexed(config)?;
        let index = analysis::open_search(&shared.store)?;
        *shared.search_mut() = index;
        shared.search_ready.send_replace(true);
        Ok(shared)
    }

    /// Like [`Shared::open`], but leaves the search index empty: [`Node::start_on`] builds
    /// it in the background, so that a node holding many items starts serving at once.
    fn open_unindexed(config: Config) -> Result<Self, NodeError> {
        // The key files are checked before the store is opened, so that a bad key file
        // is named even when the store cannot be opened.
        SigningKey::load(&config.signing_key)?;
        EncryptionKey::load(&config.encryption_key)?;
        let tls = TlsMaterial::load(&config.tls_cert, &config.tls_key, &config.tls_ca)?;
        let found = tls.agency()?;
        if found != config.agency {
            return Err(NodeError::CertificateAgency {
                file: config.tls_cert.clone(),
                found,
                expected: config.agency.clone(),
            });
        }
        let (policy, warnings) = load_policy(&config)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "sharing policy");
        }
        let store = Store::open_patiently(
            &config.data_dir,
            &config.data_key,
            std::time::Duration::from_secs(5),
        )?;
        let keys = keys::KeyState::open(&config, &store)?;
        let store = store
            .with_checkpoints(keys.checkpoint_signer())
            .with_reserve(config.limits.min_free_disk_mb);
        let index = screening::open_index(&store)?;
        let notifiers = config
            .partners
            .iter()
            .map(|p| (p.agency.clone(), Arc::new(Notify::new())))
            .collect();
        Ok(Self {
            store,
            keys,
            policy: RwLock::new(Arc::new(policy)),
            notifiers,
            deliveries: broadcast::channel(1024).0,
            record_failures: Mutex::new(0),
            ids: Mutex::new(ulid::Generator::new()),
            pulls: lists::PullQueue::new(),
            screening: RwLock::new(index),
            search: RwLock::new(crate::search::SearchIndex::new()),
            search_ready: watch::channel(false).0,
            turn: tokio::sync::Mutex::new(()),
            config,
        })
    }

    /// Updates the screening index after list `list` changed (a publish or an applied
    /// delta): `upserts` are added or replace the entries with their ids, `removals` are
    /// entry ids taken out. Only the named entries are touched.
    pub fn index_changes(&self, list: &str, upserts: &[pb::WatchlistEntry], removals: &[String]) {
        let mut index = self.screening_mut();
        for id in removals {
            index.remove(list, id);
        }
        for entry in upserts {
            index.upsert(list, entry);
        }
    }

    /// Drops every entry of list `list` from the screening index (before a snapshot
    /// replaces the list).
    pub fn index_drop_list(&self, list: &str) {
        self.screening_mut().remove_list(list);
    }

    /// Ranked matches for `query` across every list the node holds.
    pub fn screen(&self, query: &Query) -> Vec<Hit> {
        let index = match self.screening.read() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        index.search(query)
    }

    /// Number of entries in the screening index, over all lists.
    pub fn screening_entries(&self) -> usize {
        match self.screening.read() {
            Ok(index) => index.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// The screening index, for writing. A poisoned lock is taken over: the index's
    /// methods do not panic, so a panic elsewhere while it was held left it whole.
    fn screening_mut(&self) -> std::sync::RwLockWriteGuard<'_, ScreeningIndex> {
        match self.screening.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Validates a report from this agency, stores it, and seals and queues it for every
    /// partner whose sharing rule allows its kind. Durable when it returns.
    pub async fn submit(&self, report: pb::Report) -> Result<Submitted, NodeError> {
        let mut done = self.submit_batch(vec![report]).await?;
        // One report in, one result out.
        Ok(done.remove(0))
    }

    /// Like [`Shared::submit`] for several reports, in one store transaction and with one
    /// flush to disk for all. Every report is validated before any is stored, so one
    /// invalid report stores nothing; a store failure stores none of them either.
    pub async fn submit_batch(
        &self,
        reports: Vec<pb::Report>,
    ) -> Result<Vec<Submitted>, NodeError> {
        let checked = reports.iter().enumerate().try_for_each(|(i, r)| {
            self.check_local_report(r, &format!("submitted report {}", i + 1))
        });
        if let Err(e) = checked {
            self.record_local_refusal("submission", "", &e);
            return Err(e);
        }
        let done = off_the_reactor(|| self.store_all(reports))?;
        self.store.flush().await?;
        metrics::counter!(crate::metrics::SUBMITTED).increment(done.len() as u64);
        for submitted in &done {
            self.announce(submitted);
        }
        Ok(done)
    }

    /// Checks a report given on this host (`what` names it in errors): its fields, its
    /// recipients and its size.
    pub(crate) fn check_local_report(
        &self,
        report: &pb::Report,
        what: &str,
    ) -> Result<(), NodeError> {
        report::validate(report, what)?;
        self.config
            .limits
            .check_recipients(report)
            .map_err(|why| NodeError::Invalid(format!("{what}: {why}")))?;
        let size = report.encoded_len();
        if size > self.max_item_bytes() {
            return Err(NodeError::TooLarge {
                size,
                limit: self.max_item_bytes(),
            });
        }
        Ok(())
    }

    /// Logs and records (`refused`, under the caller's name) a `doing` ("submission",
    /// "correction") refused for bad input. Such errors name the field and the rule, never
    /// a value, so they may be recorded; other errors are not input's fault and are not.
    pub(crate) fn record_local_refusal(&self, doing: &str, item_id: &str, e: &NodeError) {
        if !matches!(
            e,
            NodeError::Report(_) | NodeError::Invalid(_) | NodeError::TooLarge { .. }
        ) {
            return;
        }
        let caller = crate::control::current_caller().audit_name;
        let item_id = crate::control::clipped(item_id, 40);
        warn!(caller = %caller, item_id, error = %e, "refused a {doing}");
        self.record(Event::new(
            Action::Refused,
            &caller,
            &item_id,
            format!("{doing}: {e}"),
        ));
    }

    /// Seals validated reports, on as many threads as there are cores when the batch is
    /// large enough for that to pay, and stores them all in one transaction (not yet
    /// flushed).
    fn store_all(&self, reports: Vec<pb::Report>) -> Result<Vec<Submitted>, NodeError> {
        let threads = crate::cores().min(reports.len() / 8).max(1);
        let prepared = if threads == 1 {
            reports
                .into_iter()
                .map(|r| self.prepare_own(r))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            self.prepare_parallel(reports, threads)?
        };
        let batch: Vec<_> = prepared
            .iter()
            .map(|(item, sealed, withheld)| (item, &sealed[..], &withheld[..]))
            .collect();
        self.store.submit_all(&batch)?;
        Ok(prepared
            .iter()
            .map(|(item, sealed, withheld)| {
                let hits = self.screen_stored(&self.config.agency, item);
                self.analyse_stored(&self.config.agency, item, &hits);
                submitted(item, sealed, withheld)
            })
            .collect())
    }

    /// [`Shared::prepare_own`] for every report, split over `threads` threads (this one
    /// among them), in the reports' order.
    fn prepare_parallel(
        &self,
        reports: Vec<pb::Report>,
        threads: usize,
    ) -> Result<Vec<Prepared>, NodeError> {
        let per = reports.len().div_ceil(threads);
        let mut reports = reports.into_iter();
        let mut parts: Vec<Vec<pb::Report>> = Vec::with_capacity(threads);
        loop {
            let part: Vec<_> = reports.by_ref().take(per).collect();
            if part.is_empty() {
                break;
            }
            parts.push(part);
        }
        let prepare = |part: Vec<pb::Report>| {
            part.into_iter()
                .map(|r| self.prepare_own(r))
                .collect::<Result<Vec<_>, _>>()
        };
        let last = parts.pop().unwrap_or_default();
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts
                .into_iter()
                .map(|part| scope.spawn(move || prepare(part)))
                .collect();
            let last = prepare(last);
            let mut done = Vec::new();
            for worker in workers {
                done.extend(worker.join().map_err(|_| NodeError::Worker)??);
            }
            done.extend(last?);
            Ok(done)
        })
    }

    /// A validated own report as a new item with its sealed envelopes and the partners it
    /// is withheld from, ready to store.
    fn prepare_own(&self, report: pb::Report) -> Result<Prepared, NodeError> {
        let id = self.next_item_id();
        let now = crate::now_ms();
        let stored = StoredItem {
            origin: self.config.agency.clone(),
            item_id: id.to_vec(),
            kind: report.kind,
            created_at_ms: now,
            stored_at_ms: now,
            item: Some(pb::Item {
                body: Some(pb::item::Body::Report(report)),
                originator: String::new(),
            }),
            envelope_digest: Vec::new(),
            own: true,
            sender: self.config.agency.clone(),
            version: 1,
            reason: String::new(),
        };
        let (sealed, withheld) = self.decide_and_seal(&stored, &[])?;
        Ok((stored, sealed, withheld))
    }

    /// Runs the policy for every registered partner not in `skip` and seals the copy each
    /// allowed partner gets. This is the one enforcement point: nothing is sealed for a
    /// partner except the report a `Decision::Share` returned for that partner.
    fn decide_and_seal(
        &self,
        item: &StoredItem,
        skip: &[String],
    ) -> Result<(Vec<Sealed>, Vec<Withheld>), NodeError> {
        let report = item
            .report()
            .ok_or_else(|| NodeError::NoSuchItem(view_id(item)))?;
        let policy = self.policy();
        let consented = self
            .store
            .grants(&store::id16(&item.item_id), &item.origin)?;
        let facts = ItemFacts {
            report,
            origin: &item.origin,
            created_at_ms: item.created_at_ms,
            now_ms: crate::now_ms(),
            consented_to: &consented,
        };
        let kind = report.kind();
        let id = store::id16(&item.item_id);
        let own = self.own_keys();
        let (mut sealed, mut withheld) = (Vec::new(), Vec::new());
        for partner in self
            .config
            .partners
            .iter()
            .filter(|p| !skip.contains(&p.agency))
        {
            match policy.decide(&self.config.agency, &partner.agency, &facts) {
                Decision::Share {
                    rule,
                    report,
                    redactions,
                } => {
                    let originator = if item.origin == self.config.agency {
                        String::new()
                    } else {
                        item.origin.clone()
                    };
                    let payload = pb::Item {
                        body: Some(pb::item::Body::Report(report)),
                        originator,
                    }
                    .encode_to_vec();
                    let envelope = envelope::seal(
                        &own.identity,
                        &partner.agency,
                        &self.sealing_keys(partner),
                        id,
                        kind,
                        item.created_at_ms,
                        &payload,
                    )
                    .map_err(|source| NodeError::Seal {
                        partner: partner.agency.clone(),
                        source,
                    })?;
                    let digest = envelope::envelope_digest(&envelope);
                    sealed.push(Sealed {
                        partner: partner.agency.clone(),
                        envelope,
                        digest,
                        rule,
                        redactions,
                    });
                }
                Decision::Deny { rule, reason } => withheld.push(Withheld {
                    partner: partner.agency.clone(),
                    reason,
                    rule: rule.unwrap_or_default(),
                }),
            }
        }
        Ok((sealed, withheld))
    }

    /// Runs the current policy again for an item this node holds (its own, or one a
    /// partner sent) and queues it for every partner that now may have it and has not been
    /// sent it before. The originator's marking still binds: the third-party rule is
    /// applied to received items.
    pub async fn share_again(&self, item_id: &str) -> Result<Submitted, NodeError> {
        let id = ulid::Ulid::from_string(item_id)
            .map_err(|_| NodeError::NoSuchItem(item_id.to_owned()))?
            .to_bytes();
        let done = {
            let turn = self.turn().await;
            self.reshare(&turn, &id)?
        };
        self.store.flush().await?;
        self.announce(&done);
        Ok(done)
    }

    /// The work of [`Shared::share_again`], not yet flushed or announced.
    fn reshare(&self, _turn: &Turn<'_>, id: &[u8; 16]) -> Result<Submitted, NodeError> {
        let missing = || NodeError::NoSuchItem(store::ulid_text(id));
        let copies = self.store.item(id)?;
        let item = store::preferred_copy(&copies).ok_or_else(missing)?;
        if self.store.tombstone(id, &item.origin)?.is_some() {
            return Err(NodeError::NotAllowed(format!(
                "item {} was retracted by its originator; it is not shared again",
                store::ulid_text(id)
            )));
        }
        let already: Vec<String> = self
            .store
            .deliveries(id)?
            .into_iter()
            .filter(|(_, r)| r.state != "withheld")
            .map(|(p, _)| p)
            .chain(std::iter::once(item.sender.clone()))
            .collect();
        let (sealed, withheld) = self.decide_and_seal(item, &already)?;
        self.store.share_again(item, &sealed, &withheld)?;
        Ok(submitted(item, &sealed, &withheld))
    }

    /// Waits for this node's [`Turn`] at checks-then-writes.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        Turn {
            _held: self.turn.lock().await,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<PolicySet> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the policy file again. An invalid file is refused and the policy in force
    /// stays; items already sealed are not decided again.
    pub fn reload_policy(&self) -> Result<Vec<PolicyWarning>, PolicyErrors> {
        let file = self.config.policy.display().to_string();
        let (policy, warnings) = match load_policy(&self.config) {
            Ok(loaded) => loaded,
            Err(errors) => {
                let first = errors
                    .0
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                tracing::error!(file = %file, errors = errors.0.len(), first = %first, "policy reload refused; the previous policy stays in force");
                let detail = format!(
                    "reload refused: {} error(s); first: {first}",
                    errors.0.len()
                );
                self.record(Event::new(Action::PolicyChanged, "local", "", detail));
                return Err(errors);
            }
        };
        match self.policy.write() {
            Ok(mut p) => *p = Arc::new(policy),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(policy),
        }
        info!(file = %file, warnings = warnings.len(), "sharing policy reloaded");
        self.record(Event::new(
            Action::PolicyChanged,
            "local",
            "",
            format!("reloaded {file}"),
        ));
        Ok(warnings)
    }

    /// The largest report accepted: what fits in one message once sealed, with room for
    /// the envelope's header, signature and encryption overhead.
    fn max_item_bytes(&self) -> usize {
        self.config.max_message_bytes.saturating_sub(4096)
    }

    /// A new item id: a ULID, strictly increasing within this process so that items
    /// submitted in the same millisecond keep their order in the outboxes.
    fn next_item_id(&self) -> [u8; 16] {
        let mut ids = self
            .ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ids.generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_bytes()
    }

    /// Logs the sharing decisions of a stored item and wakes the delivery tasks.
    fn announce(&self, submitted: &Submitted) {
        let id = crate::store::ulid_text(&submitted.item_id);
        let kind = report::kind_name(submitted.kind);
        for d in &submitted.decisions {
            if d.state == "queued" {
                let redacted = d.redactions.join(",");
                info!(partner = %d.partner, item_id = %id, kind, rule = %d.rule, redacted = %redacted, "shared: sealed and queued");
                metrics::counter!(crate::metrics::QUEUED, "partner" => d.partner.clone())
                    .increment(1);
                if let Some(n) = self.notifiers.get(&d.partner) {
                    n.notify_one();
                }
            } else {
                info!(partner = %d.partner, item_id = %id, kind, rule = %d.rule, reason = %d.detail, "withheld by policy");
            }
        }
    }

    /// Records one audit event; a failure to record is logged as an error.
    pub fn record(&self, event: Event) {
        self.record_all(std::slice::from_ref(&event));
    }

    /// Records audit events; a failure to record is logged as an error.
    pub fn record_all(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.store.record(events) {
            tracing::error!(error = %e, "cannot write the audit log");
            if let Ok(mut n) = self.record_failures.lock() {
                *n += 1;
            }
        }
    }

    /// The wake-up for `partner`'s delivery task.
    pub(crate) fn notifier(&self, partner: &str) -> Arc<Notify> {
        self.notifiers
            .get(partner)
            .cloned()
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }

    /// The rustls client configuration towards `partner`.
    pub(crate) fn client_config(
        &self,
        partner: &PartnerConfig,
    ) -> Result<Arc<rustls::ClientConfig>, NodeError> {
        let ca = match &partner.ca {
            Some(path) => Some(tls::load_certs(path)?),
            None => None,
        };
        let pin = self
            .partner_keys(&partner.agency)
            .map_or(partner.cert_fingerprint, |held| held.tls_pin);
        Ok(tls::client_config(
            &self.tls_material(),
            ca.as_deref(),
            &partner.agency,
            pin,
        )?)
    }

    pub(crate) fn publish(&self, event: DeliveryEvent) {
        let _ = self.deliveries.send(event);
    }

    /// Deliveries confirmed by verified receipts, as they happen.
    pub fn subscribe_deliveries(&self) -> broadcast::Receiver<DeliveryEvent> {
        self.deliveries.subscribe()
    }

    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, NodeError> {
        let mut extra = Vec::new();
        for partner in &self.config.partners {
            if let Some(path) = &partner.ca {
                extra.extend(tls::load_certs(path)?);
            }
        }
        Ok(tls::server_config_switched(
            &self.tls_material(),
            &extra,
            self.cert_switch(),
        )?)
    }
}

/// Runs CPU-heavy work (sealing) without holding up the async tasks that share this
/// worker thread, where the runtime allows it.
fn off_the_reactor<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// An own item ready to store: the item, its sealed envelopes, and the partners it is
/// withheld from.
type Prepared = (StoredItem, Vec<Sealed>, Vec<Withheld>);

/// What a submission or re-share decided, for the caller.
fn submitted(item: &StoredItem, sealed: &[Sealed], withheld: &[Withheld]) -> Submitted {
    let mut decisions: Vec<pb::DeliveryStatus> = sealed
        .iter()
        .map(|s| pb::DeliveryStatus {
            partner: s.partner.clone(),
            state: "queued".into(),
            detail: String::new(),
            rule: s.rule.clone(),
            redactions: s.redactions.clone(),
        })
        .collect();
    decisions.extend(withheld.iter().map(|w| pb::DeliveryStatus {
        partner: w.partner.clone(),
        state: "withheld".into(),
        detail: w.reason.clone(),
        rule: w.rule.clone(),
        redactions: Vec::new(),
    }));
    Submitted {
        item_id: store::id16(&item.item_id),
        kind: pb::ItemKind::try_from(item.kind).unwrap_or_default(),
        queued_for: sealed.iter().map(|s| s.partner.clone()).collect(),
        withheld_from: withheld
            .iter()
            .map(|w| (w.partner.clone(), w.reason.clone()))
            .collect(),
        decisions,
    }
}

fn view_id(item: &StoredItem) -> String {
    store::ulid_text(&store::id16(&item.item_id))
}

/// Loads the policy file named by `config` and checks it against the partner registry:
/// a policy for an unregistered agency, or for this node itself, is an error; a
/// registered partner without a policy is a warning (it gets nothing).
pub fn load_policy(config: &Config) -> Result<(PolicySet, Vec<PolicyWarning>), PolicyErrors> {
    let (set, mut warnings) = PolicySet::load(&config.policy)?;
    let file = config.policy.as_path();
    let mut errors = Vec::new();
    let in_policy = set.partners();
    for (i, (agency, line)) in set.partner_lines().into_iter().enumerate() {
        let key = format!("partner[{i}].agency");
        if agency == config.agency {
            let expected = format!("a partner agency, not this node's own ({agency})");
            errors.push(PolicyError::new(file, line, &key, expected));
        } else if config.partner(&agency).is_none() {
            let expected = format!(
                "an agency registered in {}; {agency} is not a registered partner",
                config.file.display()
            );
            errors.push(PolicyError::new(file, line, &key, expected));
        }
    }
    for partner in &config.partners {
        if !in_policy.contains(&partner.agency) {
            warnings.push(PolicyWarning {
                file: file.to_owned(),
                line: 0,
                message: format!(
                    "registered partner {} has no policy: nothing is sent to it or accepted from it",
                    partner.agency
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok((set, warnings))
    } else {
        Err(PolicyErrors(errors))
    }
}

/// A serving node. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    shared: Arc<Shared>,
    addr: SocketAddr,
    local_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Node {
    /// Starts serving: binds the peer listener (use port 0 for any free port), the control
    /// socket, and one delivery task per partner.
    pub async fn start(config: Config) -> Result<Self, NodeError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Self::start_on(config, listener).await
    }

    /// Starts serving on an already bound listener.
    pub async fn start_on(config: Config, listener: TcpListener) -> Result<Self, NodeError> {
        tls::install_crypto_provider();
        let addr = listener.local_addr().map_err(|source| NodeError::Listen {
            addr: config.listen,
            source,
        })?;
        let shared = Arc::new(Shared::open_unindexed(config)?);
        tasks_before_start(&shared);
        let server_config = shared.server_config()?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_peers(
            shared.clone(),
            listener,
            server_config,
            stopped.clone(),
        ));
        let control = crate::control::bind(&shared)?;
        tasks.spawn(crate::control::serve(
            shared.clone(),
            control,
            stopped.clone(),
        ));
        let local_addr = match shared.config.local.clone() {
            Some(local) => {
                let listener = crate::local::bind(&local).await?;
                let local_addr = listener.local_addr().map_err(|source| NodeError::Listen {
                    addr: local.listen,
                    source,
                })?;
                let config = crate::local::server_config(
                    &shared.tls_material(),
                    &local,
                    shared.cert_switch(),
                )?;
                tasks.spawn(crate::local::serve(
                    shared.clone(),
                    listener,
                    config,
                    stopped.clone(),
                ));
                Some(local_addr)
            }
            None => None,
        };
        tasks.spawn(exchange::run_pulls(shared.clone(), stopped.clone()));
        tasks.spawn(refresh_gauges(shared.clone(), stopped.clone()));
        for partner in shared.config.partners.clone() {
            tasks.spawn(exchange::run_delivery(
                shared.clone(),
                partner,
                stopped.clone(),
            ));
        }
        info!(agency = %shared.config.agency, %addr, partners = shared.config.partners.len(), "node started");
        Ok(Self {
            shared,
            addr,
            local_addr,
            stop,
            tasks,
        })
    }

    /// The address the peer listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the local listener is bound to, if `[local]` is configured.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The node's shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops every task and waits for them, then closes the audit log with a signed
    /// checkpoint over its newest entry.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Err(e) = self.shared.store.checkpoint() {
            tracing::error!(error = %e, "cannot write the audit log's closing checkpoint");
        }
        let _ = self.shared.store.flush().await;
        info!(agency = %self.shared.config.agency, "node stopped");
    }
}

/// Starts what a serving node does in the background from the first moment: the build
/// of the search index over the items already stored.
fn tasks_before_start(shared: &Arc<Shared>) {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || shared.build_search_index());
}

/// Keeps the gauges read from the store (outbox depths, list versions) current until
/// `stopped` turns true.
async fn refresh_gauges(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let partners: Vec<String> = shared
        .config
        .partners
        .iter()
        .map(|p| p.agency.clone())
        .collect();
    loop {
        let (store, names) = (shared.store.clone(), partners.clone());
        let _ = tokio::task::spawn_blocking(move || crate::metrics::refresh_gauges(&store, &names))
            .await;
        tokio::select! {
            _ = tokio::time::sleep(crate::metrics::GAUGE_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The standard gRPC health service, reporting `service` and the node as a whole as
/// serving, and server reflection over the `entente.v1` schema and the health service,
/// so that `grpc_health_probe` and `grpcurl` work on a listener.
pub(crate) async fn health_and_reflection(
    service: &str,
) -> (
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    Option<
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
        >,
    >,
) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(service, tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| tracing::error!(error = %e, "server reflection unavailable"))
        .ok();
    (health, reflection)
}

/// Accepts TCP connections, completes the TLS handshake (refusals are logged with the
/// peer address and recorded), and hands TLS streams to the gRPC server.
async fn serve_peers(
    shared: Arc<Shared>,
    listener: TcpListener,
    server_config: Arc<rustls::ServerConfig>,
    mut stopped: watch::Receiver<bool>,
) {
    let refused_shared = shared.clone();
    let (accept_loop, conn_rx) = accept_tls(listener, server_config, move |peer, reason| {
        refuse_handshake(&refused_shared, peer, reason)
    });
    let limit = shared.config.max_message_bytes;
    let service = pb::peer_exchange_server::PeerExchangeServer::new(PeerService::new(
        shared.clone(),
        stopped.clone(),
    ))
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let (health, reflection) = health_and_reflection("entente.v1.PeerExchange").await;
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .add_service(health)
        .add_optional_service(reflection)
        .serve_with_incoming_shutdown(conn_rx, async move {
            let _ = stopped.changed().await;
        });
    tokio::select! {
        _ = accept_loop => {}
        r = server => if let Err(e) = r { tracing::error!(error = %e, "peer server failed") },
    }
}

/// Accepts TCP connections on `listener` (with Nagle off) and completes each TLS handshake
/// on a task of its own, within 10 s. Completed connections come out of the returned
/// stream, for a tonic server; a failed or timed-out handshake goes to `refused` with the
/// peer's address and the reason. The returned future runs the accept loop.
pub(crate) fn accept_tls(
    listener: TcpListener,
    server_config: Arc<rustls::ServerConfig>,
    refused: impl Fn(&str, &str) + Clone + Send + Sync + 'static,
) -> (
    impl std::future::Future<Output = ()>,
    tokio_stream::wrappers::ReceiverStream<
        std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    >,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel(64);
    let accept_loop = async move {
        let mut incoming = TcpListenerStream::new(listener);
        while let Some(conn) = incoming.next().await {
            let Ok(tcp) = conn else { continue };
            let _ = tcp.set_nodelay(true);
            let peer = tcp
                .peer_addr()
                .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
            let (acceptor, tx, refused) = (acceptor.clone(), conn_tx.clone(), refused.clone());
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
                match handshake.await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => refused(&peer, &e.to_string()),
                    Err(_) => refused(&peer, "handshake timed out"),
                }
            });
        }
    };
    (
        accept_loop,
        tokio_stream::wrappers::ReceiverStream::new(conn_rx),
    )
}

fn refuse_handshake(shared: &Shared, peer: &str, reason: &str) {
    warn!(peer, reason, "refused TLS handshake");
    metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "TLS handshake")
        .increment(1);
    shared.record(Event::new(
        Action::Refused,
        peer,
        "",
        format!("TLS handshake: {reason}"),
    ));
}
