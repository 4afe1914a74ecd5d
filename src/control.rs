//! The local control service: how the `entente` command acts on a running node.
//!
//! sled locks its directory, so while `entente serve` runs no other process can open the
//! store. The node therefore serves the control service in two places:
//!
//! - a Unix domain socket, `control.sock` in its data directory, created with mode 0600:
//!   only the operating-system user that runs the node (and root) can connect, and that
//!   user can read the node's keys anyway, so it acts as an operator (`local` in the
//!   audit log);
//! - the local listener (`[local]`, see [`crate::local`]), over mutual TLS, where each
//!   analyst or operator presents a personal certificate and gets the role it carries.
//!
//! Both go through [`Authorized`], the one place that decides whether a call may proceed
//! and under which name its audit entries are written. The CLI uses the local listener
//! when given a user certificate, else the socket and, when no node is running, opens the
//! store itself.

use std::{
    path::PathBuf,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{net::UnixListener, sync::watch};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::{
    audit::{Action, Event},
    config::{Local, Role},
    node::{NodeError, Shared},
    pb::{self, control_client::ControlClient, control_server::ControlServer},
    store,
};

mod analyst;

pub use analyst::{close_correlation, correlations, search_items};

mod audit;

pub use audit::search_audit;

mod watchlists;

pub use watchlists::{import_response, list_watchlists, show_watchlist};

/// Largest message on the control socket, either way: room for a whole published list
/// (the full SDN list is tens of megabytes as entries).
pub const MAX_CONTROL_MESSAGE: usize = 256 * 1024 * 1024;

mod screening;

pub use screening::screen;

mod keys;

pub use keys::{rotate_keys, rotate_request as keys_request};

mod lifecycle;

pub use lifecycle::{list_consents, list_consultations};

/// How long a search waits for the search index to be built after start-up before it
/// is refused as unavailable.
const SEARCH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Default and largest number of items `ListItems` returns.
const LIST_DEFAULT: usize = 100;
const LIST_MAX: usize = 10_000;

/// The control socket of a node whose data directory is `data_dir`.
pub fn socket_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Binds the control socket (replacing a stale one left by a killed node).
pub fn bind(shared: &Shared) -> Result<UnixListener, NodeError> {
    let path = socket_path(&shared.config.data_dir);
    let err = |source| NodeError::Control {
        path: path.clone(),
        source,
    };
    if path.exists() {
        std::fs::remove_file(&path).map_err(err)?;
    }
    let listener = UnixListener::bind(&path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(listener)
}

/// Serves the control service until `stopped` turns true.
pub async fn serve(
    shared: Arc<Shared>,
    listener: UnixListener,
    mut stopped: watch::Receiver<bool>,
) {
    let path = socket_path(&shared.config.data_dir);
    let (health, reflection) = crate::node::health_and_reflection("entente.v1.Control").await;
    let result = tonic::transport::Server::builder()
        .add_service(service(shared, Access::Socket))
        .add_service(health)
        .add_optional_service(reflection)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let _ = stopped.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "control socket failed");
    }
    let _ = std::fs::remove_file(path);
}

/// Where a control call came from, which decides who the caller is.
#[derive(Debug, Clone)]
pub enum Access {
    /// The Unix socket: the operating-system user that runs the node, an operator.
    Socket,
    /// The local listener: the user named by the client certificate, under these settings.
    Listener(Arc<Local>),
}

/// The caller of the control call being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerInfo {
    /// The name audit entries are written under: `local`, or `user:NAME`.
    pub audit_name: String,
    /// The certificate's common name, or `local`.
    pub name: String,
    /// The caller's role.
    pub role: Role,
}

impl CallerInfo {
    fn local() -> Self {
        Self {
            audit_name: "local".into(),
            name: "local".into(),
            role: Role::Operator,
        }
    }
}

tokio::task_local! {
    static CALLER: CallerInfo;
}

/// The caller of the control call being served; `local` (an operator) outside a call,
/// as when a command reads a stopped node's store itself.
pub fn current_caller() -> CallerInfo {
    CALLER
        .try_with(Clone::clone)
        .unwrap_or_else(|_| CallerInfo::local())
}

