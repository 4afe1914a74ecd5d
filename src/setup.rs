//! Generating the material a node needs: a CA, node certificates, keys and config files.
//!
//! - [`Ca`] makes or loads the certificate authority that issues node certificates.
//! - [`issue_node_cert`] issues a node certificate whose URI SAN names its agency
//!   (`urn:entente:agency:US-BIS`, see [`crate::tls`]).
//! - [`init_node`] writes a complete new node: keys, TLS files, `entente.toml`, and
//!   `public.toml`, the `[[partners]]` entry a partner pastes into its own config.
//! - [`write_example`] writes a three-agency example federation for demonstrations.
//!
//! The agencies of a federation normally share one CA, run jointly, or exchange their CA
//! certificates (a partner's CA goes in its entry's `ca` key). A node that generates its
//! own CA can only talk to partners that are given that CA certificate.
//!
//! Private keys are written with mode 0600 and never printed; `Debug` hides them.

use std::{
    fmt, fs, io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use x509_parser::{asn1_rs::Tag, extensions::ParsedExtension, x509::X509Name};
use zeroize::Zeroizing;

use crate::{
    identity::{self, DataKey, EncryptionKey, IdentityError, KeyId, SigningKey},
    tls::{self, AGENCY_URI_PREFIX},
};

/// One day, the margin before "now" that tolerates clocks running behind.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Validity of a node certificate.
const NODE_CERT_DAYS: u32 = 2 * 365;
/// Validity of a CA certificate: longer than any node certificate it issues.
const CA_CERT_DAYS: u32 = 10 * 365;
/// Validity of a user's certificate for the local listener.
const USER_CERT_DAYS: u32 = 365;

/// Errors while generating or writing node material.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An agency id is invalid, or a key file could not be written.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// rcgen could not build a key or certificate.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// A user name for a personal certificate is empty, too long or has control
    /// characters.
    #[error("user name {0:?}: expected 1 to 64 characters, no control characters")]
    BadUserName(String),
    /// A host name given for the certificate is neither an IP address nor a DNS name.
    #[error("host {0:?} is neither an IP address nor a DNS name (letters, digits, '-', '.')")]
    BadHost(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file to be written exists already.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// A directory for the example federation is not empty.
    #[error("{0} is not empty; example material is written only into a new or empty directory")]
    NotEmpty(PathBuf),
    /// A certificate to revoke cannot be read.
    #[error("certificate {path}: {reason}")]
    BadCert {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A CA certificate or key file cannot be used.
    #[error("CA file {path}: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What was wrong, without any key bytes.
        reason: String,
    },
}

/// A certificate authority that issues node certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    /// Generates a new CA (ECDSA P-256, valid for ten years) named `common_name`.
    pub fn generate(common_name: &str) -> Result<Ca, SetupError> {
        let key = generate_key("CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        // Path length 0: the CA signs node certificates directly, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, CA_CERT_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(generate_error("CA certificate"))?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        })
    }

    /// A certificate revocation list signed by this CA, number `crl_number`, valid for
    /// `days` days from now, that revokes the certificates in `revoked` (PEM texts of
    /// certificates this CA issued; `name` says where each came from, for errors). A node
    /// whose `[tls] crl` holds it refuses those certificates at the handshake.
    pub fn revocation_list(
        &self,
        revoked: &[(String, String)],
        crl_number: u64,
        days: u32,
    ) -> Result<String, SetupError> {
        let now = SystemTime::now();
        let mut revoked_certs = Vec::new();
        for (name, pem_text) in revoked {
            let bad = |reason: String| SetupError::BadCert {
                path: PathBuf::from(name),
                reason,
            };
            let der = pem_certificate(pem_text).map_err(bad)?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| bad(format!("not an X.509 certificate ({e})")))?;
            revoked_certs.push(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(cert.tbs_certificate.raw_serial()),
                revocation_time: now.into(),
                reason_code: None,
                invalidity_date: None,
            });
        }
        let params = rcgen::CertificateRevocationListParams {
            this_update: now.into(),
            next_update: (now + DAY * days).into(),
            crl_number: rcgen::SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(generate_error("certificate revocation list"))?;
        crl.pem()
            .map_err(generate_error("certificate revocation list"))
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PKCS#8 PEM; the copy is wiped from memory when dropped.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.issuer.key().serialize_pem())
    }

    /// Reads a CA from its certificate and PKCS#8 private key, both PEM.
    ///
    /// The certificate must be a CA certificate for that key. Certificates issued by the
    /// loaded CA name it exactly as its certificate does, so they chain to it.
    pub fn load(cert_pem_path: &Path, key_pem_path: &Path) -> Result<Ca, SetupError> {
        let cert_pem = read_to_string(cert_pem_path)?;
        let key_pem = Zeroizing::new(read_to_string(key_pem_path)?);
        let key = KeyPair::from_pem(&key_pem).map_err(|e| SetupError::BadCa {
            path: key_pem_path.to_owned(),
            reason: format!("not a PEM private key usable for signing ({e})"),
        })?;
        let bad_cert = |reason: String| SetupError::BadCa {
            path: cert_pem_path.to_owned(),
            reason,
        };
        let der = pem_certificate(&cert_pem).map_err(bad_cert)?;
        let params = issuer_params(&der, key.public_key_raw()).map_err(bad_cert)?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Issuer's own Debug already elides the key; say so explicitly for readers of logs.
        f.debug_struct("Ca")
            .field("issuer", &self.issuer)
            .field("key", &"hidden")
            .finish()
    }
}

/// The issuer parameters of the CA certificate `der`, whose key must be `public_key`.
fn issuer_params(der: &[u8], public_key: &[u8]) -> Result<CertificateParams, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate ({e})"))?;
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| e.to_string())?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err("not a CA certificate (basicConstraints CA is not set)".into());
    }
    if cert.public_key().subject_public_key.data.as_ref() != public_key {
        return Err("the certificate is not for the given private key".into());
    }
    // Reuse the CA's own subject key identifier, so that the authority key identifier of
    // issued certificates matches it even when another tool made the CA.
    let key_id = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        });
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cert.subject())?;
    params.key_identifier_method = key_id.map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Converts a parsed subject name into rcgen's form, keeping each value's string type so
