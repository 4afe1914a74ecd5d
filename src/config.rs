//! The node's TOML configuration file, read into typed, validated values.
//!
//! Relative paths in the file are taken relative to the directory that holds the file. An
//! invalid file is refused as a whole with an error naming the file, the line, the key and
//! what was expected. A value that fails validation is not repeated in the error, and
//! syntax errors leave out the quoted source line. The file holds no secrets (private
//! keys live in their own files), but keeping values out of errors keeps logs clean.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use toml::Spanned;

use crate::identity::{self, PublicKeys};

/// The default limit on one gRPC message (one batch of envelopes): 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The default `[keys] data`, relative to the config file's directory.
pub const DEFAULT_DATA_KEY: &str = "keys/data.key";

/// The default `[limits] max_item_age_days`: the replay window.
pub const DEFAULT_MAX_ITEM_AGE_DAYS: u32 = 30;

/// The default `[limits] max_clock_skew_secs`.
pub const DEFAULT_MAX_CLOCK_SKEW_SECS: u32 = 300;

/// The default `[limits] max_streams_per_peer`. A partner's node opens one delivery stream
/// and, now and then, a pull: four leave room for a reconnection overlapping the old stream.
pub const DEFAULT_MAX_STREAMS_PER_PEER: u32 = 4;

/// The default `[limits] max_envelopes_per_sec`: well above what one node can seal, so that
/// only a misbehaving partner meets it.
pub const DEFAULT_MAX_ENVELOPES_PER_SEC: u32 = 20_000;

/// The default `[limits] idle_stream_secs`: longer than a sender keeps an idle stream open.
pub const DEFAULT_IDLE_STREAM_SECS: u32 = 120;

/// The default `[limits] min_free_disk_mb`: room for sled to finish what it has begun
/// and for the audit entries of refusals while the operator frees space.
pub const DEFAULT_MIN_FREE_DISK_MB: u64 = 64;

/// The default `[limits] max_recipients`: the most agencies a report's handling may release
/// it to (`releasable_to`). Far more than any MOU names, few enough that a hostile list
/// cannot make a policy decision or a display costly.
pub const DEFAULT_MAX_RECIPIENTS: u32 = 64;

/// The default `[screening] threshold`: the lowest score of a watchlist hit kept with a
/// stored report.
pub const DEFAULT_SCREENING_THRESHOLD: f64 = 0.90;

/// The values `[screening] threshold` may take. Below 0.5 nearly every name "matches"
/// something, which would bury the real hits.
pub const SCREENING_THRESHOLD_RANGE: std::ops::RangeInclusive<f64> = 0.5..=1.0;

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
    /// The sharing-policy file (see [`crate::policy`]).
    pub policy: PathBuf,
    /// Largest gRPC message accepted from a peer, in bytes.
    pub max_message_bytes: usize,
    /// Where `entente serve` serves Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Ed25519 private key file.
    pub signing_key: PathBuf,
    /// X25519 private key file.
    pub encryption_key: PathBuf,
    /// The data key file, which encrypts report content in the store.
    pub data_key: PathBuf,
    /// TLS certificate chain (PEM) presented to peers.
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    pub tls_key: PathBuf,
    /// CA certificates (PEM) trusted for partner certificates.
    pub tls_ca: PathBuf,
    /// Certificate revocation lists (PEM) whose certificates are refused, if any.
    pub tls_crl: Option<PathBuf>,
    /// Delivery tuning.
    pub delivery: Delivery,
    /// Screening of stored reports against the watchlists held.
    pub screening: Screening,
    /// Corrections, retractions, consent and consultations.
    pub lifecycle: Lifecycle,
    /// Limits on what partners may send.
    pub limits: Limits,
    /// The local listener for the agency's own analysts and operators, if configured.
    pub local: Option<Local>,
    /// Registered partners, in file order.
    pub partners: Vec<PartnerConfig>,
}

/// What a caller on the local listener may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// May query (list, show, search, screen, correlations) and submit reports.
    Analyst,
    /// May also share items again, reload the policy, publish watchlists and read the
    /// audit log.
    Operator,
}

impl Role {
    /// The role named `name` ("analyst" or "operator", in any case).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "analyst" => Some(Self::Analyst),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::Operator => "operator",
        }
    }
}