/// The control service as served in `access`, behind its access check.
pub fn service(shared: Arc<Shared>, access: Access) -> Authorized<ControlServer<ControlService>> {
    let inner = ControlServer::new(ControlService {
        shared: shared.clone(),
    })
    .max_decoding_message_size(MAX_CONTROL_MESSAGE)
    .max_encoding_message_size(MAX_CONTROL_MESSAGE);
    Authorized {
        inner,
        access,
        shared,
    }
}

/// The control service behind its access check: it names the caller of each call, refuses
/// (and records) a call the caller's role does not allow, and serves the others with the
/// caller known to the handlers ([`current_caller`]).
#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    access: Access,
    shared: Arc<Shared>,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Authorized<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let caller = match self.caller(&request, &method) {
            Ok(caller) => caller,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(CALLER.scope(caller, async move { inner.call(request).await }))
    }
}

impl<S> Authorized<S> {
    /// Who is calling, if the call may proceed.
    fn caller<B>(&self, request: &http::Request<B>, method: &str) -> Result<CallerInfo, Status> {
        let Access::Listener(local) = &self.access else {
            return Ok(CallerInfo::local());
        };
        let certs = request
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
            .and_then(|info| info.peer_certs());
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
            .and_then(|info| info.get_ref().remote_addr())
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let leaf = certs.as_ref().and_then(|c| c.first().cloned());
        let caller = leaf
            .ok_or_else(|| "no client certificate".to_owned())
            .and_then(|der| crate::local::caller(&der, local));
        let refuse = |who: &str, reason: String| {
            metrics::counter!(crate::metrics::ACCESS_DENIED, "method" => method.to_owned())
                .increment(1);
            self.shared.record(Event::new(
                Action::Refused,
                who,
                "",
                format!("local listener {method}: {reason}"),
            ));
            tracing::warn!(
                peer = who,
                method,
                reason,
                "refused a call on the local listener"
            );
        };
        match caller {
            Err(reason) => {
                refuse(&peer, reason.clone());
                Err(Status::unauthenticated(format!("refused: {reason}")))
            }
            Ok(caller) => {
                let needed = crate::local::required_role(method);
                if caller.role < needed {
                    let reason = format!(
                        "{} has the {} role; {method} needs the {} role",
                        caller.name,
                        caller.role.name(),
                        needed.name()
                    );
                    refuse(&caller.audit_name(), reason.clone());
                    return Err(Status::permission_denied(reason));
                }
                Ok(CallerInfo {
                    audit_name: caller.audit_name(),
                    name: caller.name,
                    role: caller.role,
                })
            }
        }
    }
}