/// that issued certificates carry a byte-identical issuer name (chain building compares
/// names as bytes).
fn distinguished_name(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("multi-valued names in the CA subject are not supported".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("an attribute type in the CA subject is too large")?
            .collect();
        let text = std::str::from_utf8(attr.attr_value().data)
            .map_err(|_| "the CA subject holds a value that is not text")?;
        let unsupported = || "the CA subject uses an unsupported string type".to_owned();
        let value = match attr.attr_value().tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(text.try_into().map_err(|_| unsupported())?)
            }
            Tag::Ia5String => DnValue::Ia5String(text.try_into().map_err(|_| unsupported())?),
            _ => return Err(unsupported()),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

/// A node certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

impl IssuedCert {
    /// The certificate in DER form.
    fn der(&self) -> Vec<u8> {
        // The PEM was produced by rcgen a moment ago; it always holds one certificate.
        pem_certificate(&self.cert_pem).unwrap_or_default()
    }
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fingerprint = hex::encode(tls::fingerprint(&self.der()));
        write!(f, "IssuedCert(sha256:{fingerprint}, private key hidden)")
    }
}

/// A node certificate: CN = agency, SANs: URI `urn:entente:agency:AGENCY`, DNS
/// `localhost`, IP 127.0.0.1, plus `hosts` (each an IP address if it parses as one, else a
/// DNS name). EKU serverAuth and clientAuth, since a node both accepts and opens
/// connections. Valid from a day ago (for clocks that lag) for two years.
pub fn issue_node_cert(ca: &Ca, agency: &str, hosts: &[String]) -> Result<IssuedCert, SetupError> {
    identity::validate_agency_id(agency)?;
    let key = generate_key("node key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, agency);
    params.subject_alt_names = node_sans(agency, hosts)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_CERT_DAYS);
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(generate_error("node certificate"))?;
    Ok(IssuedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A personal certificate for one of the agency's own people, for the local listener:
/// CN = `name`, OU = `role` ("analyst" or "operator"), EKU clientAuth, no agency SAN (the
/// local listener refuses certificates that name an agency). Issued by the agency's staff
/// CA, never the federation's. Valid from a day ago for one year.
pub fn issue_user_cert(
    ca: &Ca,
    name: &str,
    role: crate::config::Role,
) -> Result<IssuedCert, SetupError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(SetupError::BadUserName(name.to_owned()));
    }
    let key = generate_key("user key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.name());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, USER_CERT_DAYS);
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(generate_error("user certificate"))?;
    Ok(IssuedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `name`'s certificate and key as `DIR/NAME.crt` and `DIR/NAME.key` (mode 0600),
/// refusing to replace either.
pub fn write_user_cert(
    dir: &Path,
    ca: &Ca,
    name: &str,
    role: crate::config::Role,
) -> Result<(PathBuf, PathBuf), SetupError> {
    let issued = issue_user_cert(ca, name, role)?;
    create_dir(dir)?;
    let file = name.trim().replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
        "_",
    );
    let (cert, key) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    write_new(&cert, issued.cert_pem.as_bytes())?;
    write_private(&key, &Zeroizing::new(issued.key_pem))?;
    Ok((cert, key))
}

/// Writes a new staff CA (`DIR/ca.crt`, `DIR/ca.key`) for the local listener's `[local] ca`.
pub fn write_staff_ca(dir: &Path, agency: &str) -> Result<Ca, SetupError> {
    let ca = Ca::generate(&format!("{agency} staff CA"))?;
    create_dir(dir)?;
    write_new(&dir.join("ca.crt"), ca.cert_pem.as_bytes())?;
    write_private(&dir.join("ca.key"), &ca.key_pem())?;
    Ok(ca)
}

fn node_sans(agency: &str, hosts: &[String]) -> Result<Vec<SanType>, SetupError> {
    let uri = format!("{AGENCY_URI_PREFIX}{agency}");
    let mut sans = vec![
        // A valid agency id is ASCII, so these conversions cannot fail.
        SanType::URI(uri.try_into().map_err(generate_error("agency URI"))?),
        SanType::DnsName(
            "localhost"
                .try_into()
                .map_err(generate_error("host name"))?,
        ),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    ];
    for host in hosts {
        let san = host_san(host)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

fn host_san(host: &str) -> Result<SanType, SetupError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns_like = !host.is_empty()
        && !host.starts_with(['-', '.'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let name = host
        .to_ascii_lowercase()
        .try_into()
        .ok()
        .filter(|_| dns_like)
        .ok_or_else(|| SetupError::BadHost(host.to_owned()))?;
    Ok(SanType::DnsName(name))
}

fn generate_key(what: &'static str) -> Result<KeyPair, SetupError> {
    // ECDSA P-256: supported by every TLS stack and cheap to verify.
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate_error(what))
}

fn generate_error(what: &'static str) -> impl Fn(rcgen::Error) -> SetupError {
    move |source| SetupError::Generate { what, source }
}

fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now();
    params.not_before = (now - DAY).into();
    params.not_after = (now + DAY * days).into();
}

/// The DER of the first `CERTIFICATE` block in `text`.
fn pem_certificate(text: &str) -> Result<Vec<u8>, String> {
    let block = pem::parse(text).map_err(|e| format!("not a PEM file ({e})"))?;
    if block.tag() != "CERTIFICATE" {
        return Err(format!(
            "expected a \"CERTIFICATE\" PEM block, found {:?}",
            block.tag()
        ));
    }
    Ok(block.into_contents())
}

/// What [`init_node`] writes.
#[derive(Debug)]
pub struct InitOptions {
    /// The node's agency id, such as `US-BIS`.
    pub agency: String,
    /// The address the peer listener binds; partners connect to it.
    pub listen: SocketAddr,
    /// The CA that issues the node certificate; `None` generates a new one in the node's
    /// `tls/` directory.
    pub ca: Option<Ca>,
    /// Extra names for the certificate (DNS names or IP addresses partners use to reach
    /// this node), beyond `localhost` and 127.0.0.1.
    pub hosts: Vec<String>,
}

/// What [`init_node`] wrote.
#[derive(Debug, Clone)]
pub struct InitSummary {
    /// The node's config file, `entente.toml`.
    pub config: PathBuf,
    /// `public.toml`: the `[[partners]]` entry partners paste into their configs.
    pub public_entry: PathBuf,
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// Key id of the new signing key.
    pub signing_key_id: KeyId,
    /// Key id of the new encryption key.
    pub encryption_key_id: KeyId,
    /// SHA-256 of the node certificate (DER).
    pub cert_fingerprint: [u8; 32],
    /// Whether a new CA was generated in `tls/ca.crt` and `tls/ca.key`.
    pub ca_generated: bool,
}

impl fmt::Display for InitSummary {
    /// A report for the operator: what was written and what to do next.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wrote a new node:")?;
        for file in &self.files {
            writeln!(f, "  {}", file.display())?;
        }
        writeln!(f, "signing key id:      {}", self.signing_key_id)?;
        writeln!(f, "encryption key id:   {}", self.encryption_key_id)?;
        writeln!(
            f,
            "cert fingerprint:    sha256:{}",
            hex::encode(self.cert_fingerprint)
        )?;
        if self.ca_generated {
            writeln!(
                f,
                "a new CA was generated: partners need tls/ca.crt; keep tls/ca.key off the node"
            )?;
        }
        write!(
            f,
            "next: give {} to partners, and register theirs in {}",
            self.public_entry.display(),
            self.config.display()
        )
    }
}

/// The file names of a node directory, relative to it.
mod layout {
    pub const CONFIG: &str = "entente.toml";
    pub const PUBLIC: &str = "public.toml";
    pub const POLICY: &str = "policy.toml";
    pub const SIGNING_KEY: &str = "keys/signing.pem";
    pub const ENCRYPTION_KEY: &str = "keys/encryption.pem";
    pub const DATA_KEY: &str = crate::config::DEFAULT_DATA_KEY;
    pub const CERT: &str = "tls/node.crt";
    pub const KEY: &str = "tls/node.key";
    pub const CA_CERT: &str = "tls/ca.crt";
    pub const CA_KEY: &str = "tls/ca.key";
}

/// Writes a complete new node into `dir`: `keys/signing.pem`, `keys/encryption.pem`,
/// `tls/node.crt`, `tls/node.key`, `tls/ca.crt`, `entente.toml` with no partners yet, and
/// `public.toml` (this node's `[[partners]]` entry for its partners' configs).
///
/// The agencies of a federation normally share one CA (pass it in `options.ca`) or
/// exchange their CA certificates. When `options.ca` is `None`, a new CA is generated into
/// `tls/ca.crt` and `tls/ca.key`, and every partner then needs that `tls/ca.crt` (as its
/// `ca` for this node). Refuses to overwrite any file it would write, so an existing node's
/// keys are never replaced.
pub fn init_node(dir: &Path, options: &InitOptions) -> Result<InitSummary, SetupError> {
    identity::validate_agency_id(&options.agency)?;
    let mut targets = vec![
        layout::CONFIG,
        layout::PUBLIC,
        layout::POLICY,
        layout::SIGNING_KEY,
        layout::ENCRYPTION_KEY,
        layout::CERT,
        layout::KEY,
        layout::CA_CERT,
    ];
    if options.ca.is_none() {
        targets.push(layout::CA_KEY);
    }
    refuse_existing(dir, &targets)?;
    let generated;
    let ca = match &options.ca {
        Some(ca) => ca,
        None => {
            generated = Ca::generate(&format!("{} Entente CA", options.agency))?;
            &generated
        }
    };
    let mut node = write_node(dir, &options.agency, options.listen, &options.hosts, ca)?;
    if options.ca.is_none() {
        node.write_private(layout::CA_KEY, &ca.key_pem())?;
    }
    node.write_public(layout::PUBLIC, &public_entry_file(&node.entry))?;
    node.write_public(layout::POLICY, POLICY_TEMPLATE)?;
    // The config last: its presence marks a complete node.
    let config = node_config(&node, NODE_HEADER, &[], None) + LOCAL_TEMPLATE + PARTNER_TEMPLATE;
    node.write_public(layout::CONFIG, &config)?;
    Ok(InitSummary {
        config: dir.join(layout::CONFIG),
        public_entry: dir.join(layout::PUBLIC),
        files: node.files,
        signing_key_id: node.signing_key_id,
        encryption_key_id: node.encryption_key_id,
        cert_fingerprint: node.entry.cert_fingerprint,
        ca_generated: options.ca.is_none(),
    })
}

fn refuse_existing(dir: &Path, files: &[&str]) -> Result<(), SetupError> {
    match files.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        Some(path) => Err(SetupError::Exists(path)),
        None => Ok(()),
    }
}

/// A node's entry in its partners' configs.
#[derive(Debug, Clone)]
struct PartnerEntry {
    agency: String,
    endpoint: String,
    signing: [u8; 32],
    encryption: [u8; 32],
    cert_fingerprint: [u8; 32],
}

/// A node directory being written.
struct NodeDir {
    dir: PathBuf,
    listen: SocketAddr,
    files: Vec<PathBuf>,
    signing_key_id: KeyId,
    encryption_key_id: KeyId,
    entry: PartnerEntry,
}

impl NodeDir {
    fn write_public(&mut self, name: &str, text: &str) -> Result<(), SetupError> {
        let path = self.dir.join(name);
        write_new(&path, text.as_bytes())?;
        self.files.push(path);
        Ok(())
    }

    fn write_private(&mut self, name: &str, text: &str) -> Result<(), SetupError> {
        let path = self.dir.join(name);
        write_private(&path, text)?;
        self.files.push(path);
        Ok(())
    }
}

/// Writes a file that only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), SetupError> {
    identity::write_private_file(path, text.as_bytes()).map_err(|source| SetupError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes the keys and TLS files of a node (everything but the config files).
fn write_node(
    dir: &Path,
    agency: &str,
    listen: SocketAddr,
    hosts: &[String],
    ca: &Ca,
) -> Result<NodeDir, SetupError> {
    let issued = issue_node_cert(ca, agency, hosts)?;
    for sub in ["keys", "tls"] {
        create_dir(&dir.join(sub))?;
    }
    let signing = SigningKey::generate()?;
    let encryption = EncryptionKey::generate();
    signing.save(&dir.join(layout::SIGNING_KEY))?;
    encryption.save(&dir.join(layout::ENCRYPTION_KEY))?;
    DataKey::create(&dir.join(layout::DATA_KEY))?;
    let mut node = NodeDir {
        dir: dir.to_owned(),
        listen,
        files: vec![
            dir.join(layout::SIGNING_KEY),
            dir.join(layout::ENCRYPTION_KEY),
            dir.join(layout::DATA_KEY),
        ],
        signing_key_id: signing.key_id(),
        encryption_key_id: encryption.key_id(),
        entry: PartnerEntry {
            agency: agency.to_owned(),
            endpoint: format!("https://{}", advertised(listen, hosts)),
            signing: signing.public(),
            encryption: encryption.public(),
            cert_fingerprint: tls::fingerprint(&issued.der()),
        },
    };
    node.write_public(layout::CERT, &issued.cert_pem)?;
    node.write_private(layout::KEY, &Zeroizing::new(issued.key_pem))?;
    node.write_public(layout::CA_CERT, &ca.cert_pem)?;
    Ok(node)
}

/// The address partners should dial: the listen address, unless it is a wildcard, in
/// which case the first extra host name stands in for it.
fn advertised(listen: SocketAddr, hosts: &[String]) -> String {
    match hosts.first() {
        Some(host) if listen.ip().is_unspecified() => match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, listen.port()).to_string(),
            Err(_) => format!("{host}:{}", listen.port()),
        },
        _ => listen.to_string(),
    }
}

