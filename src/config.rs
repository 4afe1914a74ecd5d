//! The node's TOML configuration file, read into typed, validated values.
//!
//! Relative paths in the file are taken relative to the directory that holds the file. An
//! invalid file is refused as a whole with an error naming the file, the line, the key and
//! what was expected; the value itself is never repeated (it may be a secret path or key).

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    identity::{self, PublicKeys},
    sharing::ShareKind,
};

/// The default limit on one gRPC message (one batch of envelopes): 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A configuration error: which file, where, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown, missing or of the wrong type.
    #[error("config file {file}: {message}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's message, which names the line, column and key.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("config file {file}, line {line}: key `{key}`: expected {expected}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// Dotted path of the key, such as `partners[1].endpoint`.
        key: String,
        /// What an acceptable value looks like.
        expected: String,
    },
}

/// A node's validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// This node's agency id.
    pub agency: String,
    /// Directory of the sled store and the control socket.
    pub data_dir: PathBuf,
    /// Address the peer listener binds.
    pub listen: SocketAddr,
    /// Largest gRPC message accepted from a peer, in bytes.
    pub max_message_bytes: usize,
    /// Ed25519 private key file.
    pub signing_key: PathBuf,
    /// X25519 private key file.
    pub encryption_key: PathBuf,
    /// TLS certificate chain (PEM) presented to peers.
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    pub tls_key: PathBuf,
    /// CA certificates (PEM) trusted for partner certificates.
    pub tls_ca: PathBuf,
    /// Delivery tuning.
    pub delivery: Delivery,
    /// Registered partners, in file order.
    pub partners: Vec<PartnerConfig>,
}

/// Delivery tuning.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Most envelopes in one batch.
    pub batch_size: usize,
    /// Longest wait between two attempts to reach an unreachable partner, in milliseconds.
    pub max_backoff_ms: u64,
    /// First wait after a failure, in milliseconds.
    pub initial_backoff_ms: u64,
}

/// One registered partner.
#[derive(Clone)]
pub struct PartnerConfig {
    /// The partner's agency id; its TLS certificate must carry it.
    pub agency: String,
    /// Where its peer listener is, as `https://HOST:PORT`.
    pub endpoint: String,
    /// Its public signing and encryption keys.
    pub keys: PublicKeys,
    /// CA file for its certificate, when it differs from `[tls] ca`.
    pub ca: Option<PathBuf>,
    /// SHA-256 of its certificate (DER), when pinned.
    pub cert_fingerprint: Option<[u8; 32]>,
    /// Item kinds this node may send it (the interim sharing rule); empty sends nothing.
    pub share: Vec<ShareKind>,
}