/// The control service's handlers.
pub struct ControlService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl pb::control_server::Control for ControlService {
    async fn submit_report(
        &self,
        request: Request<pb::SubmitReportRequest>,
    ) -> Result<Response<pb::SubmitReportResponse>, Status> {
        let report = request
            .into_inner()
            .report
            .ok_or_else(|| Status::invalid_argument("request has no report"))?;
        let submitted = self.shared.submit(report).await.map_err(status)?;
        Ok(Response::new(submit_response(submitted)))
    }

    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ListItemsResponse>, Status> {
        let limit = request.into_inner().limit as usize;
        record_query(&self.shared.store, "list", &format!("limit {limit}")).map_err(unrecorded)?;
        let items =
            list_items(&self.shared.store, limit).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ListItemsResponse { items }))
    }

    async fn get_item(
        &self,
        request: Request<pb::GetItemRequest>,
    ) -> Result<Response<pb::GetItemResponse>, Status> {
        let id = request.into_inner().item_id;
        record_query(&self.shared.store, "show", &id).map_err(unrecorded)?;
        Ok(Response::new(
            get_item(&self.shared.store, &id).map_err(status)?,
        ))
    }

    async fn screen(
        &self,
        request: Request<pb::ScreenRequest>,
    ) -> Result<Response<pb::ScreenResponse>, Status> {
        let shared = &self.shared;
        let request = request.into_inner();
        let entries = shared.screening_entries();
        let response =
            screen(&shared.store, &request, entries, |q| shared.screen(q)).map_err(status)?;
        Ok(Response::new(response))
    }

    async fn share_item(
        &self,
        request: Request<pb::ShareItemRequest>,
    ) -> Result<Response<pb::SubmitReportResponse>, Status> {
        let id = request.into_inner().item_id;
        let done = self.shared.share_again(&id).await.map_err(status)?;
        Ok(Response::new(submit_response(done)))
    }

    async fn import_watchlist(
        &self,
        request: Request<pb::ImportWatchlistRequest>,
    ) -> Result<Response<pb::ImportWatchlistResponse>, Status> {
        let request = request.into_inner();
        let published = self
            .shared
            .import_list(&request.list, request.entries, &request.source)
            .await
            .map_err(status)?;
        Ok(Response::new(import_response(&published)))
    }

    async fn list_watchlists(
        &self,
        _request: Request<pb::ListWatchlistsRequest>,
    ) -> Result<Response<pb::ListWatchlistsResponse>, Status> {
        let shared = &self.shared;
        record_query(&shared.store, "watchlist list", "").map_err(unrecorded)?;
        let lists = list_watchlists(&shared.store, &shared.config, &shared.policy())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ListWatchlistsResponse { lists }))
    }

    async fn show_watchlist(
        &self,
        request: Request<pb::ShowWatchlistRequest>,
    ) -> Result<Response<pb::ShowWatchlistResponse>, Status> {
        let request = request.into_inner();
        let shared = &self.shared;
        let what = format!("{} {}", request.list, request.entry_id);
        record_query(&shared.store, "watchlist show", what.trim_end()).map_err(unrecorded)?;
        let shown = show_watchlist(&shared.store, &shared.config, &shared.policy(), &request)
            .map_err(status)?;
        Ok(Response::new(shown))
    }

    async fn search_audit(
        &self,
        request: Request<pb::SearchAuditRequest>,
    ) -> Result<Response<pb::SearchAuditResponse>, Status> {
        let found = search_audit(&self.shared.store, &request.into_inner())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(found))
    }

    async fn search_items(
        &self,
        request: Request<pb::SearchItemsRequest>,
    ) -> Result<Response<pb::SearchItemsResponse>, Status> {
        let shared = &self.shared;
        if !shared.search_ready(SEARCH_PATIENCE).await {
            return Err(Status::unavailable(format!(
                "the search index is still being built after start-up ({} items so far); try again shortly",
                shared.search_len()
            )));
        }
        let found = search_items(&shared.store, &request.into_inner(), |s| {
            shared.search_items(s)
        })
        .map_err(status)?;
        Ok(Response::new(found))
    }

    async fn list_correlations(
        &self,
        request: Request<pb::ListCorrelationsRequest>,
    ) -> Result<Response<pb::ListCorrelationsResponse>, Status> {
        let found = correlations(&self.shared.store, &request.into_inner()).map_err(status)?;
        Ok(Response::new(found))
    }

    async fn close_correlation(
        &self,
        request: Request<pb::CloseCorrelationRequest>,
    ) -> Result<Response<pb::Correlation>, Status> {
        let closed =
            close_correlation(&self.shared.store, &request.into_inner()).map_err(status)?;
        Ok(Response::new(closed))
    }

    async fn who_am_i(
        &self,
        _request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = current_caller();
        Ok(Response::new(pb::WhoAmIResponse {
            name: caller.name,
            role: caller.role.name().to_owned(),
            agency: self.shared.config.agency.clone(),
        }))
    }

    async fn correct_item(
        &self,
        request: Request<pb::CorrectItemRequest>,
    ) -> Result<Response<pb::LifecycleResponse>, Status> {
        let r = request.into_inner();
        let report = r
            .report
            .ok_or_else(|| Status::invalid_argument("request has no report"))?;
        let done = self
            .shared
            .correct(&r.item_id, report, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(done))
    }

    async fn retract_item(
        &self,
        request: Request<pb::RetractItemRequest>,
    ) -> Result<Response<pb::LifecycleResponse>, Status> {
        let r = request.into_inner();
        let done = self
            .shared
            .retract(&r.item_id, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(done))
    }

    async fn request_consent(
        &self,
        request: Request<pb::RequestConsentRequest>,
    ) -> Result<Response<pb::LifecycleResponse>, Status> {
        let r = request.into_inner();
        let done = self
            .shared
            .request_consent(&r.item_id, &r.third_party, &r.note)
            .await
            .map_err(status)?;
        Ok(Response::new(done))
    }

    async fn list_consents(
        &self,
        _request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        Ok(Response::new(
            list_consents(&self.shared.store).map_err(status)?,
        ))
    }

    async fn answer_consent(
        &self,
        request: Request<pb::AnswerConsentRequest>,
    ) -> Result<Response<pb::LifecycleResponse>, Status> {
        let r = request.into_inner();
        let done = self
            .shared
            .answer_consent(&r.request_id, r.grant, &r.note)
            .await
            .map_err(status)?;
        Ok(Response::new(done))
    }

    async fn check_licence(
        &self,
        request: Request<pb::CheckLicenceRequest>,
    ) -> Result<Response<pb::CheckLicenceResponse>, Status> {
        let r = request.into_inner();
        let application = crate::lifecycle::parse_application(&r.application_json, &r.source)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let done = self
            .shared
            .check_licence(&application, r.deadline_days, r.dry_run)
            .await
            .map_err(status)?;
        Ok(Response::new(done))
    }

    async fn decide_licence(
        &self,
        request: Request<pb::DecideLicenceRequest>,
    ) -> Result<Response<pb::DecideLicenceResponse>, Status> {
        let r = request.into_inner();
        let done = self
            .shared
            .decide_licence(&r.reference, r.grant, &r.note)
            .await
            .map_err(status)?;
        Ok(Response::new(done))
    }

    async fn list_consultations(
        &self,
        request: Request<pb::ListConsultationsRequest>,
    ) -> Result<Response<pb::ListConsultationsResponse>, Status> {
        Ok(Response::new(
            list_consultations(&self.shared.store, &request.into_inner()).map_err(status)?,
        ))
    }

    async fn reply_consultation(
        &self,
        request: Request<pb::ReplyConsultationRequest>,
    ) -> Result<Response<pb::LifecycleResponse>, Status> {
        let r = request.into_inner();
        let done = self
            .shared
            .reply_consultation(&r.consultation_id, r.objects, &r.note)
            .await
            .map_err(status)?;
        Ok(Response::new(done))
    }

    async fn reload_policy(
        &self,
        _request: Request<pb::ReloadPolicyRequest>,
    ) -> Result<Response<pb::ReloadPolicyResponse>, Status> {
        match self.shared.reload_policy() {
            Ok(warnings) => Ok(Response::new(pb::ReloadPolicyResponse {
                warnings: warnings.iter().map(ToString::to_string).collect(),
            })),
            Err(errors) => Err(Status::invalid_argument(format!(
                "policy reload refused; the previous policy stays in force:\n{errors}"
            ))),
        }
    }

    async fn rotate_keys(
        &self,
        request: Request<pb::RotateKeysRequest>,
    ) -> Result<Response<pb::RotateKeysResponse>, Status> {
        rotate_keys(&self.shared, request.into_inner())
            .await
            .map(Response::new)
    }
}