fn create_dir(path: &Path) -> Result<(), SetupError> {
    fs::create_dir_all(path).map_err(|source| SetupError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SetupError> {
    use std::io::Write as _;
    let io_error = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => SetupError::Exists(path.to_owned()),
        _ => SetupError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)
}

fn read_to_string(path: &Path) -> Result<String, SetupError> {
    fs::read_to_string(path).map_err(|source| SetupError::Io {
        path: path.to_owned(),
        source,
    })
}

/// A TOML string literal, escaped.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

const NODE_HEADER: &str = "\
# Entente node configuration. Relative paths are relative to this file's directory.
# The private keys under keys/ and tls/ must stay on this machine; give partners
# public.toml (and tls/ca.crt when they do not already trust this node's CA).
";

const PARTNER_TEMPLATE: &str = r#"
# Register a partner by pasting the entry from its public.toml, then decide in
# policy.toml what this node sends it and accepts from it (nothing, until you do).
#
# [[partners]]
# agency = "DE-BAFA"
# endpoint = "https://entente.partner.example:7401"
# signing_key = "ed25519:BASE64"
# encryption_key = "x25519:BASE64"
# cert_fingerprint = "sha256:HEX"
# ca = "tls/partner-ca.crt"   # only when its certificate comes from another CA
"#;

/// The policy file `init` writes: nothing is shared or accepted until the operator
/// writes rules (see docs/policies.md).
const POLICY_TEMPLATE: &str = r#"# Sharing policy: what this node sends each partner, in what form, and what it
# accepts from each. No rule, no sharing: a partner without an entry gets nothing.
# Check with `entente policy check --config entente.toml`; see docs/policies.md.
version = 1

# [[partner]]
# agency = "DE-BAFA"
# accept = ["denial-notification", "enforcement-alert"]
#
#   [[partner.rule]]
#   id = "denials"
#   kinds = ["denial-notification"]
#   tlp_max = "AMBER"
#   action = "share"
#   redact = ["subjects[].identifiers"]
"#;

/// The text of a node's `entente.toml` with the given partners.
fn node_config(
    node: &NodeDir,
    header: &str,
    partners: &[&PartnerEntry],
    local: Option<SocketAddr>,
) -> String {
    let mut text = format!(
        "{header}\n[node]\nagency = {}\ndata_dir = \"data\"\nlisten = {}\npolicy = {}\n\n\
         [keys]\nsigning = {}\nencryption = {}\ndata = {}\n\n[tls]\ncert = {}\nkey = {}\nca = {}\n",
        quoted(&node.entry.agency),
        quoted(&node.listen.to_string()),
        quoted(layout::POLICY),
        quoted(layout::SIGNING_KEY),
        quoted(layout::ENCRYPTION_KEY),
        quoted(layout::DATA_KEY),
        quoted(layout::CERT),
        quoted(layout::KEY),
        quoted(layout::CA_CERT),
    );
    if let Some(listen) = local {
        text.push_str(&format!(
            "\n# The local listener for this agency's analysts and operators (mutual TLS with\n\
             # personal certificates from the staff CA; see docs/analyst-guide.md).\n\
             [local]\nlisten = {}\nca = {}\n",
            quoted(&listen.to_string()),
            quoted(STAFF_CA_CERT),
        ));
    }
    for entry in partners {
        text.push('\n');
        text.push_str(&partner_block(entry));
    }
    text
}

/// A `[[partners]]` block for `entry`.
fn partner_block(entry: &PartnerEntry) -> String {
    format!(
        "[[partners]]\nagency = {}\nendpoint = {}\nsigning_key = {}\nencryption_key = {}\n\
         cert_fingerprint = {}\n",
        quoted(&entry.agency),
        quoted(&entry.endpoint),
        quoted(&identity::public_key_text("ed25519", &entry.signing)),
        quoted(&identity::public_key_text("x25519", &entry.encryption)),
        quoted(&format!("sha256:{}", hex::encode(entry.cert_fingerprint))),
    )
}

fn public_entry_file(entry: &PartnerEntry) -> String {
    format!(
        "# The entry that registers {agency} as a partner. Paste it into the partner's\n\
         # entente.toml, check that `endpoint` is an address the partner can reach and that\n\
         # its host is among this node's certificate names. Then write in the partner's\n\
         # policy.toml what it sends to {agency} and accepts from it.\n\n{}",
        partner_block(entry),
        agency = entry.agency,
    )
}

/// The staff CA certificate, relative to a node's directory.
const STAFF_CA_CERT: &str = "staff/ca.crt";

/// The `[local]` section of a new node's config, commented out until the agency has a
/// staff CA.
const LOCAL_TEMPLATE: &str = r#"
# The local listener, for this agency's analysts and operators: mutual TLS with personal
# certificates from the agency's staff CA (never the federation's CA). Make the CA with
# `entente certs staff-ca --agency AGENCY --dir staff` and a certificate for each person
# with `entente certs user`; see docs/analyst-guide.md.
# [local]
# listen = "127.0.0.1:7443"
# ca = "staff/ca.crt"
# [local.users]            # optional: roles by certificate name, over the OU
# "j.smith" = "operator"
"#;

/// The header of every config file in the example federation.
const EXAMPLE_HEADER: &str = "\
# EXAMPLE MATERIAL ONLY: the private keys of this example federation are public.
# Never use them in production. Regenerate with `entente certs example DIR`.
";

/// A node of the example federation.
struct ExampleNode {
    agency: &'static str,
    port: u16,
    /// Its partners.
    partners: &'static [&'static str],
    /// Its sharing policy.
    policy: &'static str,
}

