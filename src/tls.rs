//! X.509 material and the rustls configurations for mutual TLS between nodes.
//!
//! Every node holds a certificate issued by a CA that its partners trust. The certificate
//! names the node's agency in a URI subject alternative name, `urn:entente:agency:US-BIS`,
//! so that the TLS layer alone can say which agency is on the other end of a connection.
//!
//! - The peer listener ([`server_config`]) requires a client certificate that chains to a
//!   trusted CA. It does not decide which agencies may talk to it: the exchange service
//!   reads the agency from the peer's certificate ([`agency_from_cert`]) and refuses
//!   agencies that are not registered partners.
//! - Toward one partner ([`client_config`]), the chain and host name are checked as usual,
//!   then the certificate must name the expected agency and, when pinned, have the
//!   expected fingerprint. A valid certificate of the wrong agency is refused.
//! - [`channel`] gives a tonic channel that performs TCP and TLS itself with such a config,
//!   so that each partner gets its own verifier.
//!
//! The configs always use the ring provider (TLS 1.2 and 1.3) and offer only ALPN `h2`.
//! Nothing here logs or prints private keys: [`TlsMaterial`]'s `Debug` hides the key.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use hyper_util::rt::TokioIo;
use rustls::{
    DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{
        CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
        pem::PemObject,
    },
    server::WebPkiClientVerifier,
};
use x509_parser::extensions::GeneralName;
use zeroize::Zeroizing;

use crate::identity::{self, IdentityError};

/// The prefix of the URI subject alternative name that carries a node's agency id.
pub const AGENCY_URI_PREFIX: &str = "urn:entente:agency:";

/// How long [`channel`] waits for TCP and TLS to complete.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an HTTP/2 ping checks that a partner connection is still alive.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long to wait for the answer to that ping before dropping the connection.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors about certificates, keys and TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        /// What the file should hold ("certificate", "private key", "CA certificate").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file is not PEM, or holds none of what it should.
    #[error("{what} file {path}: {reason}")]
    BadFile {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong, without any key bytes.
        reason: String,
    },
    /// A certificate cannot be parsed as X.509.
    #[error("certificate cannot be parsed as X.509: {0}")]
    BadCertificate(String),
    /// A certificate carries no URI SAN with [`AGENCY_URI_PREFIX`].
    #[error("certificate names no agency: expected a URI SAN \"{AGENCY_URI_PREFIX}AGENCY-ID\"")]
    NoAgency,
    /// A certificate carries more than one agency URI SAN.
    #[error("certificate names {0} agencies in URI SANs; exactly one is allowed")]
    ManyAgencies(usize),
    /// The agency in a certificate is not a valid agency id.
    #[error("certificate names an invalid agency: {0}")]
    BadAgency(#[source] IdentityError),
    /// A partner presented a valid certificate of another agency.
    #[error("partner certificate names agency {found}, expected {expected}")]
    UnexpectedAgency {
        /// The agency that was expected at this endpoint.
        expected: String,
        /// The agency the certificate names.
        found: String,
    },
    /// A partner's certificate does not match the pinned fingerprint.
    #[error("partner certificate has fingerprint sha256:{found}, pinned sha256:{expected}")]
    PinMismatch {
        /// The pinned fingerprint, hex.
        expected: String,
        /// The presented certificate's fingerprint, hex.
        found: String,
    },
    /// A set of CA certificates is empty or holds an unusable certificate.
    #[error("CA certificates: {0}")]
    BadCa(String),
    /// rustls refused the configuration (for example, a key that does not match the
    /// certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// An endpoint is not `https://HOST:PORT`.
    #[error("endpoint {endpoint:?}: {reason}; expected \"https://HOST:PORT\"")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Installs the ring crypto provider as the process default, once.
///
/// tonic and any rustls config built without an explicit provider use the process default;
/// with more than one provider compiled into the tree, rustls refuses to pick one and
/// panics. Calling this again, or after another provider was installed, does nothing.
pub fn install_crypto_provider() {
    // An error only means a default is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The agency id in a DER certificate's URI SAN `urn:entente:agency:ID`.
///
/// Exactly one such SAN must be present and the id must be valid
/// ([`identity::validate_agency_id`]). Other SANs (DNS names, addresses) are ignored.
pub fn agency_from_cert(der: &[u8]) -> Result<String, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let agencies: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(AGENCY_URI_PREFIX),
            _ => None,
        })
        .collect();
    match agencies[..] {
        [] => Err(TlsError::NoAgency),
        [agency] => {
            identity::validate_agency_id(agency).map_err(TlsError::BadAgency)?;
            Ok(agency.to_owned())
        }
        _ => Err(TlsError::ManyAgencies(agencies.len())),
    }
}