/// A status as the CLI shows it: its message, and what its code means for the user.
pub fn status_text(status: &Status) -> String {
    match status.code() {
        tonic::Code::Unavailable => format!("not reachable ({})", status.message()),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            format!("refused: {}", status.message())
        }
        _ => status.message().to_owned(),
    }
}

/// The status of a query that was not answered because it could not be recorded.
fn unrecorded(e: store::StoreError) -> Status {
    status(NodeError::Store(e))
}

/// Maps a node error to the status the CLI shows.
fn status(e: NodeError) -> Status {
    match e {
        NodeError::Report(e) => Status::invalid_argument(e.to_string()),
        NodeError::NoSuchItem(_)
        | NodeError::NoSuch { .. }
        | NodeError::Store(store::StoreError::NoSuchCorrelation) => {
            Status::not_found(e.to_string())
        }
        NodeError::Invalid(_) | NodeError::TooLarge { .. } => {
            Status::invalid_argument(e.to_string())
        }
        NodeError::NotAllowed(_) => Status::failed_precondition(e.to_string()),
        NodeError::Store(store::StoreError::LowSpace { .. }) => {
            Status::resource_exhausted(e.to_string())
        }
        NodeError::Store(store::StoreError::CorrelationClosed) => {
            Status::failed_precondition(e.to_string())
        }
        NodeError::List(crate::node::ListError::NoSuchList(_)) => Status::not_found(e.to_string()),
        NodeError::List(
            crate::node::ListError::Name(_)
            | crate::node::ListError::NotOwner { .. }
            | crate::node::ListError::BadEntry { .. },
        ) => Status::invalid_argument(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// The answer to a submission or re-share.
pub fn submit_response(s: crate::node::Submitted) -> pb::SubmitReportResponse {
    pb::SubmitReportResponse {
        item_id: store::ulid_text(&s.item_id),
        queued_for: s.queued_for,
        withheld_from: s.withheld_from.into_iter().map(|(p, _)| p).collect(),
        decisions: s.decisions,
    }
}

/// `text` with control characters replaced by spaces, cut to `chars` characters: what the
/// audit log keeps of a caller's words.
pub(crate) fn clipped(text: &str, chars: usize) -> String {
    text.trim()
        .chars()
        .take(chars)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A query's audit detail: its settings (if any) and what came of it.
pub(crate) fn outcome(settings: &str, result: String) -> String {
    match settings.trim() {
        "" => result,
        settings => format!("{settings}: {result}"),
    }
}

/// Records a query in the audit log under the caller's name ([`current_caller`]): `local`
/// for the control socket or a command reading the store itself, `user:NAME` on the local
/// listener. A query that cannot be recorded is not answered: the caller returns the error.
pub fn record_query(
    store: &store::Store,
    what: &str,
    detail: &str,
) -> Result<(), store::StoreError> {
    record_query_with_terms(store, what, detail, "")
}

/// Like [`record_query`], with the terms the query was asked with (names, free text),
/// which the entry keeps sealed with the node's data key ([`crate::audit::Entry::sealed`]).
pub fn record_query_with_terms(
    store: &store::Store,
    what: &str,
    detail: &str,
    terms: &str,
) -> Result<(), store::StoreError> {
    metrics::counter!(crate::metrics::QUERIES, "kind" => what.to_owned()).increment(1);
    let caller = current_caller();
    let event = crate::audit::Event::new(
        crate::audit::Action::Query,
        &caller.audit_name,
        "",
        format!("{what} {detail}").trim_end().to_owned(),
    )
    .with_sealed(terms);
    store.record(&[event]).inspect_err(|e| {
        tracing::error!(error = %e, query = what, "cannot write the audit log; the query is refused");
    })
}

/// Item summaries, newest first; the same for the socket and for a stopped node.
pub fn list_items(
    store: &store::Store,
    limit: usize,
) -> Result<Vec<pb::ItemSummary>, store::StoreError> {
    let limit = if limit == 0 {
        LIST_DEFAULT
    } else {
        limit.min(LIST_MAX)
    };
    store
        .list_items(limit)?
        .iter()
        .map(|item| summary(store, item))
        .collect()
}

/// One item in full; the same for the socket and for a stopped node.
pub fn get_item(store: &store::Store, item_id: &str) -> Result<pb::GetItemResponse, NodeError> {
    let id = ulid::Ulid::from_string(item_id)
        .map_err(|_| NodeError::NoSuchItem(item_id.to_owned()))?
        .to_bytes();
    let copies = store.item(&id)?;
    let Some(item) = store::preferred_copy(&copies) else {
        // A withdrawn item: its content is gone, its tombstone stays.
        let Some(t) = store.tombstones_of(&id)?.into_iter().next() else {
            return Err(NodeError::NoSuchItem(item_id.to_owned()));
        };
        let signature = match store.tombstone_voucher(&id, &t.originator)? {
            None => format!(
                "tombstone signed by {}'s key {}, checked on receipt",
                t.originator,
                hex::encode(&t.signer_key_id)
            ),
            Some(partner) => format!(
                "tombstone passed on by {partner}, taken on its word: no keys of {} are held \
                 to check its signature (key {})",
                t.originator,
                hex::encode(&t.signer_key_id)
            ),
        };
        let mut response = pb::GetItemResponse {
            summary: Some(pb::ItemSummary {
                item_id: store::ulid_text(&id),
                sender: t.originator.clone(),
                originator: t.originator.clone(),
                title: "(retracted by its originator)".into(),
                ..Default::default()
            }),
            signature,
            ..Default::default()
        };
        lifecycle::add_lifecycle(store, &id, None, &mut response)?;
        return Ok(response);
    };
    let screening = store.screening(&id, &item.sender)?;
    let signature = if item.own {
        "own: not signed until it is sealed for a partner".to_owned()
    } else {
        format!(
            "verified: signed by {}'s registered key, checked on receipt; envelope digest {}",
            item.sender,
            hex::encode(&item.envelope_digest)
        )
    };
    let mut response = pb::GetItemResponse {
        summary: Some(summary(store, item)?),
        report: item.report().cloned(),
        screening_hits: screening.map(|s| s.hits).unwrap_or_default(),
        correlations: store.item_correlations(&id)?,
        signature,
        ..Default::default()
    };
    lifecycle::add_lifecycle(store, &id, Some(item), &mut response)?;
    Ok(response)
}

fn summary(
    store: &store::Store,
    item: &store::StoredItem,
) -> Result<pb::ItemSummary, store::StoreError> {
    let id = store::id16(&item.item_id);
    let deliveries = store
        .deliveries(&id)?
        .into_iter()
        .map(|(partner, r)| pb::DeliveryStatus {
            partner,
            state: r.state,
            detail: r.detail,
            rule: r.rule,
            redactions: r.redactions,
        })
        .collect();
    let report = item.report();
    Ok(pb::ItemSummary {
        item_id: store::ulid_text(&id),
        sender: item.sender.clone(),
        kind: item.kind,
        title: report.map(|r| r.title.clone()).unwrap_or_default(),
        subjects: report
            .map(|r| r.subjects.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default(),
        created_at_ms: item.created_at_ms,
        stored_at_ms: item.stored_at_ms,
        own: item.own,
        deliveries,
        tlp: report
            .and_then(|r| r.handling.as_ref())
            .map_or(0, |h| h.tlp),
        originator: item.origin.clone(),
        screening_hits: store
            .screening(&id, &item.sender)?
            .map_or(0, |s| s.hits.len() as u32),
    })
}

/// Opens the store of a node that is not running, for a command to read it. The node's
/// signing key goes with it, so that the command's own audit entries are followed by a
/// checkpoint when they complete a run, as the node's are. A key file that cannot be read
/// does not stop the command (it may be run to find out what is wrong with the node): its
/// entries then get no checkpoint, and a warning says so.
pub fn open_store(config: &crate::config::Config) -> Result<store::Store, NodeError> {
    let store = store::Store::open_with_key_file(&config.data_dir, &config.data_key)?;
    match crate::identity::SigningKey::load(&config.signing_key) {
        Ok(signing) => Ok(store.with_checkpoints(Arc::new(signing))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the signing key: this command's audit entries get no checkpoint");
            Ok(store)
        }
    }
}

/// Connects to the control socket of a running node, if there is one.
pub async fn connect(
    data_dir: &std::path::Path,
) -> Option<ControlClient<tonic::transport::Channel>> {
    let path = socket_path(data_dir);
    if !path.exists() {
        return None;
    }
    let channel = tonic::transport::Endpoint::from_static("http://control.local")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .ok()?;
    Some(
        ControlClient::new(channel)
            .max_decoding_message_size(MAX_CONTROL_MESSAGE)
            .max_encoding_message_size(MAX_CONTROL_MESSAGE),
    )
}
