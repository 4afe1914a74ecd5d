//! The local listener: the control service over mutual TLS, for the agency's own people.
//!
//! `[local] listen` binds a listener separate from the peer one. It presents the node's
//! own TLS certificate and requires a client certificate issued by the agency's staff CA
//! (`[local] ca`), never by the federation's CA alone: a partner node's certificate does
//! not chain to the staff CA and is refused at the handshake. A certificate that does
//! chain but carries an agency URI SAN (a node certificate, if the two CAs were ever the
//! same) is refused too.
//!
//! The caller is the certificate's common name; the role is `[local.users]`'s entry for
//! that name, or else the certificate's OU (`analyst` or `operator`). A certificate with
//! neither is refused. Each call checks the role it needs ([`required_role`]) and every
//! call is recorded in the audit log under `user:NAME`.

use std::{path::Path, sync::Arc};

use tokio::{net::TcpListener, sync::watch};
use tonic::transport::Channel;
use tracing::{info, warn};
use x509_parser::extensions::GeneralName;

use crate::{
    audit::{Action, Event},
    config::{Config, Local, Role},
    control::{self, Access, MAX_CONTROL_MESSAGE},
    node::{NodeError, Shared},
    pb::{self, control_client::ControlClient},
    tls::{self, AGENCY_URI_PREFIX, TlsError, TlsMaterial},
};

/// Who is calling on the local listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The certificate's common name.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
}

impl Caller {
    /// How the audit log names the caller.
    pub fn audit_name(&self) -> String {
        format!("user:{}", self.name)
    }
}

/// The role a control call needs, by its gRPC method name.
pub fn required_role(method: &str) -> Role {
    match method {
        "SubmitReport" | "ListItems" | "GetItem" | "Screen" | "SearchItems"
        | "ListCorrelations" | "CloseCorrelation" | "WhoAmI" | "ListWatchlists"
        | "ShowWatchlist" | "CorrectItem" | "RetractItem" | "RequestConsent" | "ListConsents"
        | "CheckLicence" | "ListConsultations" => Role::Analyst,
        // Everything else, including calls added later, needs the stronger role.
        _ => Role::Operator,
    }
}

/// The caller a client certificate (DER) names, under the `[local]` settings.
pub fn caller(der: &[u8], local: &Local) -> Result<Caller, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("certificate cannot be parsed: {e}"))?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let names_agency = san.value.general_names.iter().any(
            |name| matches!(name, GeneralName::URI(uri) if uri.starts_with(AGENCY_URI_PREFIX)),
        );
        if names_agency {
            return Err("a node certificate (it names an agency) is not a user's".into());
        }
    }
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .filter(|cn| !cn.trim().is_empty())
        .ok_or("the certificate has no common name")?;
    let from_ou = subject
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .find_map(Role::parse);
    let role = local
        .users
        .get(&name)
        .copied()
        .or(from_ou)
        .ok_or_else(|| {
            format!("{name}: no role (expected OU \"analyst\" or \"operator\", or an entry in [local.users])")
        })?;
    Ok(Caller { name, role })
}

/// The rustls server config of the local listener: the node's own certificate, client
/// certificates verified against the staff CA (and the node's revocation lists).
pub fn server_config(
    node: &TlsMaterial,
    local: &Local,
    presented: Arc<tls::CertSwitch>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let staff = TlsMaterial {
        certs: node.certs.clone(),
        key: node.key.clone_key(),
        ca: tls::load_certs(&local.ca)?,
        crls: node.crls.clone(),
    };
    tls::server_config_switched(&staff, &[], presented)
}

/// Binds `[local] listen`.
pub async fn bind(local: &Local) -> Result<TcpListener, NodeError> {
    TcpListener::bind(local.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: local.listen,
            source,
        })
}