impl fmt::Debug for PartnerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerConfig")
            .field("agency", &self.agency)
            .field("endpoint", &self.endpoint)
            .field("keys", &self.keys)
            .field("share", &self.share)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text`, which was read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Validator {
            file: path,
            text,
            base: path.parent().unwrap_or(Path::new(".")),
        }
        .config(raw)
    }

    /// The partner with this agency id, if registered.
    pub fn partner(&self, agency: &str) -> Option<&PartnerConfig> {
        self.partners.iter().find(|p| p.agency == agency)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    keys: RawKeys,
    tls: RawTls,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    partners: Vec<RawPartner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    agency: Spanned<String>,
    data_dir: String,
    listen: Spanned<String>,
    max_message_bytes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    signing: String,
    encryption: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
    ca: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    batch_size: Option<Spanned<i64>>,
    max_backoff_ms: Option<Spanned<i64>>,
    initial_backoff_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    agency: Spanned<String>,
    endpoint: Spanned<String>,
    signing_key: Spanned<String>,
    encryption_key: Spanned<String>,
    ca: Option<String>,
    cert_fingerprint: Option<Spanned<String>>,
    #[serde(default)]
    share: Vec<Spanned<String>>,
}

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    base: &'a Path,
}

impl Validator<'_> {
    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let agency = self.agency(&raw.node.agency, "node.agency")?;
        let listen = raw.node.listen.get_ref().parse().map_err(|_| {
            self.invalid(
                &raw.node.listen,
                "node.listen",
                "an address such as \"127.0.0.1:7401\"",
            )
        })?;
        let max_message_bytes = self.ranged(
            raw.node.max_message_bytes.as_ref(),
            "node.max_message_bytes",
            DEFAULT_MAX_MESSAGE_BYTES as i64,
            1024..=256 * 1024 * 1024,
        )? as usize;
        let delivery = Delivery {
            batch_size: self.ranged(
                raw.delivery.batch_size.as_ref(),
                "delivery.batch_size",
                128,
                1..=4096,
            )? as usize,
            max_backoff_ms: self.ranged(
                raw.delivery.max_backoff_ms.as_ref(),
                "delivery.max_backoff_ms",
                60_000,
                10..=86_400_000,
            )? as u64,
            initial_backoff_ms: self.ranged(
                raw.delivery.initial_backoff_ms.as_ref(),
                "delivery.initial_backoff_ms",
                200,
                1..=3_600_000,
            )? as u64,
        };
        let mut partners: Vec<PartnerConfig> = Vec::new();
        for (i, p) in raw.partners.into_iter().enumerate() {
            let partner = self.partner(i, p)?;
            if partner.agency == agency || partners.iter().any(|q| q.agency == partner.agency) {
                return Err(ConfigError::Invalid {
                    file: self.file.to_owned(),
                    line: 0,
                    key: format!("partners[{i}].agency"),
                    expected: "an agency id registered once, other than node.agency".into(),
                });
            }
            partners.push(partner);
        }
        Ok(Config {
            file: self.file.to_owned(),
            agency,
            data_dir: self.path(&raw.node.data_dir),
            listen,
            max_message_bytes,
            signing_key: self.path(&raw.keys.signing),
            encryption_key: self.path(&raw.keys.encryption),
            tls_cert: self.path(&raw.tls.cert),
            tls_key: self.path(&raw.tls.key),
            tls_ca: self.path(&raw.tls.ca),
            delivery,
            partners,
        })
    }

    fn partner(&self, i: usize, p: RawPartner) -> Result<PartnerConfig, ConfigError> {
        let key = |k: &str| format!("partners[{i}].{k}");
        let agency = self.agency(&p.agency, &key("agency"))?;
        let endpoint = p.endpoint.get_ref();
        let valid_endpoint = endpoint
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && rest.contains(':'));
        if !valid_endpoint {
            return Err(self.invalid(
                &p.endpoint,
                &key("endpoint"),
                "an https URL with a port, such as \"https://127.0.0.1:7402\"",
            ));
        }
        let signing = identity::parse_public_key("ed25519", p.signing_key.get_ref())
            .map_err(|e| self.invalid(&p.signing_key, &key("signing_key"), &e.to_string()))?;
        let encryption = identity::parse_public_key("x25519", p.encryption_key.get_ref())
            .map_err(|e| self.invalid(&p.encryption_key, &key("encryption_key"), &e.to_string()))?;
        let cert_fingerprint = p
            .cert_fingerprint
            .as_ref()
            .map(|f| {
                parse_fingerprint(f.get_ref()).ok_or_else(|| {
                    self.invalid(
                        f,
                        &key("cert_fingerprint"),
                        "\"sha256:\" followed by 64 hex digits",
                    )
                })
            })
            .transpose()?;
        let mut share = Vec::new();
        for (j, s) in p.share.iter().enumerate() {
            let kind = s.get_ref().parse::<ShareKind>().map_err(|expected| {
                self.invalid(s, &format!("partners[{i}].share[{j}]"), &expected)
            })?;
            share.push(kind);
        }
        Ok(PartnerConfig {
            agency,
            endpoint: endpoint.clone(),
            keys: PublicKeys {
                signing,
                encryption,
            },
            ca: p.ca.as_deref().map(|c| self.path(c)),
            cert_fingerprint,
            share,
        })
    }

    fn agency(&self, value: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        identity::validate_agency_id(value.get_ref()).map_err(|_| {
            self.invalid(
                value,
                key,
                "an agency id: 2 to 32 upper-case letters, digits and '-', such as \"US-BIS\"",
            )
        })?;
        Ok(value.get_ref().clone())
    }

    fn ranged(
        &self,
        value: Option<&Spanned<i64>>,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(self.invalid(
                v,
                key,
                &format!("a whole number from {} to {}", range.start(), range.end()),
            )),
        }
    }

    fn invalid<T>(&self, at: &Spanned<T>, key: &str, expected: &str) -> ConfigError {
        let line = self.text[..at.span().start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            expected: expected.to_owned(),
        }
    }

    fn path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }
}

/// Parses `sha256:HEX` into 32 bytes.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let raw = hex::decode(text.strip_prefix("sha256:")?).ok()?;
    raw.try_into().ok()
}
