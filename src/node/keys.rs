//! The keys of a running node: its own across rotations, and those it holds for each
//! partner, replaceable without a restart.
//!
//! Every part of the node reads keys through [`Shared`] at the moment it uses them
//! (sealing, opening, receipts, TLS), so a rotation or a learned announcement takes effect
//! at the next item, receipt or handshake. [`Shared::keys_generation`] changes whenever
//! any key does, for the parts that cache a TLS client configuration.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use tracing::{info, warn};

use super::Shared;
use crate::{
    audit::{Action, Event},
    config::{Config, PartnerConfig},
    envelope,
    identity::{EncryptionKey, Identity, IdentityError, PublicKeys, SigningKey},
    keys::{self, AnnouncementError, Applied, NewKeys, OwnKeys, PartnerKeys, files},
    pb, setup,
    store::{Store, StoreError},
    tls::{self, CertSwitch, TlsError, TlsMaterial},
};

/// Why a rotation failed. Nothing was changed unless the message says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key was chosen.
    #[error("nothing to rotate: choose at least one of --signing, --encryption, --tls")]
    NothingChosen,
    /// A TLS rotation needs the CA that issues the node's certificate.
    #[error("rotating the TLS key needs the issuing CA: give --ca-cert FILE and --ca-key FILE")]
    NoCa,
    /// A key file could not be written or read.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The new TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The CA could not be read, or could not issue the certificate.
    #[error(transparent)]
    Setup(#[from] setup::SetupError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The new certificate does not name this node's agency.
    #[error("the new TLS certificate names agency {found}, but node.agency is {expected}")]
    CertificateAgency {
        /// Agency in the certificate.
        found: String,
        /// Agency in the config.
        expected: String,
    },
}

/// Why a partner's key announcement was not applied.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The announcement failed a check; it was recorded as refused.
    #[error(transparent)]
    Refused(#[from] AnnouncementError),
    /// The new keys could not be stored; nothing changed, the partner should retry.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which of its own keys a node is to rotate.
#[derive(Debug, Default)]
pub struct RotateRequest {
    /// A new signing key.
    pub signing: bool,
    /// A new encryption key.
    pub encryption: bool,
    /// A new TLS key and certificate, issued by this CA.
    pub tls: Option<setup::Ca>,
}

/// Signs audit checkpoints with whatever signing key the node holds now.
struct CheckpointSigner(RwLock<Arc<SigningKey>>);

impl crate::audit::Signer for CheckpointSigner {
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        read(&self.0).sign(message)
    }
}

/// The node's replaceable keys.
pub(super) struct KeyState {
    own: RwLock<Arc<OwnKeys>>,
    partners: RwLock<HashMap<String, Arc<PartnerKeys>>>,
    tls: RwLock<Arc<TlsMaterial>>,
    cert: Arc<CertSwitch>,
    signer: Arc<CheckpointSigner>,
    generation: AtomicU64,
    /// Serialises rotations and learned announcements, each a read, a check and a write.
    changing: tokio::sync::Mutex<()>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(value) => value.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut held) => *held = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