/// `[local]`: the listener for the agency's own people, separate from the peer listener.
#[derive(Debug, Clone)]
pub struct Local {
    /// Address it binds.
    pub listen: SocketAddr,
    /// CA certificates (PEM) of the agency's staff CA, which issues personal certificates.
    pub ca: PathBuf,
    /// Roles by certificate common name; they take precedence over the certificate's OU.
    pub users: std::collections::BTreeMap<String, Role>,
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

/// Limits on what partners may send: how old or how far in the future an item may be
/// dated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Items created longer ago than this, in days, are refused (the replay window).
    pub max_item_age_days: u32,
    /// Items dated more than this many seconds after this node's clock are refused.
    pub max_clock_skew_secs: u32,
    /// Most streams (deliveries and pulls) one partner may have open at once.
    pub max_streams_per_peer: u32,
    /// Envelopes per second one partner may deliver; faster batches are held back.
    pub max_envelopes_per_sec: u32,
    /// A delivery stream on which nothing arrives for this many seconds is closed.
    pub idle_stream_secs: u32,
    /// MiB kept free on the data directory's file system: below it, new items are refused
    /// (partners get UNAVAILABLE and retry) and nothing is written. 0 turns the check off.
    pub min_free_disk_mb: u64,
    /// Most agencies a report's handling may name in `releasable_to`, on submission and on
    /// receipt. (An envelope names exactly one recipient: that is the format, not a limit.)
    pub max_recipients: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_item_age_days: DEFAULT_MAX_ITEM_AGE_DAYS,
            max_clock_skew_secs: DEFAULT_MAX_CLOCK_SKEW_SECS,
            max_streams_per_peer: DEFAULT_MAX_STREAMS_PER_PEER,
            max_envelopes_per_sec: DEFAULT_MAX_ENVELOPES_PER_SEC,
            idle_stream_secs: DEFAULT_IDLE_STREAM_SECS,
            min_free_disk_mb: DEFAULT_MIN_FREE_DISK_MB,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
        }
    }
}

impl Limits {
    /// Whether `report` names no more agencies in `releasable_to` than
    /// [`Limits::max_recipients`] allows: `Err` says how many and the limit.
    pub fn check_recipients(&self, report: &crate::pb::Report) -> Result<(), String> {
        let named = report
            .handling
            .as_ref()
            .map_or(0, |h| h.releasable_to.len());
        if named > self.max_recipients as usize {
            Err(format!(
                "handling.releasable_to: names {named} agencies, more than the {} allowed \
                 (limits.max_recipients)",
                self.max_recipients
            ))
        } else {
            Ok(())
        }
    }

    /// Whether an item created at `created_at_ms` may be accepted at `now_ms`: `Err` says
    /// why not.
    pub fn check_time(&self, created_at_ms: i64, now_ms: i64) -> Result<(), String> {
        let oldest = now_ms.saturating_sub(i64::from(self.max_item_age_days) * 86_400_000);
        let latest = now_ms.saturating_add(i64::from(self.max_clock_skew_secs) * 1000);
        if created_at_ms < oldest {
            Err(format!(
                "created {} days ago, outside the replay window of {} days \
                 (limits.max_item_age_days)",
                now_ms.saturating_sub(created_at_ms) / 86_400_000,
                self.max_item_age_days
            ))
        } else if created_at_ms > latest {
            Err(format!(
                "dated {} s ahead of this node's clock, more than the {} s allowed \
                 (limits.max_clock_skew_secs)",
                created_at_ms.saturating_sub(now_ms) / 1000,
                self.max_clock_skew_secs
            ))
        } else {
            Ok(())
        }
    }
}

/// Screening of stored reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Screening {
    /// Lowest score of a hit kept with a report, in [`SCREENING_THRESHOLD_RANGE`].
    pub threshold: f64,
}

impl Default for Screening {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_SCREENING_THRESHOLD,
        }
    }
}

/// The default `[lifecycle] consultation_days`.
pub const DEFAULT_CONSULTATION_DAYS: u32 = 30;

/// Items after they were sent: corrections, retractions, consent, consultations.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    /// Days a denying agency is given to reply to a consultation, 1 to 365.
    pub consultation_days: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            consultation_days: DEFAULT_CONSULTATION_DAYS,
        }
    }
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
}

