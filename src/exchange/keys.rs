//! Key announcements on the wire: answering a partner's `AnnounceKeys`, and sending this
//! node's queued announcements to a partner before any delivery.

use std::{net::SocketAddr, sync::Arc};

use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::receive::PeerService;
use crate::{
    audit::{Action, Event},
    config::PartnerConfig,
    keys::AnnouncementError,
    node::{LearnError, Shared},
    pb::{self, peer_exchange_client::PeerExchangeClient},
    tls,
};

/// Largest announcement accepted: a few hundred bytes are enough.
const MAX_ANNOUNCEMENT_BYTES: usize = 4096;

/// The server side of `AnnounceKeys`.
///
/// The TLS peer must be a registered partner; its certificate is checked against the pin
/// (if any) only after the announcement's signatures verify, since a partner that rotated
/// its TLS key presents the certificate the announcement names.
pub(super) async fn announce_keys(
    service: &PeerService,
    request: Request<pb::KeyAnnouncement>,
) -> Result<Response<pb::KeyAnnouncementResult>, Status> {
    let peer = request
        .remote_addr()
        .map_or_else(|| "unknown".to_owned(), |a: SocketAddr| a.to_string());
    let certs = request.peer_certs();
    let Some(leaf) = certs.as_ref().and_then(|c| c.first()) else {
        return Err(service.refuse_peer(&peer, "", "no client certificate"));
    };
    let agency = tls::agency_from_cert(leaf.as_ref())
        .map_err(|e| service.refuse_peer(&peer, "", &format!("unusable certificate: {e}")))?;
    let shared = service.shared();
    let Some(partner) = shared.partner(&agency) else {
        return Err(service.refuse_peer(
            &peer,
            &agency,
            &format!(
                "agency {agency} is not a registered partner of {}",
                shared.config.agency
            ),
        ));
    };
    let fingerprint = tls::fingerprint(leaf.as_ref());
    let _slot = service.open_stream(&partner, &peer)?;
    let announcement = request.into_inner();
    if prost::Message::encoded_len(&announcement) > MAX_ANNOUNCEMENT_BYTES {
        return Err(refused(
            shared,
            &agency,
            AnnouncementError::Malformed(format!("larger than {MAX_ANNOUNCEMENT_BYTES} bytes")),
        ));
    }
    match shared.learn_keys(&agency, fingerprint, &announcement).await {
        Ok(result) => Ok(Response::new(result)),
        Err(LearnError::Refused(e)) => Err(status(&e)),
        Err(LearnError::Store(e)) => {
            tracing::error!(partner = %agency, error = %e, "cannot store learned keys");
            Err(Status::unavailable(
                "the receiver could not store the new keys; retry later",
            ))
        }
    }
}

/// Records a refusal made before [`Shared::learn_keys`] saw the announcement.
fn refused(shared: &Shared, agency: &str, e: AnnouncementError) -> Status {
    warn!(partner = %agency, reason = %e, "refused key announcement");
    shared.record(Event::new(
        Action::Refused,
        agency,
        "",
        format!("key announcement: {e}"),
    ));
    status(&e)
}

fn status(e: &AnnouncementError) -> Status {
    match e {
        AnnouncementError::UnsupportedVersion(_) | AnnouncementError::Malformed(_) => {
            Status::invalid_argument(e.to_string())
        }
        AnnouncementError::Stale { .. } => Status::failed_precondition(e.to_string()),
        _ => Status::permission_denied(e.to_string()),
    }
}

/// Sends `partner` every announcement queued for it, oldest first, dropping each once
/// the partner has applied it. Stops at the first that does not get through.
pub(super) async fn send_pending(
    shared: &Arc<Shared>,
    partner: &PartnerConfig,
    client_config: Arc<rustls::ClientConfig>,
) -> Result<(), String> {
    let pending = shared
        .store
        .pending_announcements(&partner.agency)
        .map_err(|e| e.to_string())?;
    if pending.is_empty() {
        return Ok(());
    }
    let channel = tls::channel(&partner.endpoint, client_config).map_err(|e| e.to_string())?;
    let mut client = PeerExchangeClient::new(channel);
    for announcement in pending {
        let issued_at_ms = announcement.issued_at_ms;
        let answer = match client.announce_keys(announcement).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                let text = format!("{:?}: {}", status.code(), status.message());
                if matches!(
                    status.code(),
                    tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument
                        | tonic::Code::FailedPrecondition
                        | tonic::Code::Unimplemented
                ) {
                    tracing::error!(partner = %partner.agency, reason = %text, "partner refused this node's key announcement; deliveries to it wait until an operator acts");
                    shared.record(Event::new(
                        Action::RefusedByPartner,
                        &partner.agency,
                        "",
                        format!("key announcement: {text}"),
                    ));
                }
                return Err(text);
            }
        };
        shared
            .store
            .announcement_sent(&partner.agency, issued_at_ms)
            .map_err(|e| e.to_string())?;
        shared.store.flush().await.map_err(|e| e.to_string())?;
        let detail = format!(
            "partner holds signing {} and encryption {}{}",
            hex::encode(&answer.signing_key_id),
            hex::encode(&answer.encryption_key_id),
            if answer.already_applied {
                " (applied before)"
            } else {
                ""
            }
        );
        info!(partner = %partner.agency, detail = %detail, "key announcement applied by partner");
        shared.record(Event::new(
            Action::KeyAnnounced,
            &partner.agency,
            "",
            detail,
        ));
    }
    Ok(())
}