impl KeyState {
    /// Loads the node's keys and TLS material, finishing or dropping a rotation that was
    /// stopped half way ([`files::recover`]), and the partner keys learned before.
    pub(super) fn open(config: &Config, store: &Store) -> Result<Self, super::NodeError> {
        let newest = store.newest_pending_announcement()?;
        for file in files::recover(config, newest.as_ref())? {
            info!(file = %file.display(), "finished an interrupted key rotation");
        }
        let own = load_own(config)?;
        let tls = load_tls(config)?;
        let mut partners = HashMap::new();
        for partner in &config.partners {
            partners.insert(partner.agency.clone(), Arc::new(held_keys(store, partner)?));
        }
        let signer = CheckpointSigner(RwLock::new(Arc::new(own.identity.signing.duplicate())));
        Ok(Self {
            cert: Arc::new(CertSwitch::new(&tls)?),
            own: RwLock::new(Arc::new(own)),
            partners: RwLock::new(partners),
            tls: RwLock::new(Arc::new(tls)),
            signer: Arc::new(signer),
            generation: AtomicU64::new(0),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    /// The signer the store's audit checkpoints use.
    pub(super) fn checkpoint_signer(&self) -> Arc<dyn crate::audit::Signer> {
        self.signer.clone()
    }
}

/// The node's own keys as the key files hold them.
fn load_own(config: &Config) -> Result<OwnKeys, IdentityError> {
    Ok(OwnKeys {
        identity: Identity {
            agency: config.agency.clone(),
            signing: SigningKey::load(&config.signing_key)?,
            encryption: EncryptionKey::load(&config.encryption_key)?,
        },
        retired: files::load_retired_encryption(&config.encryption_key)?,
    })
}

fn load_tls(config: &Config) -> Result<TlsMaterial, TlsError> {
    let tls = TlsMaterial::load(&config.tls_cert, &config.tls_key, &config.tls_ca)?;
    Ok(match &config.tls_crl {
        Some(crl) => tls.with_crls(tls::load_crls(crl)?),
        None => tls,
    })
}

/// The keys held for `partner`: the learned ones when it announced any, else its config
/// entry's. A damaged learned record is reported, not silently replaced by the config's.
fn held_keys(store: &Store, partner: &PartnerConfig) -> Result<PartnerKeys, StoreError> {
    match store.learned_keys(&partner.agency)? {
        None => Ok(PartnerKeys::bootstrap(partner)),
        Some(record) => PartnerKeys::from_record(&record).ok_or(StoreError::Corrupt {
            op: "read learned keys",
            tree: "partner_keys",
        }),
    }
}

impl Shared {
    /// This node's keys now.
    pub fn own_keys(&self) -> Arc<OwnKeys> {
        read(&self.keys.own)
    }

    /// The keys held for `partner` now, if it is registered.
    pub fn partner_keys(&self, partner: &str) -> Option<Arc<PartnerKeys>> {
        match self.keys.partners.read() {
            Ok(map) => map.get(partner).cloned(),
            Err(poisoned) => poisoned.into_inner().get(partner).cloned(),
        }
    }

    /// The registered partner `agency`, with the keys and TLS pin held for it now in place
    /// of its config entry's.
    pub fn partner(&self, agency: &str) -> Option<PartnerConfig> {
        let mut partner = self.config.partner(agency)?.clone();
        if let Some(held) = self.partner_keys(agency) {
            partner.keys = held.current.clone();
            partner.cert_fingerprint = held.tls_pin;
        }
        Some(partner)
    }

    /// The public keys to seal for `partner` with: the ones held for it now.
    pub fn sealing_keys(&self, partner: &PartnerConfig) -> PublicKeys {
        self.partner_keys(&partner.agency)
            .map_or_else(|| partner.keys.clone(), |held| held.current.clone())
    }

    /// Changes whenever any key, own or a partner's, changes.
    pub fn keys_generation(&self) -> u64 {
        self.keys.generation.load(Ordering::Acquire)
    }

    /// This node's TLS material now.
    pub(crate) fn tls_material(&self) -> Arc<TlsMaterial> {
        read(&self.keys.tls)
    }

    /// What the peer listener presents at each handshake.
    pub(crate) fn cert_switch(&self) -> Arc<CertSwitch> {
        self.keys.cert.clone()
    }

    /// Opens an envelope from `sender` with the keys both sides hold now, retired ones
    /// included ([`envelope::open_rotated`]).
    pub fn open_envelope(
        &self,
        sender: &str,
        env: &pb::Envelope,
    ) -> Result<envelope::Opened, envelope::OpenError> {
        let held = self
            .partner_keys(sender)
            .ok_or(envelope::OpenError::UnknownKey)?;
        envelope::open_rotated(&self.own_keys(), &held, env)
    }

    /// Checks a receipt from `partner` with the keys held for it now.
    pub fn verify_receipt(
        &self,
        receipt: &pb::Receipt,
        partner: &str,
    ) -> Result<(), envelope::ReceiptError> {
        let held = self
            .partner_keys(partner)
            .ok_or(envelope::ReceiptError::UnknownKey)?;
        envelope::verify_receipt_rotated(receipt, partner, &held, &self.config.agency)
    }

    /// Applies `announcement` from the registered partner `agency`, whose TLS certificate
    /// has `peer_fingerprint`: after [`keys::apply`] accepts it, the new keys are stored
    /// and used from then on. Both outcomes are logged and recorded.
    pub async fn learn_keys(
        &self,
        agency: &str,
        peer_fingerprint: [u8; 32],
        announcement: &pb::KeyAnnouncement,
    ) -> Result<pb::KeyAnnouncementResult, LearnError> {
        let _one_at_a_time = self.keys.changing.lock().await;
        let held = self.partner_keys(agency).ok_or_else(|| {
            LearnError::Refused(AnnouncementError::WrongAgency {
                found: agency.to_owned(),
                expected: "a registered partner".into(),
            })
        })?;
        let next = match keys::apply(announcement, agency, peer_fingerprint, &held) {
            Ok(Applied::New(next)) => next,
            Ok(Applied::Already) => return Ok(result(&held, true)),
            Err(e) => {
                warn!(partner = %agency, reason = %e, "refused key announcement");
                self.record(Event::new(
                    Action::Refused,
                    agency,
                    "",
                    format!("key announcement: {e}"),
                ));
                return Err(e.into());
            }
        };
        self.store
            .put_learned_keys(agency, &next.to_record())
            .map_err(LearnError::Store)?;
        self.store.flush().await?;
        let detail = change_text(&held.current, &next.current, held.tls_pin != next.tls_pin);
        match self.keys.partners.write() {
            Ok(mut map) => map.insert(agency.to_owned(), Arc::new(next.clone())),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(agency.to_owned(), Arc::new(next.clone())),
        };
        self.keys.generation.fetch_add(1, Ordering::AcqRel);
        info!(partner = %agency, change = %detail, "learned new keys from a key announcement");
        self.record(Event::new(Action::KeyLearned, agency, "", detail));
        self.notifier(agency).notify_one();
        Ok(result(&next, false))
    }

    /// Rotates the keys `request` names. The new keys are staged beside the old files,
    /// what the old keys are still needed for is kept in `retired/`, an announcement for
    /// every partner is queued and made durable, and only then are the new files put in
    /// place and used. Safe while serving: each part picks up the new keys at its next use.
    pub async fn rotate_keys(
        &self,
        request: RotateRequest,
    ) -> Result<pb::RotateKeysResponse, KeyError> {
        if !request.signing && !request.encryption && request.tls.is_none() {
            return Err(KeyError::NothingChosen);
        }
        let _one_at_a_time = self.keys.changing.lock().await;
        let config = &self.config;
        let old = self.own_keys();
        let old_tls = self.tls_material();
        let newest = self.store.newest_pending_announcement()?;
        let now = crate::now_ms().max(newest.map_or(0, |a| a.issued_at_ms + 1));

        let signing = match request.signing {
            true => SigningKey::generate()?,
            false => old.identity.signing.duplicate(),
        };
        let encryption = request.encryption.then(EncryptionKey::generate);
        let tls_fingerprint = match &request.tls {
            Some(ca) => Some(self.stage_tls(ca, &old_tls)?),
            None => None,
        };
        if request.signing {
            signing.save(&files::staged(&config.signing_key))?;
        }
        if let Some(key) = &encryption {
            key.save(&files::staged(&config.encryption_key))?;
            files::retire_encryption(&config.encryption_key, &old.identity.encryption)?;
        }
        if request.signing {
            files::retire_signing(&config.signing_key, &old.identity.signing)?;
        }
        if request.tls.is_some() {
            files::retire_copy(&config.tls_cert, now)?;
            files::retire_copy(&config.tls_key, now)?;
        }

        let new = NewKeys {
            keys: PublicKeys {
                signing: signing.public(),
                encryption: encryption
                    .as_ref()
                    .map_or(old.identity.encryption.public(), EncryptionKey::public),
            },
            tls_fingerprint,
        };
        let announcement =
            keys::announce(&config.agency, now, &old.identity.signing, &signing, &new);
        let partners: Vec<String> = config.partners.iter().map(|p| p.agency.clone()).collect();
        self.store.queue_announcement(&partners, &announcement)?;
        self.store.flush().await?;
        // Delivery streams stop before their next batch and send the announcement first.
        self.keys.generation.fetch_add(1, Ordering::AcqRel);

        // From here the announcements are durable: a node stopped now installs the staged
        // files at its next start.
        if request.signing {
            // The entries so far are vouched for by the key that made them.
            self.store.checkpoint()?;
            files::install(&config.signing_key)?;
        }
        if encryption.is_some() {
            files::install(&config.encryption_key)?;
        }
        if request.tls.is_some() {
            files::install(&config.tls_key)?;
            files::install(&config.tls_cert)?;
        }
        self.swap_in(request.tls.is_some())?;

        let detail = format!(
            "{}; announced to {} partner(s)",
            change_text(
                &old.identity.public_keys(),
                &new.keys,
                tls_fingerprint.is_some()
            ),
            partners.len()
        );
        info!(change = %detail, "rotated own keys");
        self.record(Event::new(Action::KeyRotated, "local", "", detail));
        for partner in &partners {
            self.notifier(partner).notify_one();
        }
        let own = self.own_keys();
        let leaf = self
            .tls_material()
            .certs
            .first()
            .map(|c| tls::fingerprint(c));
        Ok(pb::RotateKeysResponse {
            signing_key_id: own.identity.signing.key_id().to_string(),
            encryption_key_id: own.identity.encryption.key_id().to_string(),
            tls_cert_fingerprint: leaf.map(hex::encode).unwrap_or_default(),
            announced_to: partners,
            retired_encryption_key_ids: own
                .retired
                .iter()
                .map(|k| k.key_id().to_string())
                .collect(),
            signing_key: crate::identity::public_key_text(
                "ed25519",
                &own.identity.signing.public(),
            ),
            encryption_key: crate::identity::public_key_text(
                "x25519",
                &own.identity.encryption.public(),
            ),
        })
    }

    /// Issues a new TLS certificate with the current one's names and stages it with its
    /// key; returns its fingerprint.
    fn stage_tls(&self, ca: &setup::Ca, current: &TlsMaterial) -> Result<[u8; 32], KeyError> {
        let config = &self.config;
        let leaf = current.certs.first().ok_or(TlsError::NoAgency)?;
        // `issue_node_cert` always adds these two; naming them again would repeat them.
        let hosts: Vec<String> = tls::host_names(leaf)?
            .into_iter()
            .filter(|h| h != "localhost" && h != "127.0.0.1")
            .collect();
        let issued = setup::issue_node_cert(ca, &config.agency, &hosts)?;
        files::stage(&config.tls_key, issued.key_pem.as_bytes())?;
        files::stage(&config.tls_cert, issued.cert_pem.as_bytes())?;
        let staged = TlsMaterial::load(
            &files::staged(&config.tls_cert),
            &files::staged(&config.tls_key),
            &config.tls_ca,
        )?;
        let found = staged.agency()?;
        if found != config.agency {
            return Err(KeyError::CertificateAgency {
                found,
                expected: config.agency.clone(),
            });
        }
        // A certificate that does not chain to the CA partners trust would cut the node
        // off: check it as a partner would before anything is replaced.
        tls::server_config(&staged, &[])?;
        let leaf = staged.certs.first().ok_or(TlsError::NoAgency)?;
        Ok(tls::fingerprint(leaf))
    }

    /// Reads the installed key files into the running node.
    fn swap_in(&self, tls_changed: bool) -> Result<(), KeyError> {
        let own = load_own(&self.config)?;
        write(
            &self.keys.signer.0,
            Arc::new(own.identity.signing.duplicate()),
        );
        write(&self.keys.own, Arc::new(own));
        if tls_changed {
            let material = load_tls(&self.config)?;
            self.keys.cert.replace(&material)?;
            write(&self.keys.tls, Arc::new(material));
        }
        self.keys.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

/// What an answer to an announcement says: the keys held after it.
fn result(held: &PartnerKeys, already_applied: bool) -> pb::KeyAnnouncementResult {
    pb::KeyAnnouncementResult {
        signing_key_id: held.current.signing_key_id().0.to_vec(),
        encryption_key_id: held.current.encryption_key_id().0.to_vec(),
        already_applied,
    }
}

/// A key change by key ids, for the log and the audit entry.
fn change_text(old: &PublicKeys, new: &PublicKeys, tls: bool) -> String {
    let part = |name: &str, a: crate::identity::KeyId, b: crate::identity::KeyId| {
        if a == b {
            format!("{name} {a} (unchanged)")
        } else {
            format!("{name} {a} -> {b}")
        }
    };
    format!(
        "{}; {}{}",
        part("signing", old.signing_key_id(), new.signing_key_id()),
        part(
            "encryption",
            old.encryption_key_id(),
            new.encryption_key_id()
        ),
        if tls { "; new TLS certificate" } else { "" }
    )
}