/// The nodes of the example federation and their policies. They show a bilateral MOU with
/// redaction (US-BIS to DE-BAFA), a partner that only takes denials and alerts (JP-METI),
/// an explicit deny rule, and an inbound refusal (JP-METI does not accept STRs).
const EXAMPLE_NODES: [ExampleNode; 3] = [
    ExampleNode {
        agency: "US-BIS",
        port: 7401,
        partners: &["DE-BAFA", "JP-METI"],
        policy: r#"version = 1

# DE-BAFA: bilateral MOU. STRs go without personal identifiers or the case reference,
# with addresses reduced to their country and values rounded down to their decade.
[[partner]]
agency = "DE-BAFA"
accept = ["suspicious-transaction", "denial-notification", "enforcement-alert"]

  [[partner.rule]]
  id = "strs-without-identifiers"
  kinds = ["suspicious-transaction"]
  tlp_max = "AMBER"
  action = "share"
  redact = ["subjects[].identifiers", "reference"]
  generalise = ["subjects[].addresses", "goods[].value"]

  [[partner.rule]]
  id = "denials-and-alerts"
  kinds = ["denial-notification", "enforcement-alert"]
  tlp_max = "AMBER"
  action = "share"

  # Watchlists: US-BIS's Denied Persons List, whole (a rule's redactions name report
  # fields only; a list travels as its owner publishes it).
  [[partner.rule]]
  id = "denied-persons-list"
  kinds = ["watchlist-delta"]
  watchlists = ["US-BIS/dpl"]
  action = "share"

# JP-METI: denial notifications and enforcement alerts only.
[[partner]]
agency = "JP-METI"
accept = ["denial-notification", "enforcement-alert"]

  [[partner.rule]]
  id = "denials-and-alerts"
  kinds = ["denial-notification", "enforcement-alert"]
  tlp_max = "AMBER"
  action = "share"
"#,
    },
    ExampleNode {
        agency: "DE-BAFA",
        port: 7402,
        partners: &["US-BIS", "JP-METI"],
        policy: r#"version = 1

[[partner]]
agency = "US-BIS"
accept = ["suspicious-transaction", "denial-notification", "enforcement-alert", "watchlist-delta"]
# Of watchlists, only those US-BIS owns (which only US-BIS can send anyway).
accept_watchlists = ["US-BIS/*"]

  [[partner.rule]]
  id = "all-up-to-amber"
  kinds = ["suspicious-transaction", "denial-notification", "enforcement-alert"]
  tlp_max = "AMBER"
  action = "share"

# JP-METI: alerts, and STRs about goods of Wassenaar categories 2B and 3A.
[[partner]]
agency = "JP-METI"
accept = ["denial-notification", "enforcement-alert"]

  [[partner.rule]]
  id = "alerts"
  kinds = ["enforcement-alert"]
  tlp_max = "AMBER"
  action = "share"

  [[partner.rule]]
  id = "strs-machine-tools-and-electronics"
  kinds = ["suspicious-transaction"]
  control_entries = ["2B*", "3A*"]
  tlp_max = "AMBER"
  action = "share"
"#,
    },
    ExampleNode {
        agency: "JP-METI",
        port: 7403,
        partners: &["US-BIS", "DE-BAFA"],
        policy: r#"version = 1

[[partner]]
agency = "US-BIS"
accept = ["suspicious-transaction", "denial-notification", "enforcement-alert"]

  # STRs stay with JP-METI under its national law; the rule says so explicitly.
  [[partner.rule]]
  id = "no-strs"
  kinds = ["suspicious-transaction"]
  action = "deny"

  [[partner.rule]]
  id = "denials-and-alerts"
  kinds = ["denial-notification", "enforcement-alert"]
  tlp_max = "AMBER"
  action = "share"

# DE-BAFA: denials and alerts both ways; JP-METI takes no STRs from it.
[[partner]]
agency = "DE-BAFA"
accept = ["denial-notification", "enforcement-alert"]

  [[partner.rule]]
  id = "denials-and-alerts"
  kinds = ["denial-notification", "enforcement-alert"]
  tlp_max = "AMBER"
  action = "share"
"#,
    },
];