/// Serves the control service on the local listener until `stopped` turns true.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    server_config: Arc<rustls::ServerConfig>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(local) = shared.config.local.clone() else {
        return;
    };
    let refused_shared = shared.clone();
    let (accept_loop, conn_rx) = crate::node::accept_tls(
        listener,
        server_config,
        move |peer, reason| {
            warn!(peer, reason, "refused TLS handshake on the local listener");
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "local TLS handshake")
                .increment(1);
            refused_shared.record(Event::new(
                Action::Refused,
                peer,
                "",
                format!("local listener TLS handshake: {reason}"),
            ));
        },
    );
    let service = control::service(shared.clone(), Access::Listener(Arc::new(local)));
    let (health, reflection) = crate::node::health_and_reflection("entente.v1.Control").await;
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .add_service(health)
        .add_optional_service(reflection)
        .serve_with_incoming_shutdown(conn_rx, async move {
            let _ = stopped.changed().await;
        });
    info!(agency = %shared.config.agency, "local listener serving");
    tokio::select! {
        _ = accept_loop => {}
        r = server => if let Err(e) = r { tracing::error!(error = %e, "local listener failed") },
    }
}

/// Why the CLI could not reach a node's local listener.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The config has no `[local]` section.
    #[error(
        "config file {0}: a user certificate was given, but the node has no [local] listener \
         to present it to (add [local] listen and ca, see docs/analyst-guide.md)"
    )]
    NoListener(String),
    /// The user's certificate or key, or the node's CA, could not be used.
    #[error("user certificate: {0}")]
    Material(#[from] TlsError),
    /// The listener did not answer, or refused the certificate.
    #[error("local listener {addr}: {reason}")]
    Unreachable {
        /// Where it was expected.
        addr: String,
        /// What went wrong.
        reason: String,
    },
}

/// What a failed first call on the local listener means for the user.
fn connect_failure(status: &tonic::Status) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let cause = causes.last().cloned().unwrap_or_default();
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            format!("refused: {}", status.message())
        }
        _ if cause.contains("Connection refused") => {
            "nothing is listening there: is `entente serve` running with this [local] listen?"
                .to_owned()
        }
        _ => format!(
            "the node closed the connection ({}): it refuses a certificate that is not from \
             its staff CA ([local] ca), is revoked, or is a node's",
            if cause.is_empty() {
                status.message().to_owned()
            } else {
                cause
            }
        ),
    }
}

/// Connects to the local listener of the node `config` describes, as the user whose
/// certificate and key are in `cert` and `key`. The node's certificate is verified
/// against the node's CA (`[tls] ca`) and must name the node's agency. The connection is
/// tried at once, so that a refused certificate is reported here.
pub async fn connect(
    config: &Config,
    cert: &Path,
    key: &Path,
) -> Result<ControlClient<Channel>, ConnectError> {
    tls::install_crypto_provider();
    let local = config
        .local
        .as_ref()
        .ok_or_else(|| ConnectError::NoListener(config.file.display().to_string()))?;
    let material = TlsMaterial::load(cert, key, &config.tls_ca)?;
    let client = tls::client_config(&material, None, &config.agency, None)?;
    let addr = local.listen.to_string();
    let channel = tls::channel(&format!("https://{addr}"), client)?;
    let mut control = ControlClient::new(channel)
        .max_decoding_message_size(MAX_CONTROL_MESSAGE)
        .max_encoding_message_size(MAX_CONTROL_MESSAGE);
    control
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map_err(|status| ConnectError::Unreachable {
            addr,
            reason: connect_failure(&status),
        })?;
    Ok(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_that_commit_the_agency_need_an_operator() {
        for call in [
            "CorrectItem",
            "RetractItem",
            "RequestConsent",
            "ListConsents",
            "CheckLicence",
            "ListConsultations",
            "SearchItems",
        ] {
            assert_eq!(required_role(call), Role::Analyst, "{call}");
        }
        for call in [
            "AnswerConsent",
            "DecideLicence",
            "ReplyConsultation",
            "SearchAudit",
            "RotateKeys",
            "SomeCallAddedLater",
        ] {
            assert_eq!(required_role(call), Role::Operator, "{call}");
        }
    }
}