impl fmt::Debug for PartnerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerConfig")
            .field("agency", &self.agency)
            .field("endpoint", &self.endpoint)
            .field("keys", &self.keys)
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
            message: syntax_message(text, &e),
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
    screening: RawScreening,
    #[serde(default)]
    lifecycle: RawLifecycle,
    #[serde(default)]
    limits: RawLimits,
    local: Option<RawLocal>,
    #[serde(default)]
    partners: Vec<RawPartner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    listen: Spanned<String>,
    ca: String,
    #[serde(default)]
    users: std::collections::BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_item_age_days: Option<Spanned<i64>>,
    max_clock_skew_secs: Option<Spanned<i64>>,
    max_streams_per_peer: Option<Spanned<i64>>,
    max_envelopes_per_sec: Option<Spanned<i64>>,
    idle_stream_secs: Option<Spanned<i64>>,
    min_free_disk_mb: Option<Spanned<i64>>,
    max_recipients: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    consultation_days: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScreening {
    threshold: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    agency: Spanned<String>,
    data_dir: String,
    listen: Spanned<String>,
    policy: String,
    max_message_bytes: Option<Spanned<i64>>,
    metrics_listen: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    signing: String,
    encryption: String,
    data: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
    ca: String,
    crl: Option<String>,
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
        let metrics_listen = raw
            .node
            .metrics_listen
            .as_ref()
            .map(|at| {
                at.get_ref().parse().map_err(|_| {
                    self.invalid(
                        at,
                        "node.metrics_listen",
                        "an address such as \"127.0.0.1:9464\"",
                    )
                })
            })
            .transpose()?;
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
        let screening = self.screening(&raw.screening)?;
        let lifecycle = self.lifecycle(&raw.lifecycle)?;
        let limits = Limits {
            max_item_age_days: self.ranged(
                raw.limits.max_item_age_days.as_ref(),
                "limits.max_item_age_days",
                i64::from(DEFAULT_MAX_ITEM_AGE_DAYS),
                1..=3650,
            )? as u32,
            max_clock_skew_secs: self.ranged(
                raw.limits.max_clock_skew_secs.as_ref(),
                "limits.max_clock_skew_secs",
                i64::from(DEFAULT_MAX_CLOCK_SKEW_SECS),
                0..=86_400,
            )? as u32,
            max_streams_per_peer: self.ranged(
                raw.limits.max_streams_per_peer.as_ref(),
                "limits.max_streams_per_peer",
                i64::from(DEFAULT_MAX_STREAMS_PER_PEER),
                1..=64,
            )? as u32,
            max_envelopes_per_sec: self.ranged(
                raw.limits.max_envelopes_per_sec.as_ref(),
                "limits.max_envelopes_per_sec",
                i64::from(DEFAULT_MAX_ENVELOPES_PER_SEC),
                1..=1_000_000,
            )? as u32,
            idle_stream_secs: self.ranged(
                raw.limits.idle_stream_secs.as_ref(),
                "limits.idle_stream_secs",
                i64::from(DEFAULT_IDLE_STREAM_SECS),
                1..=86_400,
            )? as u32,
            min_free_disk_mb: self.ranged(
                raw.limits.min_free_disk_mb.as_ref(),
                "limits.min_free_disk_mb",
                DEFAULT_MIN_FREE_DISK_MB as i64,
                0..=1_048_576,
            )? as u64,
            max_recipients: self.ranged(
                raw.limits.max_recipients.as_ref(),
                "limits.max_recipients",
                i64::from(DEFAULT_MAX_RECIPIENTS),
                1..=1000,
            )? as u32,
        };
        let local = raw.local.as_ref().map(|l| self.local(l)).transpose()?;
        let mut partners: Vec<PartnerConfig> = Vec::new();
        for (i, p) in raw.partners.into_iter().enumerate() {
            let at = p.agency.clone();
            let partner = self.partner(i, p)?;
            if partner.agency == agency || partners.iter().any(|q| q.agency == partner.agency) {
                return Err(self.invalid(
                    &at,
                    &format!("partners[{i}].agency"),
                    "an agency id registered once, other than node.agency",
                ));
            }
            partners.push(partner);
        }
        Ok(Config {
            file: self.file.to_owned(),
            agency,
            data_dir: self.path(&raw.node.data_dir),
            listen,
            policy: self.path(&raw.node.policy),
            max_message_bytes,
            metrics_listen,
            signing_key: self.path(&raw.keys.signing),
            encryption_key: self.path(&raw.keys.encryption),
            data_key: self.path(raw.keys.data.as_deref().unwrap_or(DEFAULT_DATA_KEY)),
            tls_cert: self.path(&raw.tls.cert),
            tls_key: self.path(&raw.tls.key),
            tls_ca: self.path(&raw.tls.ca),
            tls_crl: raw.tls.crl.as_deref().map(|p| self.path(p)),
            delivery,
            screening,
            lifecycle,
            limits,
            local,
            partners,
        })
    }

    fn local(&self, raw: &RawLocal) -> Result<Local, ConfigError> {
        let listen = raw.listen.get_ref().parse().map_err(|_| {
            self.invalid(
                &raw.listen,
                "local.listen",
                "an address such as \"127.0.0.1:7443\"",
            )
        })?;
        let mut users = std::collections::BTreeMap::new();
        for (name, role) in &raw.users {
            let parsed = Role::parse(role.get_ref()).ok_or_else(|| {
                self.invalid(
                    role,
                    &format!("local.users.{name}"),
                    "\"analyst\" or \"operator\"",
                )
            })?;
            users.insert(name.clone(), parsed);
        }
        Ok(Local {
            listen,
            ca: self.path(&raw.ca),
            users,
        })
    }

    fn lifecycle(&self, raw: &RawLifecycle) -> Result<Lifecycle, ConfigError> {
        let Some(days) = &raw.consultation_days else {
            return Ok(Lifecycle::default());
        };
        match u32::try_from(*days.get_ref()) {
            Ok(d @ 1..=365) => Ok(Lifecycle {
                consultation_days: d,
            }),
            _ => Err(self.invalid(
                days,
                "lifecycle.consultation_days",
                &format!("a number of days from 1 to 365, such as {DEFAULT_CONSULTATION_DAYS}"),
            )),
        }
    }

    fn screening(&self, raw: &RawScreening) -> Result<Screening, ConfigError> {
        let Some(threshold) = &raw.threshold else {
            return Ok(Screening::default());
        };
        if !SCREENING_THRESHOLD_RANGE.contains(threshold.get_ref()) {
            return Err(self.invalid(
                threshold,
                "screening.threshold",
                &format!(
                    "a score from {} to {}, such as {DEFAULT_SCREENING_THRESHOLD}",
                    SCREENING_THRESHOLD_RANGE.start(),
                    SCREENING_THRESHOLD_RANGE.end()
                ),
            ));
        }
        Ok(Screening {
            threshold: *threshold.get_ref(),
        })
    }

    fn partner(&self, i: usize, p: RawPartner) -> Result<PartnerConfig, ConfigError> {
        let key = |k: &str| format!("partners[{i}].{k}");
        let agency = self.agency(&p.agency, &key("agency"))?;
        let endpoint = p.endpoint.get_ref();
        let valid_endpoint = endpoint.parse::<http::Uri>().is_ok_and(|uri| {
            uri.scheme_str() == Some("https")
                && uri.host().is_some_and(|h| !h.is_empty())
                && uri.port_u16().is_some()
                && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
        });
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
        Ok(PartnerConfig {
            agency,
            endpoint: endpoint.clone(),
            keys: PublicKeys {
                signing,
                encryption,
            },
            ca: p.ca.as_deref().map(|c| self.path(c)),
            cert_fingerprint,
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

/// The parser's message with its line, but without the quoted source line that toml adds,
/// so that a mistyped value is not echoed back.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_owned(),
    }
}

/// Parses `sha256:HEX` into 32 bytes.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let raw = hex::decode(text.strip_prefix("sha256:")?).ok()?;
    raw.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{EncryptionKey, SigningKey, public_key_text};

    const FILE: &str = "/etc/entente/node.toml";

    /// A partner's key lines, distinct per seed so that tests can edit one partner.
    fn key_lines(seed: u8) -> String {
        let signing = SigningKey::from_seed(&[seed; 32]).public();
        let encryption = EncryptionKey::derive(&[seed; 32]).public();
        format!(
            "signing_key = \"{}\"\nencryption_key = \"{}\"\n",
            public_key_text("ed25519", &signing),
            public_key_text("x25519", &encryption),
        )
    }

    /// A valid file with two partners and no optional `[node]` or `[delivery]` settings.
    fn base() -> String {
        format!(
            "[node]\nagency = \"US-BIS\"\ndata_dir = \"data\"\nlisten = \"127.0.0.1:7401\"\n\
             policy = \"policy.toml\"\n\n\
             [keys]\nsigning = \"keys/signing.pem\"\nencryption = \"/secure/encryption.pem\"\n\n\
             [tls]\ncert = \"tls/node.crt\"\nkey = \"tls/node.key\"\nca = \"/etc/ssl/ca.crt\"\n\n\
             [[partners]]\nagency = \"DE-BAFA\"\nendpoint = \"https://bafa.example:7402\"\n{}\
             ca = \"tls/bafa-ca.crt\"\ncert_fingerprint = \"sha256:{}\"\n\n\
             [[partners]]\nagency = \"JP-METI\"\nendpoint = \"https://127.0.0.1:7403\"\n{}",
            key_lines(1),
            "ab".repeat(32),
            key_lines(2),
        )
    }

    /// The base text with `old`, which must occur exactly once, replaced by `new`.
    fn edit(old: &str, new: &str) -> String {
        let text = base();
        assert_eq!(text.matches(old).count(), 1, "{old}");
        text.replacen(old, new, 1)
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new(FILE), text)
    }

    /// 1-based line of the first line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    /// Asserts that `text` is refused as invalid at `key`, on the line holding `at`;
    /// returns the error message.
    fn assert_invalid(text: &str, key: &str, at: &str) -> String {
        let err = parse(text).unwrap_err();
        let message = err.to_string();
        let ConfigError::Invalid {
            file,
            line,
            key: named,
            ..
        } = err
        else {
            panic!("expected an Invalid error, got: {message}");
        };
        assert_eq!(file, Path::new(FILE));
        assert_eq!(named, key, "{message}");
        assert_eq!(line, line_of(text, at), "{message}");
        assert!(message.contains(FILE) && message.contains(key), "{message}");
        message
    }

    /// Asserts that `text` is refused as a syntax error; returns the error message.
    fn assert_syntax(text: &str) -> String {
        let err = parse(text).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{message}");
        assert!(message.contains(FILE), "{message}");
        message
    }

    #[test]
    fn a_valid_file_parses_with_relative_paths_under_its_directory() {
        let config = parse(&base()).unwrap();
        assert_eq!(config.file, Path::new(FILE));
        assert_eq!(config.agency, "US-BIS");
        assert_eq!(config.listen, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(config.data_dir, Path::new("/etc/entente/data"));
        assert_eq!(
            config.signing_key,
            Path::new("/etc/entente/keys/signing.pem")
        );
        assert_eq!(config.encryption_key, Path::new("/secure/encryption.pem"));
        assert_eq!(config.tls_cert, Path::new("/etc/entente/tls/node.crt"));
        assert_eq!(config.tls_key, Path::new("/etc/entente/tls/node.key"));
        assert_eq!(config.tls_ca, Path::new("/etc/ssl/ca.crt"));
    }

    #[test]
    fn partners_are_read_in_file_order_with_their_keys() {
        let config = parse(&base()).unwrap();
        let agencies: Vec<&str> = config.partners.iter().map(|p| p.agency.as_str()).collect();
        assert_eq!(agencies, ["DE-BAFA", "JP-METI"]);
        let bafa = config.partner("DE-BAFA").unwrap();
        assert_eq!(bafa.endpoint, "https://bafa.example:7402");
        assert_eq!(bafa.keys.signing, SigningKey::from_seed(&[1; 32]).public());
        assert_eq!(
            bafa.keys.encryption,
            EncryptionKey::derive(&[1; 32]).public()
        );
        assert_eq!(
            bafa.ca.as_deref(),
            Some(Path::new("/etc/entente/tls/bafa-ca.crt"))
        );
        assert_eq!(bafa.cert_fingerprint, Some([0xab; 32]));
        let meti = config.partner("JP-METI").unwrap();
        assert!(meti.ca.is_none() && meti.cert_fingerprint.is_none());
        assert!(config.partner("FR-DGDDI").is_none());
    }

    #[test]
    fn omitted_settings_take_their_defaults() {
        let config = parse(&base()).unwrap();
        assert_eq!(config.max_message_bytes, 4 * 1024 * 1024);
        assert_eq!(config.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(config.delivery.batch_size, 128);
        assert_eq!(config.delivery.max_backoff_ms, 60_000);
        assert_eq!(config.delivery.initial_backoff_ms, 200);
        let text = base().split("[[partners]]").next().unwrap().to_owned();
        assert!(parse(&text).unwrap().partners.is_empty());
    }

    #[test]
    fn given_settings_replace_the_defaults() {
        let text = base()
            + "\n[delivery]\nbatch_size = 16\nmax_backoff_ms = 5000\ninitial_backoff_ms = 50\n";
        let text = text.replacen("[keys]", "max_message_bytes = 1024\n\n[keys]", 1);
        let config = parse(&text).unwrap();
        assert_eq!(config.max_message_bytes, 1024);
        assert_eq!(config.delivery.batch_size, 16);
        assert_eq!(config.delivery.max_backoff_ms, 5000);
        assert_eq!(config.delivery.initial_backoff_ms, 50);
    }

    #[test]
    fn the_time_limits_default_are_read_and_checked() {
        let config = parse(&base()).unwrap();
        assert_eq!(config.limits, Limits::default());
        let config =
            parse(&(base() + "\n[limits]\nmax_item_age_days = 7\nmax_clock_skew_secs = 0\n"))
                .unwrap();
        assert_eq!(config.limits.max_item_age_days, 7);
        assert_eq!(config.limits.max_clock_skew_secs, 0);
        for bad in [
            "max_item_age_days = 0",
            "max_clock_skew_secs = -1",
            "max_item_age = 3",
        ] {
            let err = parse(&(base() + "\n[limits]\n" + bad + "\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("limits") || err.contains("max_item_age"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_replay_window_and_the_clock_skew_bound_an_items_time() {
        let limits = Limits {
            max_item_age_days: 2,
            max_clock_skew_secs: 10,
            ..Limits::default()
        };
        let now = 1_800_000_000_000;
        let day = 86_400_000;
        assert!(limits.check_time(now, now).is_ok());
        assert!(limits.check_time(now - 2 * day, now).is_ok());
        assert!(limits.check_time(now + 10_000, now).is_ok());
        let old = limits.check_time(now - 2 * day - 1, now).unwrap_err();
        assert!(old.contains("outside the replay window of 2 days"), "{old}");
        let ahead = limits.check_time(now + 10_001, now).unwrap_err();
        assert!(ahead.contains("10 s ahead"), "{ahead}");
        assert!(limits.check_time(i64::MIN, now).is_err());
        assert!(limits.check_time(i64::MAX, now).is_err());
    }

    #[test]
    fn the_screening_threshold_defaults_and_is_read_and_checked() {
        let config = parse(&base()).unwrap();
        assert_eq!(config.screening.threshold, DEFAULT_SCREENING_THRESHOLD);
        let config = parse(&(base() + "\n[screening]\nthreshold = 0.95\n")).unwrap();
        assert_eq!(config.screening.threshold, 0.95);
        let config = parse(&(base() + "\n[screening]\nthreshold = 1\n")).unwrap();
        assert_eq!(config.screening.threshold, 1.0);
        for bad in ["0.2", "1.5", "-1", "nan"] {
            let text = base() + &format!("\n[screening]\nthreshold = {bad}\n");
            let message = assert_invalid(&text, "screening.threshold", "threshold =");
            assert!(message.contains("a score from 0.5 to 1"), "{message}");
        }
        assert_syntax(&(base() + "\n[screening]\nthreshold = \"high\"\n"));
        assert_syntax(&(base() + "\n[screening]\nthreshhold = 0.9\n"));
    }

    #[test]
    fn the_disk_reserve_defaults_and_is_read_and_checked() {
        let config = parse(&base()).unwrap();
        assert_eq!(config.limits.min_free_disk_mb, DEFAULT_MIN_FREE_DISK_MB);
        let config = parse(&(base() + "\n[limits]\nmin_free_disk_mb = 0\n")).unwrap();
        assert_eq!(config.limits.min_free_disk_mb, 0);
        for bad in ["-1", "2000000"] {
            let text = base() + &format!("\n[limits]\nmin_free_disk_mb = {bad}\n");
            let message = assert_invalid(&text, "limits.min_free_disk_mb", "min_free_disk_mb =");
            assert!(message.contains("from 0 to 1048576"), "{message}");
        }
    }

    #[test]
    fn the_recipient_limit_defaults_is_read_and_checked_and_bounds_releasable_to() {
        let config = parse(&base()).unwrap();
        assert_eq!(config.limits.max_recipients, DEFAULT_MAX_RECIPIENTS);
        let config = parse(&(base() + "\n[limits]\nmax_recipients = 2\n")).unwrap();
        let mut report = crate::bench::sample_report();
        let handling = report.handling.as_mut().unwrap();
        handling.releasable_to = vec!["AA-ONE".into(), "BB-TWO".into()];
        assert_eq!(config.limits.check_recipients(&report), Ok(()));
        report
            .handling
            .as_mut()
            .unwrap()
            .releasable_to
            .push("CC-THREE".into());
        let why = config.limits.check_recipients(&report).unwrap_err();
        assert!(
            why.contains("names 3 agencies, more than the 2 allowed"),
            "{why}"
        );
        for bad in ["0", "1001"] {
            let text = base() + &format!("\n[limits]\nmax_recipients = {bad}\n");
            let message = assert_invalid(&text, "limits.max_recipients", "max_recipients =");
            assert!(message.contains("from 1 to 1000"), "{message}");
        }
    }

    #[test]
    fn the_consultation_deadline_defaults_and_is_read_and_checked() {
        let config = parse(&base()).unwrap();
        assert_eq!(
            config.lifecycle.consultation_days,
            DEFAULT_CONSULTATION_DAYS
        );
        let config = parse(&(base() + "\n[lifecycle]\nconsultation_days = 14\n")).unwrap();
        assert_eq!(config.lifecycle.consultation_days, 14);
        for bad in ["0", "366", "-3"] {
            let text = base() + &format!("\n[lifecycle]\nconsultation_days = {bad}\n");
            let message =
                assert_invalid(&text, "lifecycle.consultation_days", "consultation_days =");
            assert!(message.contains("from 1 to 365"), "{message}");
        }
        assert_syntax(&(base() + "\n[lifecycle]\nconsultation_days = \"a month\"\n"));
        assert_syntax(&(base() + "\n[lifecycle]\nconsultation_day = 30\n"));
    }

    #[test]
    fn text_that_is_not_toml_is_a_syntax_error_with_its_line() {
        let message = assert_syntax("[node]\nagency = \"US-BIS\"\nthis is not toml\n");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name_and_line() {
        let text = edit(
            "listen = \"127.0.0.1:7401\"\n",
            "listen = \"127.0.0.1:7401\"\ncolour = 1\n",
        );
        let message = assert_syntax(&text);
        assert!(message.contains("unknown field `colour`"), "{message}");
        assert!(
            message.contains(&format!("line {}", line_of(&text, "colour"))),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_partner_key_is_refused_with_its_name() {
        let text = base() + "share_all = true\n";
        let message = assert_syntax(&text);
        assert!(message.contains("unknown field `share_all`"), "{message}");
    }

    #[test]
    fn a_missing_required_key_is_refused_with_its_name() {
        let message = assert_syntax(&edit("listen = \"127.0.0.1:7401\"\n", ""));
        assert!(message.contains("missing field `listen`"), "{message}");
        let meti_encryption = key_lines(2).lines().nth(1).unwrap().to_owned();
        let message = assert_syntax(&edit(&meti_encryption, ""));
        assert!(
            message.contains("missing field `encryption_key`"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_node_agency_id_is_refused_with_its_line() {
        let text = edit("agency = \"US-BIS\"", "agency = \"us-bis\"");
        let message = assert_invalid(&text, "node.agency", "us-bis");
        assert!(message.contains("agency id"), "{message}");
    }

    #[test]
    fn a_bad_partner_agency_id_is_refused_with_its_index_and_line() {
        let text = edit("agency = \"JP-METI\"", "agency = \"JP METI\"");
        assert_invalid(&text, "partners[1].agency", "JP METI");
    }

    #[test]
    fn a_listen_value_that_is_not_a_socket_address_is_refused() {
        for bad in ["localhost:7401", "127.0.0.1", "127.0.0.1:99999"] {
            let text = edit("\"127.0.0.1:7401\"", &format!("\"{bad}\""));
            assert_invalid(&text, "node.listen", bad);
        }
    }

    #[test]
    fn an_endpoint_needs_https_and_a_port() {
        for bad in [
            "http://bafa.example:7402",
            "bafa.example:7402",
            "https://bafa.example",
        ] {
            let text = edit("\"https://bafa.example:7402\"", &format!("\"{bad}\""));
            let message = assert_invalid(&text, "partners[0].endpoint", bad);
            assert!(message.contains("https URL with a port"), "{message}");
        }
    }

    #[test]
    fn an_endpoint_with_an_empty_host_or_port_is_refused() {
        for bad in ["https://bafa.example:", "https://:7402", "https://[::1]"] {
            let text = edit("\"https://bafa.example:7402\"", &format!("\"{bad}\""));
            assert_invalid(&text, "partners[0].endpoint", bad);
        }
    }

    #[test]
    fn a_malformed_signing_key_is_refused_without_repeating_it() {
        let good = public_key_text("ed25519", &SigningKey::from_seed(&[2; 32]).public());
        let body = good.strip_prefix("ed25519:").unwrap();
        let cases = [
            (format!("x25519:{body}"), "expected \"ed25519:BASE64\""),
            ("ed25519:not*base64*at*all".to_owned(), "not valid base64"),
            (
                "ed25519:AAAAAAAAAAAAAAAAAAAAAA==".to_owned(),
                "must be 32 bytes",
            ),
        ];
        for (bad, why) in cases {
            let text = edit(&good, &bad);
            let message = assert_invalid(&text, "partners[1].signing_key", &bad);
            assert!(message.contains(why), "{message}");
            assert!(!message.contains(&bad), "{message}");
            assert!(!format!("{:?}", parse(&text).unwrap_err()).contains(&bad));
        }
    }

    #[test]
    fn a_signing_key_given_as_an_encryption_key_is_refused() {
        let signing = public_key_text("ed25519", &SigningKey::from_seed(&[3; 32]).public());
        let encryption = public_key_text("x25519", &EncryptionKey::derive(&[1; 32]).public());
        let text = edit(&encryption, &signing);
        let message = assert_invalid(&text, "partners[0].encryption_key", &signing);
        assert!(
            message.contains("x25519:BASE64") && !message.contains(&signing),
            "{message}"
        );
    }

    #[test]
    fn a_syntax_error_does_not_repeat_a_malformed_key() {
        let good = public_key_text("ed25519", &SigningKey::from_seed(&[2; 32]).public());
        let body = good.strip_prefix("ed25519:").unwrap().to_owned();
        let message = assert_syntax(&edit(&format!("{good}\""), &good));
        assert!(!message.contains(&body), "{message}");
    }

    #[test]
    fn a_bad_cert_fingerprint_is_refused_with_its_line() {
        let good = format!("sha256:{}", "ab".repeat(32));
        let bad_cases = [
            "ab".repeat(32),
            format!("sha1:{}", "ab".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:{}", "zz".repeat(32)),
        ];
        for bad in bad_cases {
            let text = edit(&good, &bad);
            let message = assert_invalid(&text, "partners[0].cert_fingerprint", "cert_fingerprint");
            assert!(message.contains("64 hex digits"), "{message}");
        }
    }

    #[test]
    fn max_message_bytes_outside_its_range_is_refused() {
        for bad in [-1, 0, 1023, 256 * 1024 * 1024 + 1] {
            let line = format!("max_message_bytes = {bad}");
            let text = edit("\n\n[keys]", &format!("\n{line}\n\n[keys]"));
            let message = assert_invalid(&text, "node.max_message_bytes", &line);
            assert!(message.contains("from 1024 to 268435456"), "{message}");
        }
        for good in [1024, 256 * 1024 * 1024] {
            let text = edit(
                "\n\n[keys]",
                &format!("\nmax_message_bytes = {good}\n\n[keys]"),
            );
            assert_eq!(parse(&text).unwrap().max_message_bytes, good);
        }
    }

    #[test]
    fn delivery_settings_outside_their_ranges_are_refused() {
        let cases = [
            ("batch_size", 0),
            ("batch_size", 4097),
            ("max_backoff_ms", 9),
            ("initial_backoff_ms", 0),
        ];
        for (name, bad) in cases {
            let line = format!("{name} = {bad}");
            let text = base() + "\n[delivery]\n" + &line + "\n";
            assert_invalid(&text, &format!("delivery.{name}"), &line);
        }
    }

    /// Errors for a partner registered twice or equal to the node itself; the offending
    /// line carries the marker comment `# here`.
    fn agency_clash(replacement: &str) -> String {
        edit(
            "agency = \"JP-METI\"",
            &format!("agency = \"{replacement}\" # here"),
        )
    }

    #[test]
    fn a_partner_registered_twice_is_refused() {
        let message = parse(&agency_clash("DE-BAFA")).unwrap_err().to_string();
        assert!(
            message.contains(FILE) && message.contains("partners[1].agency"),
            "{message}"
        );
        assert!(message.contains("registered once"), "{message}");
    }

    #[test]
    fn a_partner_with_the_nodes_own_agency_id_is_refused() {
        let message = parse(&agency_clash("US-BIS")).unwrap_err().to_string();
        assert!(
            message.contains(FILE) && message.contains("partners[1].agency"),
            "{message}"
        );
        assert!(message.contains("other than node.agency"), "{message}");
    }

    #[test]
    fn an_agency_clash_is_reported_at_the_line_of_the_partner() {
        assert_invalid(&agency_clash("DE-BAFA"), "partners[1].agency", "# here");
        assert_invalid(&agency_clash("US-BIS"), "partners[1].agency", "# here");
    }

    #[test]
    fn a_partner_debug_form_shows_key_ids_not_keys() {
        let config = parse(&base()).unwrap();
        let shown = format!("{:?}", config.partners[0]);
        let signing = public_key_text("ed25519", &SigningKey::from_seed(&[1; 32]).public());
        assert!(shown.contains("DE-BAFA"), "{shown}");
        assert!(
            !shown.contains(signing.strip_prefix("ed25519:").unwrap()),
            "{shown}"
        );
    }

    #[test]
    fn fingerprints_parse_only_as_sha256_hex() {
        let hex = "0f".repeat(32);
        assert_eq!(
            parse_fingerprint(&format!("sha256:{hex}")),
            Some([0x0f; 32])
        );
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", hex.to_uppercase())),
            Some([0x0f; 32])
        );
        assert_eq!(parse_fingerprint(&hex), None);
        assert_eq!(parse_fingerprint("sha256:"), None);
    }
}