/// The agency whose valid certificate shows that an unregistered agency is refused.
const UNREGISTERED_AGENCY: &str = "KP-UNREG";

/// Writes the example federation into `dir`, which must be new or empty: a CA (`ca.crt`,
/// `ca.key`) and three nodes US-BIS (listen 127.0.0.1:7401), DE-BAFA (7402) and JP-METI
/// (7403), each in `DIR/<agency lower-case>/` with keys, TLS files and an `entente.toml`
/// in which the other two are registered with their real keys and fingerprints.
///
/// Also writes `unregistered/tls/` with a certificate for KP-UNREG from the same CA (valid,
/// but no node registers it) and a README. All the private keys written are example
/// material, public by design.
pub fn write_example(dir: &Path) -> Result<(), SetupError> {
    refuse_non_empty(dir)?;
    create_dir(dir)?;
    let ca = Ca::generate("Entente example CA")?;
    write_new(&dir.join("ca.crt"), ca.cert_pem.as_bytes())?;
    write_private(&dir.join("ca.key"), &ca.key_pem())?;
    let mut nodes = Vec::new();
    for ExampleNode { agency, port, .. } in EXAMPLE_NODES {
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let mut node = write_node(&dir.join(agency.to_lowercase()), agency, listen, &[], &ca)?;
        let public = format!("{EXAMPLE_HEADER}\n{}", public_entry_file(&node.entry));
        node.write_public(layout::PUBLIC, &public)?;
        nodes.push(node);
    }
    let entries: Vec<PartnerEntry> = nodes.iter().map(|n| n.entry.clone()).collect();
    for (node, example) in nodes.iter_mut().zip(EXAMPLE_NODES) {
        let partners: Vec<&PartnerEntry> = example
            .partners
            .iter()
            .filter_map(|agency| entries.iter().find(|e| e.agency == *agency))
            .collect();
        let local = SocketAddr::new(node.listen.ip(), node.listen.port() + 10);
        let config = node_config(node, EXAMPLE_HEADER, &partners, Some(local));
        let staff = node.dir.join("staff");
        let ca = write_staff_ca(&staff, example.agency)?;
        write_user_cert(&staff, &ca, "analyst", crate::config::Role::Analyst)?;
        write_user_cert(&staff, &ca, "operator", crate::config::Role::Operator)?;
        node.write_public(
            layout::POLICY,
            &format!("{EXAMPLE_HEADER}\n{}", example.policy),
        )?;
        node.write_public(layout::CONFIG, &config)?;
    }
    write_unregistered(&dir.join("unregistered"), &ca)?;
    write_new(&dir.join("README.md"), EXAMPLE_README.as_bytes())
}

