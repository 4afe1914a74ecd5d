//! Key rotation through the control socket (`entente keys rotate` on a running node).

use std::path::Path;

use tonic::Status;

use crate::{
    node::{KeyError, RotateRequest, Shared},
    pb, setup,
};

/// Rotates the keys `request` names on the node behind `shared`.
pub async fn rotate_keys(
    shared: &Shared,
    request: pb::RotateKeysRequest,
) -> Result<pb::RotateKeysResponse, Status> {
    let rotate = rotate_request(&request).map_err(|e| Status::invalid_argument(e.to_string()))?;
    shared.rotate_keys(rotate).await.map_err(|e| match e {
        KeyError::NothingChosen | KeyError::NoCa | KeyError::Setup(_) => {
            Status::invalid_argument(e.to_string())
        }
        other => Status::internal(other.to_string()),
    })
}

/// The rotation `request` asks for, with its CA read when the TLS key is to change.
pub fn rotate_request(request: &pb::RotateKeysRequest) -> Result<RotateRequest, KeyError> {
    let tls = match (
        request.tls,
        request.ca_cert.as_str(),
        request.ca_key.as_str(),
    ) {
        (false, _, _) => None,
        (true, "", _) | (true, _, "") => return Err(KeyError::NoCa),
        (true, cert, key) => Some(setup::Ca::load(Path::new(cert), Path::new(key))?),
    };
    Ok(RotateRequest {
        signing: request.signing,
        encryption: request.encryption,
        tls,
    })
}