/// The SHA-256 digest of a DER certificate, as pinned in `cert_fingerprint`.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    out
}

/// A node's TLS certificate chain, private key and trusted CA certificates.
pub struct TlsMaterial {
    /// The node's certificate chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The private key of the leaf certificate.
    pub key: PrivateKeyDer<'static>,
    /// CA certificates trusted for partner certificates.
    pub ca: Vec<CertificateDer<'static>>,
    /// Certificate revocation lists: a certificate listed in one is refused at the
    /// handshake, on both sides.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl TlsMaterial {
    /// Reads the certificate chain, private key and CA certificates from PEM files.
    ///
    /// Each file must hold at least one item of its kind, and every CA certificate must be
    /// usable as a trust anchor; an error names the file that is wrong.
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            certs: read_certs("certificate", cert)?,
            key: read_key(key)?,
            ca: load_certs(ca)?,
            crls: Vec::new(),
        })
    }

    /// The same material, also refusing certificates listed in `crls`.
    pub fn with_crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls = crls;
        self
    }

    /// The agency id named in this node's own (leaf) certificate.
    pub fn agency(&self) -> Result<String, TlsError> {
        let leaf = self.certs.first().ok_or(TlsError::NoAgency)?;
        agency_from_cert(leaf)
    }
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("certs", &self.certs.len())
            .field("key", &"hidden")
            .field("ca", &self.ca.len())
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// Reads CA certificates from a PEM file (such as a partner's `ca`), checking that each is
/// usable as a trust anchor.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = read_certs("CA certificate", path)?;
    root_store(&certs).map_err(|e| TlsError::BadFile {
        what: "CA certificate",
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(certs)
}

fn read_file(what: &'static str, path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    Ok(Zeroizing::new(bytes))
}

/// Reads certificate revocation lists (PEM `X509 CRL` blocks) from `path`. Each is checked
/// against its issuer, and must be signed by a trusted CA, when a certificate is verified.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let what = "certificate revocation list";
    let text = read_file(what, path)?;
    let bad = |reason: String| TlsError::BadFile {
        what,
        path: path.to_owned(),
        reason,
    };
    let crls = CertificateRevocationListDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not valid PEM ({e})")))?;
    if crls.is_empty() {
        return Err(bad("holds no \"X509 CRL\" PEM block".into()));
    }
    Ok(crls)
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read_file(what, path)?;
    let bad = |reason: String| TlsError::BadFile {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(bad("holds no \"CERTIFICATE\" PEM block".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read_file("private key", path)?;
    // The parser's message never contains key bytes, only what it expected.
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::BadFile {
        what: "private key",
        path: path.to_owned(),
        reason: format!("expected a PEM private key (PKCS#8, SEC1 or PKCS#1): {e}"),
    })
}

fn root_store(cas: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    if cas.is_empty() {
        return Err(TlsError::BadCa("no CA certificate given".into()));
    }
    let mut store = RootCertStore::empty();
    for (i, ca) in cas.iter().enumerate() {
        store.add(ca.clone()).map_err(|e| {
            TlsError::BadCa(format!("certificate {} is not a usable CA: {e}", i + 1))
        })?;
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Server side of the peer listener: client certificate REQUIRED, chain verified against
/// `material.ca` plus `extra_cas` (WebPkiClientVerifier), ALPN "h2", TLS 1.2 and 1.3.
///
/// `extra_cas` holds the CAs of partners whose certificates come from another CA. Any
/// certificate from a trusted CA passes the handshake: the caller must map the peer's
/// certificate to a registered partner ([`agency_from_cert`], and [`fingerprint`] when
/// the partner is pinned) before acting on a request.
pub fn server_config(
    material: &TlsMaterial,
    extra_cas: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_switched(material, extra_cas, Arc::new(CertSwitch::new(material)?))
}

/// Like [`server_config`], presenting whatever certificate `switch` holds at each
/// handshake, so that a rotated certificate is served without a restart.
pub fn server_config_switched(
    material: &TlsMaterial,
    extra_cas: &[CertificateDer<'static>],
    switch: Arc<CertSwitch>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cas: Vec<_> = material.ca.iter().chain(extra_cas).cloned().collect();
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(root_store(&cas)?, provider.clone())
        .with_crls(material.crls.iter().cloned())
        // A partner from a CA that publishes no list here is not refused for that.
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| TlsError::BadCa(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(switch);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate and key a server presents, replaceable while it serves.
pub struct CertSwitch {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl CertSwitch {
    /// Holds the certificate chain and key of `material`.
    pub fn new(material: &TlsMaterial) -> Result<Self, TlsError> {
        Ok(Self {
            current: std::sync::RwLock::new(certified_key(material)?),
        })
    }

    /// Presents the certificate chain and key of `material` from the next handshake on.
    pub fn replace(&self, material: &TlsMaterial) -> Result<(), TlsError> {
        let key = certified_key(material)?;
        match self.current.write() {
            Ok(mut current) => *current = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
        Ok(())
    }
}

impl fmt::Debug for CertSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertSwitch(key hidden)")
    }
}

impl rustls::server::ResolvesServerCert for CertSwitch {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// The chain and signing key of `material`, checked to belong together.
fn certified_key(material: &TlsMaterial) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let key = provider()
        .key_provider
        .load_private_key(material.key.clone_key())?;
    let certified = rustls::sign::CertifiedKey::new(material.certs.clone(), key);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

/// The DNS names and IP addresses in a DER certificate's subject alternative names, as
/// text: what a reissued certificate must name again.
pub fn host_names(der: &[u8]) -> Result<Vec<String>, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    Ok(san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// Client side toward one partner: presents our certificate; verifies the partner's chain
/// against `partner_ca` (or `material.ca` when `None`) with the server name taken from the
/// endpoint host (DNS name or IP), THEN requires that the leaf's agency URI SAN equals
/// `expected_agency`, THEN, when `pin` is `Some`, that `fingerprint(leaf) == pin`.
/// ALPN "h2", TLS 1.2 and 1.3.
pub fn client_config(
    material: &TlsMaterial,
    partner_ca: Option<&[CertificateDer<'static>]>,
    expected_agency: &str,
    pin: Option<[u8; 32]>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let roots = root_store(partner_ca.unwrap_or(&material.ca))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(material.crls.iter().cloned())
        // A partner from a CA that publishes no list here is not refused for that.
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| TlsError::BadCa(e.to_string()))?;
    let verifier = PartnerVerifier {
        webpki,
        expected_agency: expected_agency.to_owned(),
        pin,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(material.certs.clone(), material.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The standard WebPKI checks, then the partner's agency and optional pin.
#[derive(Debug)]
struct PartnerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    expected_agency: String,
    pin: Option<[u8; 32]>,
}

impl PartnerVerifier {
    /// The checks that come on top of a valid chain.
    fn check_identity(&self, leaf: &[u8]) -> Result<(), TlsError> {
        let found = agency_from_cert(leaf)?;
        if found != self.expected_agency {
            return Err(TlsError::UnexpectedAgency {
                expected: self.expected_agency.clone(),
                found,
            });
        }
        match self.pin {
            Some(pin) if fingerprint(leaf) != pin => Err(TlsError::PinMismatch {
                expected: hex::encode(pin),
                found: hex::encode(fingerprint(leaf)),
            }),
            _ => Ok(()),
        }
    }
}

impl ServerCertVerifier for PartnerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain first: identity checks on an unverified certificate would mean nothing.
        self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.check_identity(end_entity).map_err(|e| {
            let refusal = rustls::OtherError(Arc::new(Refusal(e)));
            rustls::Error::from(rustls::CertificateError::Other(refusal))
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A refusal by [`PartnerVerifier`] on its way through rustls.
///
/// rustls shows the `Debug` form of a verifier's own error in its message, so this wrapper
/// makes `Debug` print the readable message, which is what reaches logs and callers.
struct Refusal(TlsError);

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Refusal {}

/// A lazily-connecting tonic channel to `endpoint` (`https://HOST:PORT`) that does TCP and
/// TLS itself with `config` (from [`client_config`]).
///
/// Nothing is dialled until the first request; a refused handshake shows up as an error
/// of that request. Connecting times out after 5 s; HTTP/2 keepalive pings every 30 s
/// drop a dead connection, and the channel reconnects on the next request. Must be called
/// inside a Tokio runtime (the channel spawns its worker task).
pub fn channel(
    endpoint: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<tonic::transport::Channel, TlsError> {
    let target = Target::parse(endpoint)?;
    // tonic sees plain http: TLS is done by the connector below, with our own verifier.
    let tonic_endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{}", target.authority))
            .map_err(|_| bad_endpoint(endpoint, "not a valid URI"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
    let connector = tokio_rustls::TlsConnector::from(config);
    let connect = tower::service_fn(move |_: http::Uri| {
        let (connector, target) = (connector.clone(), target.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&*target.authority).await?;
            // Endpoint::tcp_nodelay only reaches tonic's own connector, not this one.
            tcp.set_nodelay(true)?;
            let tls = connector.connect(target.server_name, tcp).await?;
            Ok::<_, io::Error>(TokioIo::new(tls))
        }
    });
    Ok(tonic_endpoint.connect_with_connector_lazy(connect))
}

/// Where [`channel`] connects, and the name the partner's certificate must carry.
#[derive(Clone)]
struct Target {
    /// `HOST:PORT`, with an IPv6 host in brackets.
    authority: String,
    server_name: ServerName<'static>,
}

impl Target {
    fn parse(endpoint: &str) -> Result<Self, TlsError> {
        let rest = endpoint
            .strip_prefix("https://")
            .ok_or_else(|| bad_endpoint(endpoint, "the scheme is not https"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err(bad_endpoint(endpoint, "user information is not allowed"));
        }
        let uri: http::Uri = format!("http://{authority}/")
            .parse()
            .map_err(|_| bad_endpoint(endpoint, "not a valid URI"))?;
        if uri.path() != "/" || uri.query().is_some() {
            return Err(bad_endpoint(endpoint, "a path is not allowed"));
        }
        uri.port_u16()
            .ok_or_else(|| bad_endpoint(endpoint, "the port is missing"))?;
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| bad_endpoint(endpoint, "the host is not a DNS name or IP address"))?;
        Ok(Self {
            authority: authority.to_owned(),
            server_name,
        })
    }
}

fn bad_endpoint(endpoint: &str, reason: &'static str) -> TlsError {
    TlsError::BadEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failed unwrap is a failed test.
mod tests {
    use std::net::SocketAddr;

    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::{TcpListener, TcpStream},
        time::timeout,
    };

    use super::*;
    use crate::setup::{Ca, issue_node_cert};

    const LIMIT: Duration = Duration::from_secs(10);

    /// TLS material for `agency` issued by `ca`, read back through `TlsMaterial::load`.
    fn material(ca: &Ca, agency: &str) -> TlsMaterial {
        let issued = issue_node_cert(ca, agency, &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        fs::write(path("node.crt"), &issued.cert_pem).unwrap();
        fs::write(path("node.key"), &issued.key_pem).unwrap();
        fs::write(path("ca.crt"), ca.cert_pem()).unwrap();
        TlsMaterial::load(&path("node.crt"), &path("node.key"), &path("ca.crt")).unwrap()
    }

    fn pin_of(material: &TlsMaterial) -> Option<[u8; 32]> {
        Some(fingerprint(&material.certs[0]))
    }

    /// The outcome of one handshake plus a ping-pong exchange, on each side.
    struct Outcome {
        /// The agency the server read from the client's certificate.
        server: Result<String, String>,
        client: Result<(), String>,
    }

    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> Outcome {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await?;
            let mut ping = [0u8; 4];
            tls.read_exact(&mut ping).await?;
            tls.write_all(b"pong").await?;
            tls.flush().await?;
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first().cloned());
            let leaf = leaf.ok_or_else(|| io::Error::other("no client certificate"))?;
            agency_from_cert(&leaf).map_err(io::Error::other)
        });
        let client = timeout(LIMIT, ping(addr, client))
            .await
            .expect("client timed out");
        let server = timeout(LIMIT, server)
            .await
            .expect("server timed out")
            .unwrap();
        Outcome {
            server: server.map_err(|e| e.to_string()),
            client: client.map_err(|e| e.to_string()),
        }
    }

    async fn ping(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> io::Result<()> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        tls.write_all(b"ping").await?;
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).await?;
        Ok(())
    }

    #[tokio::test]
    async fn two_nodes_of_one_ca_complete_a_handshake_and_see_each_others_agency() {
        let ca = Ca::generate("test CA").unwrap();
        let (us, de) = (material(&ca, "US-BIS"), material(&ca, "DE-BAFA"));
        let server = server_config(&us, &[]).unwrap();
        let client = client_config(&de, None, "US-BIS", pin_of(&us)).unwrap();
        let outcome = handshake(server, client).await;
        assert_eq!(outcome.client, Ok(()));
        assert_eq!(outcome.server.as_deref(), Ok("DE-BAFA"));
    }

    /// A copy of `material` that also checks `crls`.
    fn with_crls(
        material: &TlsMaterial,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> TlsMaterial {
        TlsMaterial {
            certs: material.certs.clone(),
            key: material.key.clone_key(),
            ca: material.ca.clone(),
            crls: Vec::new(),
        }
        .with_crls(crls)
    }

    /// A revocation list from `ca` that revokes the leaf certificate of `revoked`.
    fn crl_revoking(ca: &Ca, revoked: &TlsMaterial) -> Vec<CertificateRevocationListDer<'static>> {
        let pem_text = pem::encode(&pem::Pem::new("CERTIFICATE", revoked.certs[0].to_vec()));
        let crl = ca
            .revocation_list(&[("revoked.crt".into(), pem_text)], 1, 30)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crl.pem");
        std::fs::write(&path, crl).unwrap();
        load_crls(&path).unwrap()
    }

    #[tokio::test]
    async fn a_client_certificate_on_the_revocation_list_is_refused_at_the_handshake() {
        let ca = Ca::generate("test CA").unwrap();
        let (us, de, jp) = (
            material(&ca, "US-BIS"),
            material(&ca, "DE-BAFA"),
            material(&ca, "JP-METI"),
        );
        let crls = crl_revoking(&ca, &de);
        let server = server_config(&with_crls(&us, crls.clone()), &[]).unwrap();
        let refused = handshake(
            server.clone(),
            client_config(&de, None, "US-BIS", None).unwrap(),
        )
        .await;
        assert!(refused.server.is_err(), "{:?}", refused.server);
        let err = refused.server.unwrap_err();
        assert!(err.to_lowercase().contains("revoked"), "{err}");
        let allowed = handshake(server, client_config(&jp, None, "US-BIS", None).unwrap()).await;
        assert_eq!(
            allowed.server.as_deref(),
            Ok("JP-METI"),
            "another certificate passes"
        );
    }

    #[tokio::test]
    async fn a_server_certificate_on_the_revocation_list_is_refused_by_the_client() {
        let ca = Ca::generate("test CA").unwrap();
        let (us, de) = (material(&ca, "US-BIS"), material(&ca, "DE-BAFA"));
        let crls = crl_revoking(&ca, &us);
        let client = client_config(&with_crls(&de, crls), None, "US-BIS", None).unwrap();
        let outcome = handshake(server_config(&us, &[]).unwrap(), client).await;
        let err = outcome.client.unwrap_err();
        assert!(err.to_lowercase().contains("revoked"), "{err}");
    }

    #[test]
    fn a_revocation_list_file_without_a_list_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crl.pem");
        std::fs::write(&path, "no list here").unwrap();
        let err = load_crls(&path).unwrap_err().to_string();
        assert!(err.contains("crl.pem") && err.contains("X509 CRL"), "{err}");
    }

    #[tokio::test]
    async fn a_client_certificate_from_another_ca_is_refused() {
        let (ca, other) = (
            Ca::generate("test CA").unwrap(),
            Ca::generate("other CA").unwrap(),
        );
        let us = material(&ca, "US-BIS");
        let intruder = material(&other, "DE-BAFA");
        let server = server_config(&us, &[]).unwrap();
        // The intruder trusts the server's CA, so only the server's check can stop it.
        let client = client_config(&intruder, Some(&us.ca), "US-BIS", None).unwrap();
        let outcome = handshake(server, client).await;
        assert!(outcome.server.is_err(), "server accepted a foreign client");
        assert!(outcome.client.is_err());
    }

    #[tokio::test]
    async fn a_client_without_a_certificate_is_refused() {
        let ca = Ca::generate("test CA").unwrap();
        let us = material(&ca, "US-BIS");
        let server = server_config(&us, &[]).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .unwrap()
            .with_root_certificates(root_store(&us.ca).unwrap())
            .with_no_client_auth();
        let outcome = handshake(server, Arc::new(client)).await;
        let refusal = outcome.server.unwrap_err();
        assert!(refusal.contains("certificate"), "{refusal}");
        assert!(outcome.client.is_err());
    }

    #[tokio::test]
    async fn a_server_of_another_agency_is_refused_by_the_client() {
        let ca = Ca::generate("test CA").unwrap();
        let (us, de) = (material(&ca, "US-BIS"), material(&ca, "DE-BAFA"));
        let server = server_config(&us, &[]).unwrap();
        let client = client_config(&de, None, "JP-METI", None).unwrap();
        let refusal = handshake(server, client).await.client.unwrap_err();
        assert!(
            refusal.contains("names agency US-BIS, expected JP-METI"),
            "{refusal}"
        );
    }

    #[tokio::test]
    async fn a_server_whose_fingerprint_differs_from_the_pin_is_refused() {
        let ca = Ca::generate("test CA").unwrap();
        let (us, de) = (material(&ca, "US-BIS"), material(&ca, "DE-BAFA"));
        let server = server_config(&us, &[]).unwrap();
        let client = client_config(&de, None, "US-BIS", Some([7; 32])).unwrap();
        let refusal = handshake(server, client).await.client.unwrap_err();
        assert!(refusal.contains("pinned sha256:0707"), "{refusal}");
    }

    #[tokio::test]
    async fn a_server_certificate_from_an_untrusted_ca_is_refused() {
        let (ca, other) = (
            Ca::generate("test CA").unwrap(),
            Ca::generate("other CA").unwrap(),
        );
        let impostor = material(&other, "US-BIS");
        let de = material(&ca, "DE-BAFA");
        let server = server_config(&impostor, &de.ca).unwrap();
        let client = client_config(&de, None, "US-BIS", None).unwrap();
        let refusal = handshake(server, client).await.client.unwrap_err();
        assert!(refusal.contains("UnknownIssuer"), "{refusal}");
    }

    #[test]
    fn the_agency_is_read_from_the_uri_san() {
        let ca = Ca::generate("test CA").unwrap();
        let jp = material(&ca, "JP-METI");
        assert_eq!(agency_from_cert(&jp.certs[0]).unwrap(), "JP-METI");
        assert_eq!(jp.agency().unwrap(), "JP-METI");
        // The CA certificate itself names no agency.
        assert!(matches!(
            agency_from_cert(&jp.ca[0]),
            Err(TlsError::NoAgency)
        ));
    }

    #[test]
    fn a_certificate_without_an_agency_uri_or_with_an_invalid_one_is_rejected() {
        let plain = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let err = agency_from_cert(plain.cert.der()).unwrap_err();
        assert!(matches!(err, TlsError::NoAgency), "{err}");
        let lower = format!("{AGENCY_URI_PREFIX}us-bis");
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(lower.try_into().unwrap())];
        let cert = params.self_signed(&plain.signing_key).unwrap();
        assert!(matches!(
            agency_from_cert(cert.der()),
            Err(TlsError::BadAgency(_))
        ));
        assert!(matches!(
            agency_from_cert(b"not DER"),
            Err(TlsError::BadCertificate(_))
        ));
    }

    #[test]
    fn material_debug_hides_the_key_and_load_names_the_bad_file() {
        let ca = Ca::generate("test CA").unwrap();
        let shown = format!("{:?}", material(&ca, "US-BIS"));
        assert!(
            shown.contains("hidden") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "").unwrap();
        let err = TlsMaterial::load(&empty, &empty, &empty).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        assert!(err.to_string().contains("no \"CERTIFICATE\""), "{err}");
    }

    #[test]
    fn endpoints_must_be_https_with_a_host_and_port() {
        assert!(Target::parse("https://127.0.0.1:7401").is_ok());
        assert!(Target::parse("https://[::1]:7401/").is_ok());
        assert!(Target::parse("https://node.example.org:7401").is_ok());
        for bad in [
            "http://127.0.0.1:7401",
            "https://127.0.0.1",
            "https://h:1/x",
            "https://u@h:1",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(TlsError::BadEndpoint { .. })),
                "{bad}"
            );
        }
    }

    /// Serves an empty gRPC router (every call answers UNIMPLEMENTED) behind `config`.
    async fn grpc_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<_>>(4);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok(tls)).await;
                }
            }
        });
        let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
        let router =
            tonic::transport::Server::builder().add_routes(tonic::service::Routes::default());
        tokio::spawn(router.serve_with_incoming(incoming));
        addr
    }

    async fn call(channel: tonic::transport::Channel) -> tonic::Status {
        let mut grpc = tonic::client::Grpc::new(channel);
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let path = http::uri::PathAndQuery::from_static("/entente.test.Nothing/Call");
        let call = async {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unknown(e.to_string()))?;
            grpc.unary(tonic::Request::new(()), path, codec).await
        };
        timeout(LIMIT, call)
            .await
            .expect("call timed out")
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_channel_reaches_a_tonic_server_over_mutual_tls() {
        let ca = Ca::generate("test CA").unwrap();
        let (us, de) = (material(&ca, "US-BIS"), material(&ca, "DE-BAFA"));
        let addr = grpc_server(server_config(&us, &[]).unwrap()).await;
        let endpoint = format!("https://{addr}");
        let good = client_config(&de, None, "US-BIS", pin_of(&us)).unwrap();
        // UNIMPLEMENTED comes from the server's router: TLS and HTTP/2 worked.
        assert_eq!(
            call(channel(&endpoint, good).unwrap()).await.code(),
            tonic::Code::Unimplemented
        );
        let wrong = client_config(&de, None, "JP-METI", None).unwrap();
        let status = call(channel(&endpoint, wrong).unwrap()).await;
        assert_ne!(status.code(), tonic::Code::Unimplemented, "{status}");
    }
}