/// A certificate of an agency that no example node registers, with its key and the CA.
fn write_unregistered(dir: &Path, ca: &Ca) -> Result<(), SetupError> {
    let issued = issue_node_cert(ca, UNREGISTERED_AGENCY, &[])?;
    create_dir(&dir.join("tls"))?;
    write_new(&dir.join(layout::CERT), issued.cert_pem.as_bytes())?;
    write_private(&dir.join(layout::KEY), &Zeroizing::new(issued.key_pem))?;
    write_new(&dir.join(layout::CA_CERT), ca.cert_pem.as_bytes())
}

fn refuse_non_empty(dir: &Path) -> Result<(), SetupError> {
    let mut entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SetupError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    match entries.next() {
        Some(_) => Err(SetupError::NotEmpty(dir.to_owned())),
        None => Ok(()),
    }
}

const EXAMPLE_README: &str = r#"# Example federation

**EXAMPLE MATERIAL ONLY.** Every private key in this directory is public: it is committed
to the repository on purpose, so that the demonstration runs without any setup. Never use
any of these keys, certificates or configs in production; generate a node's own material
with the node setup instead.

Regenerate the whole directory (new keys, certificates and fingerprints) with

    entente certs example DIR

into a new or empty directory `DIR`; it refuses to write into a directory that holds
anything.

## What each file is

- `ca.crt`: the example CA certificate, trusted by all three nodes.
- `ca.key`: the example CA's private key (a real CA key never leaves its owner).
- `<agency>/entente.toml`: the node's config. The other two agencies are registered as
  partners with their real public keys and certificate fingerprints.
- `<agency>/policy.toml`: the node's sharing policy: what it sends each partner, in what
  form, and what it accepts from each.
- `<agency>/public.toml`: the `[[partners]]` entry that registers this node in a
  partner's config.
- `<agency>/keys/signing.pem`: the node's Ed25519 signing key (PKCS#8).
- `<agency>/keys/encryption.pem`: the node's X25519 HPKE encryption key (PKCS#8).
- `<agency>/keys/data.key`: the node's data key (AES-256), which encrypts report content
  in its store.
- `<agency>/tls/node.crt`: the node's TLS certificate. Its URI SAN
  `urn:entente:agency:AGENCY` names the agency; it is valid for `localhost` and
  `127.0.0.1`.
- `<agency>/tls/node.key`: the private key of that certificate.
- `<agency>/tls/ca.crt`: a copy of `ca.crt`.
- `<agency>/staff/ca.crt`, `ca.key`: the agency's own staff CA, which the node's local
  listener (`[local]`, on the peer port + 10) trusts for its analysts and operators.
