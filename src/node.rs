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
    sync::{Arc, Mutex},
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
    identity::{EncryptionKey, Identity, SigningKey},
    pb, report, sharing,
    store::{Store, StoreError, StoredItem},
    tls::{self, TlsMaterial},
};

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
}

/// The state every part of a node shares.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// This node's agency id and private keys.
    pub identity: Identity,
    /// The durable store.
    pub store: Store,
    tls: TlsMaterial,
    notifiers: HashMap<String, Arc<Notify>>,
    deliveries: broadcast::Sender<DeliveryEvent>,
    record_failures: Mutex<u64>,
    ids: Mutex<ulid::Generator>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("agency", &self.config.agency)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Loads keys and TLS material named by `config` and opens the store.
    pub fn open(config: Config) -> Result<Self, NodeError> {
        let identity = Identity {
            agency: config.agency.clone(),
            signing: SigningKey::load(&config.signing_key)?,
            encryption: EncryptionKey::load(&config.encryption_key)?,
        };
        let tls = TlsMaterial::load(&config.tls_cert, &config.tls_key, &config.tls_ca)?;
        let found = tls.agency()?;
        if found != config.agency {
            return Err(NodeError::CertificateAgency {
                file: config.tls_cert.clone(),
                found,
                expected: config.agency.clone(),
            });
        }
        let store = Store::open_patiently(&config.data_dir, std::time::Duration::from_secs(5))?;
        let notifiers = config
            .partners
            .iter()
            .map(|p| (p.agency.clone(), Arc::new(Notify::new())))
            .collect();
        Ok(Self {
            identity,
            store,
            tls,
            notifiers,
            deliveries: broadcast::channel(1024).0,
            record_failures: Mutex::new(0),
            ids: Mutex::new(ulid::Generator::new()),
            config,
        })
    }

    /// Validates a report from this agency, stores it, and seals and queues it for every
    /// partner whose sharing rule allows its kind. Durable when it returns.
    pub async fn submit(&self, report: pb::Report) -> Result<Submitted, NodeError> {
        let mut done = self.submit_batch(vec![report]).await?;
        // One report in, one result out.
        Ok(done.remove(0))
    }

    /// Like [`Shared::submit`] for several reports, with one flush to disk for all. Every
    /// report is validated before any is stored, so one invalid report stores nothing.
    pub async fn submit_batch(
        &self,
        reports: Vec<pb::Report>,
    ) -> Result<Vec<Submitted>, NodeError> {
        for (i, report) in reports.iter().enumerate() {
            report::validate(report, &format!("submitted report {}", i + 1))?;
        }
        let mut done = Vec::with_capacity(reports.len());
        for report in reports {
            done.push(self.store_own(report)?);
        }
        self.store.flush().await?;
        for submitted in &done {
            self.announce(submitted);
        }
        Ok(done)
    }

    /// Stores one validated own report and its sealed envelopes (not yet flushed).
    fn store_own(&self, report: pb::Report) -> Result<Submitted, NodeError> {
        let id = self.next_item_id();
        let kind = report.kind();
        let created_at_ms = crate::now_ms();
        let item = pb::Item {
            body: Some(pb::item::Body::Report(report)),
        };
        let payload = item.encode_to_vec();
        let mut sealed = Vec::new();
        let mut withheld = Vec::new();
        for partner in &self.config.partners {
            if !sharing::may_share(&partner.share, kind) {
                let reason = format!("no share rule for {}", report::kind_name(kind));
                withheld.push((partner.agency.clone(), reason));
                continue;
            }
            let env = envelope::seal(
                &self.identity,
                &partner.agency,
                &partner.keys,
                id,
                kind,
                created_at_ms,
                &payload,
            )
            .map_err(|source| NodeError::Seal {
                partner: partner.agency.clone(),
                source,
            })?;
            let digest = envelope::envelope_digest(&env);
            sealed.push((partner.agency.clone(), env, digest));
        }
        let stored = StoredItem {
            origin: self.config.agency.clone(),
            item_id: id.to_vec(),
            kind: kind as i32,
            created_at_ms,
            stored_at_ms: created_at_ms,
            item: Some(item),
            envelope_digest: Vec::new(),
            own: true,
        };
        self.store.submit(&stored, &sealed, &withheld)?;
        Ok(Submitted {
            item_id: id,
            kind,
            queued_for: sealed.into_iter().map(|(p, _, _)| p).collect(),
            withheld_from: withheld,
        })
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
        for partner in &submitted.queued_for {
            info!(partner = %partner, item_id = %id, kind, "shared: sealed and queued");
            if let Some(n) = self.notifiers.get(partner) {
                n.notify_one();
            }
        }
        for (partner, reason) in &submitted.withheld_from {
            info!(partner = %partner, item_id = %id, kind, reason = %reason, "withheld");
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
        Ok(tls::client_config(
            &self.tls,
            ca.as_deref(),
            &partner.agency,
            partner.cert_fingerprint,
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
        Ok(tls::server_config(&self.tls, &extra)?)
    }
}

/// A serving node. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    shared: Arc<Shared>,
    addr: SocketAddr,
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
        let shared = Arc::new(Shared::open(config)?);
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
            stop,
            tasks,
        })
    }

    /// The address the peer listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let _ = self.shared.store.flush().await;
        info!(agency = %self.shared.config.agency, "node stopped");
    }
}

/// Accepts TCP connections, completes the TLS handshake (refusals are logged with the
/// peer address and recorded), and hands TLS streams to the gRPC server.
async fn serve_peers(
    shared: Arc<Shared>,
    listener: TcpListener,
    server_config: Arc<rustls::ServerConfig>,
    mut stopped: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel(64);
    let accept_shared = shared.clone();
    let accept_loop = async move {
        let mut incoming = TcpListenerStream::new(listener);
        while let Some(conn) = incoming.next().await {
            let Ok(tcp) = conn else { continue };
            let _ = tcp.set_nodelay(true);
            let peer = tcp
                .peer_addr()
                .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
            let acceptor = acceptor.clone();
            let tx = conn_tx.clone();
            let shared = accept_shared.clone();
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
                match handshake.await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(tls)).await;
                    }
                    Ok(Err(e)) => refuse_handshake(&shared, &peer, &e.to_string()),
                    Err(_) => refuse_handshake(&shared, &peer, "handshake timed out"),
                }
            });
        }
    };
    let limit = shared.config.max_message_bytes;
    let service = pb::peer_exchange_server::PeerExchangeServer::new(PeerService::new(
        shared.clone(),
        stopped.clone(),
    ))
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(conn_rx),
            async move {
                let _ = stopped.changed().await;
            },
        );
    tokio::select! {
        _ = accept_loop => {}
        r = server => if let Err(e) = r { tracing::error!(error = %e, "peer server failed") },
    }
}

fn refuse_handshake(shared: &Shared, peer: &str, reason: &str) {
    warn!(peer, reason, "refused TLS handshake");
    shared.record(Event::new(
        Action::Refused,
        peer,
        "",
        format!("TLS handshake: {reason}"),
    ));
}