- `<agency>/staff/analyst.crt`, `analyst.key`: a personal certificate with OU `analyst`
  (may query and submit); `operator.crt`, `operator.key`: one with OU `operator` (may
  also share again, reload the policy, publish watchlists, read the audit log). Use them
  with `--user-cert` and `--user-key`, or `ENTENTE_USER_CERT` and `ENTENTE_USER_KEY`.
- `unregistered/tls/node.crt`, `node.key`, `ca.crt`: a valid certificate from the same CA
  for `KP-UNREG`, an agency that no node registers. A node must refuse it.

The nodes are US-BIS (`us-bis/`, listening on 127.0.0.1:7401), DE-BAFA (`de-bafa/`,
127.0.0.1:7402) and JP-METI (`jp-meti/`, 127.0.0.1:7403). Their policies (each
`policy.toml` says it in full; TLP:RED and the other markings override every rule):

| from | to | what | how |
| --- | --- | --- | --- |
| US-BIS | DE-BAFA | suspicious-transaction | without identifiers or reference; addresses reduced to their country, values to their decade |
| US-BIS | DE-BAFA | denial-notification, enforcement-alert | as they are |
| US-BIS | JP-METI | denial-notification, enforcement-alert | as they are |
| DE-BAFA | US-BIS | all three kinds | as they are |
| DE-BAFA | JP-METI | enforcement-alert; suspicious-transaction about 2B* or 3A* goods | as they are (JP-METI refuses the STRs: it does not accept them from DE-BAFA) |
| JP-METI | US-BIS | denial-notification, enforcement-alert | as they are; STRs denied by rule `no-strs` |
| JP-METI | DE-BAFA | denial-notification, enforcement-alert | as they are |

The certificates are valid for two years from their generation (the CA for ten).
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failed unwrap is a failed test.
mod tests {
    use rustls::{
        client::{WebPkiServerVerifier, danger::ServerCertVerifier as _},
        pki_types::{CertificateDer, ServerName, UnixTime},
    };

    use super::*;
    use crate::{config::Config, tls::TlsMaterial};

    fn options(agency: &str, ca: Option<Ca>) -> InitOptions {
        InitOptions {
            agency: agency.into(),
            listen: "127.0.0.1:7401".parse().unwrap(),
            ca,
            hosts: vec!["node.example.org".into(), "10.0.0.7".into()],
        }
    }

    /// Checks that `cert_pem` chains to `ca_pem` and is valid for `host`.
    fn chains(ca_pem: &str, cert_pem: &str, host: &str) -> Result<(), rustls::Error> {
        let der = |text: &str| CertificateDer::from(pem_certificate(text).unwrap());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(ca_pem)).unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            rustls::crypto::ring::default_provider().into(),
        )
        .build()
        .unwrap();
        let name = ServerName::try_from(host.to_owned()).unwrap();
        let leaf = der(cert_pem);
        verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())?;
        Ok(())
    }

    #[test]
    fn init_node_writes_a_config_that_loads_with_keys_and_tls_material_that_load() {
        let dir = tempfile::tempdir().unwrap();
        let summary = init_node(dir.path(), &options("US-BIS", None)).unwrap();
        assert!(summary.ca_generated);
        let config = Config::load(&summary.config).unwrap();
        assert_eq!(config.agency, "US-BIS");
        assert!(config.partners.is_empty());
        let signing = SigningKey::load(&config.signing_key).unwrap();
        let encryption = EncryptionKey::load(&config.encryption_key).unwrap();
        assert_eq!(signing.key_id(), summary.signing_key_id);
        assert_eq!(encryption.key_id(), summary.encryption_key_id);
        let tls = TlsMaterial::load(&config.tls_cert, &config.tls_key, &config.tls_ca).unwrap();
        assert_eq!(tls.agency().unwrap(), "US-BIS");
        assert_eq!(tls::fingerprint(&tls.certs[0]), summary.cert_fingerprint);
        let (ca_cert, ca_key) = (
            dir.path().join(layout::CA_CERT),
            dir.path().join(layout::CA_KEY),
        );
        assert!(Ca::load(&ca_cert, &ca_key).is_ok());
        let report = summary.to_string();
        assert!(
            report.contains("public.toml") && report.contains("a new CA"),
            "{report}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        init_node(dir.path(), &options("US-BIS", None)).unwrap();
        for key in [
            layout::SIGNING_KEY,
            layout::ENCRYPTION_KEY,
            layout::KEY,
            layout::CA_KEY,
        ] {
            let mode = fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }

    #[test]
    fn the_public_entry_registers_the_node_in_a_partners_config() {
        let ca = Ca::generate("shared CA").unwrap();
        let (us_dir, de_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let us = init_node(us_dir.path(), &options("US-BIS", Some(ca))).unwrap();
        assert!(!us.ca_generated && !us_dir.path().join(layout::CA_KEY).exists());
        let de = init_node(de_dir.path(), &options("DE-BAFA", None)).unwrap();
        let mut text = fs::read_to_string(&de.config).unwrap();
        text += &fs::read_to_string(&us.public_entry).unwrap();
        fs::write(&de.config, text).unwrap();
        let config = Config::load(&de.config).unwrap();
        let partner = config.partner("US-BIS").unwrap();
        assert_eq!(partner.endpoint, "https://127.0.0.1:7401");
        assert_eq!(partner.keys.signing_key_id(), us.signing_key_id);
        assert_eq!(partner.keys.encryption_key_id(), us.encryption_key_id);
        assert_eq!(partner.cert_fingerprint, Some(us.cert_fingerprint));
        let (policy, _) = crate::node::load_policy(&config).unwrap();
        assert!(policy.partners().is_empty(), "a new node shares nothing");
    }

    #[test]
    fn init_node_refuses_to_overwrite_an_existing_node() {
        let dir = tempfile::tempdir().unwrap();
        let first = init_node(dir.path(), &options("US-BIS", None)).unwrap();
        let before = fs::read(dir.path().join(layout::SIGNING_KEY)).unwrap();
        let err = init_node(dir.path(), &options("US-BIS", None)).unwrap_err();
        assert!(
            matches!(&err, SetupError::Exists(p) if p == &first.config),
            "{err}"
        );
        assert_eq!(
            fs::read(dir.path().join(layout::SIGNING_KEY)).unwrap(),
            before
        );
    }

    #[test]
    fn node_certificates_chain_to_their_ca_and_carry_the_requested_names() {
        let ca = Ca::generate("test CA").unwrap();
        let hosts = ["node.example.org".to_owned(), "10.0.0.7".to_owned()];
        let issued = issue_node_cert(&ca, "DE-BAFA", &hosts).unwrap();
        for host in ["localhost", "127.0.0.1", "node.example.org", "10.0.0.7"] {
            chains(&ca.cert_pem(), &issued.cert_pem, host).unwrap();
        }
        assert!(chains(&ca.cert_pem(), &issued.cert_pem, "other.example.org").is_err());
        assert_eq!(tls::agency_from_cert(&issued.der()).unwrap(), "DE-BAFA");
        assert!(matches!(
            issue_node_cert(&ca, "de-bafa", &[]),
            Err(SetupError::Identity(_))
        ));
        let bad = issue_node_cert(&ca, "DE-BAFA", &["a host".into()]).unwrap_err();
        assert!(matches!(bad, SetupError::BadHost(_)), "{bad}");
    }

    #[test]
    fn a_reloaded_ca_issues_certificates_that_chain_to_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("Entente test CA").unwrap();
        let (cert, key) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
        fs::write(&cert, ca.cert_pem()).unwrap();
        fs::write(&key, ca.key_pem().as_bytes()).unwrap();
        let reloaded = Ca::load(&cert, &key).unwrap();
        let issued = issue_node_cert(&reloaded, "JP-METI", &[]).unwrap();
        chains(&ca.cert_pem(), &issued.cert_pem, "localhost").unwrap();
        // A key that is not the certificate's is refused, naming the certificate file.
        let other = Ca::generate("other").unwrap();
        fs::write(&key, other.key_pem().as_bytes()).unwrap();
        let err = Ca::load(&cert, &key).unwrap_err();
        assert!(err.to_string().contains("ca.crt") && err.to_string().contains("not for"));
    }

    #[test]
    fn debug_output_hides_private_keys() {
        let ca = Ca::generate("test CA").unwrap();
        let issued = issue_node_cert(&ca, "US-BIS", &[]).unwrap();
        for shown in [format!("{ca:?}"), format!("{issued:?}")] {
            assert!(
                shown.contains("hidden") && !shown.contains("PRIVATE KEY"),
                "{shown}"
            );
        }
    }

    /// Checks that the three example configs register each other with the keys and
    /// certificates actually in the example directory.
    fn check_example(dir: &Path) {
        let configs: Vec<Config> = EXAMPLE_NODES
            .iter()
            .map(|node| {
                Config::load(&dir.join(node.agency.to_lowercase()).join(layout::CONFIG)).unwrap()
            })
            .collect();
        for config in &configs {
            let tls = TlsMaterial::load(&config.tls_cert, &config.tls_key, &config.tls_ca).unwrap();
            assert_eq!(tls.agency().unwrap(), config.agency);
            assert_eq!(config.partners.len(), 2, "{}", config.agency);
            for partner in &config.partners {
                let other = configs.iter().find(|c| c.agency == partner.agency).unwrap();
                let signing = SigningKey::load(&other.signing_key).unwrap();
                let encryption = EncryptionKey::load(&other.encryption_key).unwrap();
                assert_eq!(partner.keys.signing, signing.public());
                assert_eq!(partner.keys.encryption, encryption.public());
                let cert =
                    TlsMaterial::load(&other.tls_cert, &other.tls_key, &other.tls_ca).unwrap();
                assert_eq!(
                    partner.cert_fingerprint,
                    Some(tls::fingerprint(&cert.certs[0]))
                );
                assert_eq!(partner.endpoint, format!("https://{}", other.listen));
            }
        }
        let unreg = dir.join("unregistered");
        let tls = TlsMaterial::load(
            &unreg.join(layout::CERT),
            &unreg.join(layout::KEY),
            &dir.join("ca.crt"),
        );
        assert_eq!(tls.unwrap().agency().unwrap(), UNREGISTERED_AGENCY);
    }

    #[test]
    fn the_example_nodes_register_each_other_with_matching_keys() {
        let dir = tempfile::tempdir().unwrap();
        write_example(dir.path()).unwrap();
        check_example(dir.path());
        for node in EXAMPLE_NODES {
            let dir = dir.path().join(node.agency.to_lowercase());
            let config = Config::load(&dir.join(layout::CONFIG)).unwrap();
            let (policy, warnings) = crate::node::load_policy(&config).unwrap();
            assert!(warnings.is_empty(), "{}: {warnings:?}", node.agency);
            assert_eq!(policy.partners(), node.partners);
        }
        let header = fs::read_to_string(dir.path().join("jp-meti").join(layout::CONFIG)).unwrap();
        assert!(header.starts_with("# EXAMPLE MATERIAL ONLY"));
        let err = write_example(dir.path()).unwrap_err();
        assert!(matches!(err, SetupError::NotEmpty(_)), "{err}");
    }

    #[test]
    fn the_committed_example_is_consistent() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example");
        check_example(&dir);
    }

    /// Regenerates `certs-example/` when `ENTENTE_REGENERATE_EXAMPLE=1`; the directory must
    /// have been removed first.
    #[test]
    #[ignore = "writes certs-example/ in the source tree"]
    fn regenerate_the_committed_example() {
        if std::env::var_os("ENTENTE_REGENERATE_EXAMPLE").is_some_and(|v| v == "1") {
            write_example(&Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example")).unwrap();
        }
    }
}
