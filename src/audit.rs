//! The append-only, hash-chained audit log, and its signed checkpoints.
//!
//! Every send, refusal, receipt, receive and query is recorded as an [`Entry`]. Each entry
//! carries the SHA-256 of the previous one, so a changed, removed or reordered entry breaks
//! the chain at that point. Entries name items by id and partners by agency id: they never
//! copy report content. What an analyst searched for or screened (names, free text) is
//! kept with its entry sealed under the node's data key ([`Entry::sealed`]): the node shows
//! it to its operators, a copy of the data directory does not.
//!
//! A hash chain alone proves nothing to someone who can write the store: they can rebuild
//! the whole chain, consistently, with entries of their choosing. So after every
//! [`CHECKPOINT_EVERY`] entries, and when the node stops cleanly, a checkpoint entry is
//! appended: it names the seq and hash of the entry before it and carries the node's
//! Ed25519 signature over them, under the label `entente/v1/audit-checkpoint`. The hash
//! covers the whole chain up to that entry, so a checkpoint vouches for everything before
//! it. [`verify`] checks every link and every checkpoint's signature, and refuses a run of
//! more than [`CHECKPOINT_EVERY`] entries without one, so a rebuilt log is detected unless
//! it is short enough to need no checkpoint at all.
//!
//! What checkpoints do not catch: entries appended after the last checkpoint, and a tail
//! cut off after it (the store's head record catches a cut only if it was not rewritten
//! as well). A log that ends in a checkpoint was last closed by a clean stop.

use std::fmt;

use prost::Message as _;
use ring::digest;

use crate::identity::{self, SigningKey};

/// A checkpoint follows at most this many other entries.
pub const CHECKPOINT_EVERY: u64 = 256;

/// Domain-separation label of a checkpoint signature (with its terminating zero byte).
const CHECKPOINT_LABEL: &[u8] = b"entente/v1/audit-checkpoint\0";

/// One audit record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// Position in the log, from 1.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// When it was recorded, milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    /// What happened, as one of the [`Action`] names.
    #[prost(string, tag = "3")]
    pub action: String,
    /// The partner or peer involved (agency id or network address).
    #[prost(string, tag = "4")]
    pub peer: String,
    /// The item involved, in ULID text form, if any.
    #[prost(string, tag = "5")]
    pub item_id: String,
    /// A short explanation: a reason or a count; never item content. For a checkpoint,
    /// the entry it covers: `entry SEQ sha256 HEX`.
    #[prost(string, tag = "6")]
    pub detail: String,
    /// SHA-256 of the previous entry (zeros for the first).
    #[prost(bytes = "vec", tag = "7")]
    pub prev_hash: Vec<u8>,
    /// For a checkpoint: the node's Ed25519 signature (see [`checkpoint_message`]); empty
    /// for every other entry.
    #[prost(bytes = "vec", tag = "8")]
    pub signature: Vec<u8>,
    /// For a query: the terms it was asked with (a name screened, a subject or text
    /// searched), sealed with the node's data key and bound to the audit tree and this
    /// entry's seq; empty for every other entry. The chain covers the sealed bytes, so
    /// `audit verify` needs no data key.
    #[prost(bytes = "vec", tag = "9")]
    pub sealed: Vec<u8>,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An analyst submitted an item to this node.
    Submitted,
    /// An item was sealed and queued for a partner.
    Queued,
    /// The sharing rule kept an item from a partner.
    Withheld,
    /// A partner's signed receipt confirmed delivery.
    Delivered,
    /// A partner refused an item this node sent.
    RefusedByPartner,
    /// An item from a partner was verified and stored.
    Received,
    /// An item or connection from a peer was refused.
    Refused,
    /// Someone on the node's host listed or read items.
    Query,
    /// The sharing policy was reloaded, or a reload was refused.
    PolicyChanged,
    /// This node published a new version of a watchlist it owns.
    ListPublished,
    /// A watchlist delta or snapshot from its owner was applied.
    ListApplied,
    /// A watchlist delta did not give the digest it carried; a snapshot is pulled.
    ListMismatch,
    /// A watchlist pull was asked of an owner, or served to a partner.
    ListPull,
    /// A signed checkpoint over the chain up to the entry before it.
    Checkpoint,
    /// This node rotated its own keys.
    KeyRotated,
    /// A partner's key announcement was verified and its new keys are used from now on.
    KeyLearned,
    /// A partner applied this node's key announcement.
    KeyAnnounced,
    /// Two items (or an item and a watchlist entry) were linked, or a link was closed.
    Correlated,
    /// A new version of an item was issued (own) or applied (received).
    Corrected,
    /// An item was withdrawn by its originator: here (own) or at the originator (received).
    Retracted,
    /// A consent request was made, received or answered.
    Consent,
    /// A denial consultation was opened, replied to or undercut.
    Consultation,
    /// A licence application was checked or decided.
    Licence,
}

impl Action {
    /// The name stored in the log.
    pub fn name(self) -> &'static str {
        match self {
            Action::Submitted => "submitted",
            Action::Queued => "queued",
            Action::Withheld => "withheld",
            Action::Delivered => "delivered",
            Action::RefusedByPartner => "refused-by-partner",
            Action::Received => "received",
            Action::Refused => "refused",
            Action::Query => "query",
            Action::PolicyChanged => "policy",
            Action::ListPublished => "list-published",
            Action::ListApplied => "list-applied",
            Action::ListMismatch => "list-mismatch",
            Action::ListPull => "list-pull",
            Action::Checkpoint => "checkpoint",
            Action::KeyRotated => "key-rotated",
            Action::KeyLearned => "key-learned",
            Action::KeyAnnounced => "key-announced",
            Action::Correlated => "correlated",
            Action::Corrected => "corrected",
            Action::Retracted => "retracted",
            Action::Consent => "consent",
            Action::Consultation => "consultation",
            Action::Licence => "licence",
        }
    }
}

/// An event to append, before it gets its place in the chain.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// Partner agency id or peer address.
    pub peer: String,
    /// Item id in text form, or empty.
    pub item_id: String,
    /// Reason or count; never content.
    pub detail: String,
    /// Query terms to keep sealed with the entry (see [`Entry::sealed`]); empty if none.
    pub sealed: String,
}

impl Event {
    /// A new event.
    pub fn new(action: Action, peer: &str, item_id: &str, detail: impl Into<String>) -> Self {
        Self {
            action,
            peer: peer.to_owned(),
            item_id: item_id.to_owned(),
            detail: detail.into(),
            sealed: String::new(),
        }
    }

    /// The same event with `terms` to keep sealed with its entry.
    pub fn with_sealed(mut self, terms: impl Into<String>) -> Self {
        self.sealed = terms.into();
        self
    }
}

/// SHA-256 of an entry's encoding: the link the next entry carries.
pub fn entry_hash(encoded: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, encoded).as_ref());
    out
}

/// Signs checkpoints. The node passes its signing key to the store behind this trait, so
/// the store appends checkpoints without ever handling key material itself.
pub trait Signer: Send + Sync {
    /// Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> [u8; 64];
}

impl Signer for SigningKey {
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        SigningKey::sign(self, message)
    }
}

/// What a checkpoint's signature covers: the label, the checkpoint's own seq and time,
/// then the seq and hash of the entry it covers (integers 8 bytes big-endian).
pub fn checkpoint_message(seq: u64, at_ms: i64, covers: u64, covers_hash: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKPOINT_LABEL.len() + 24 + covers_hash.len());
    out.extend_from_slice(CHECKPOINT_LABEL);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_ms.to_be_bytes());
    out.extend_from_slice(&covers.to_be_bytes());
    out.extend_from_slice(covers_hash);
    out
}

/// The checkpoint entry at `seq`, covering the entry before it, whose hash is `prev_hash`.
pub fn checkpoint(seq: u64, at_ms: i64, prev_hash: Vec<u8>, signer: &dyn Signer) -> Entry {
    let covers = seq - 1;
    let message = checkpoint_message(seq, at_ms, covers, &prev_hash);
    Entry {
        seq,
        at_ms,
        action: Action::Checkpoint.name().to_owned(),
        peer: "local".to_owned(),
        item_id: String::new(),
        detail: format!("entry {covers} sha256 {}", hex::encode(&prev_hash)),
        prev_hash,
        signature: signer.sign(&message).to_vec(),
        sealed: Vec::new(),
    }
}

/// The seq and hash a checkpoint's detail names, if it has the form `entry SEQ sha256 HEX`.
fn named_entry(detail: &str) -> Option<(u64, Vec<u8>)> {
    let rest = detail.strip_prefix("entry ")?;
    let (seq, hash) = rest.split_once(" sha256 ")?;
    Some((seq.parse().ok()?, hex::decode(hash).ok()?))
}

/// What is wrong with the first bad entry of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flaw {
    /// The entry could not be decoded.
    Undecodable,
    /// Another entry stands where this seq belongs: entries were removed or reordered.
    OutOfPlace {
        /// The seq the entry found there carries.
        found: u64,
    },
    /// The entry does not carry the hash of the entry before it: one of the two changed.
    BrokenLink,
    /// A checkpoint does not name the seq and hash of the entry before it.
    WrongHash,
    /// A checkpoint's signature does not verify with the node's signing key.
    BadSignature,
    /// More than [`CHECKPOINT_EVERY`] entries in a row without a checkpoint: the log was
    /// rebuilt without the key, or written by a process that could not sign.
    MissingCheckpoint,
    /// The store's head record names fewer or more entries than the log holds: the tail
    /// was cut off, or the head was changed.
    HeadMismatch {
        /// The number of entries the head record names.
        head_seq: u64,
    },
    /// The newest entry is not the one the store's head record names.
    HeadHash,
    /// The store's head record is missing or malformed although the log holds entries.
    NoHead,
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flaw::Undecodable => f.write_str("the entry cannot be decoded"),
            Flaw::OutOfPlace { found } => write!(
                f,
                "entry {found} stands here: entries were removed or reordered"
            ),
            Flaw::BrokenLink => f.write_str(
                "broken chain link: it does not carry the hash of the entry before it \
                 (one of the two was changed)",
            ),
            Flaw::WrongHash => f.write_str(
                "the checkpoint names a seq or hash other than those of the entry before it",
            ),
            Flaw::BadSignature => f.write_str(
                "bad checkpoint signature: it does not verify with this node's signing key",
            ),
            Flaw::MissingCheckpoint => write!(
                f,
                "missing checkpoint: more than {CHECKPOINT_EVERY} entries without a signed \
                 checkpoint (the log was rebuilt by someone without the key)"
            ),
            Flaw::HeadMismatch { head_seq } => write!(
                f,
                "the store's head record names {head_seq} entries: the newest entries were \
                 removed, or the head was changed"
            ),
            Flaw::HeadHash => f.write_str(
                "the newest entry is not the one the store's head record names (it was changed)",
            ),
            Flaw::NoHead => f.write_str("the store's head record is missing or malformed"),
        }
    }
}

/// The first bad entry of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    /// Its seq (the position at which the log stops being trustworthy).
    pub seq: u64,
    /// What is wrong.
    pub flaw: Flaw,
}

/// The outcome of checking a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked and found intact, before the first bad one if any.
    pub entries: u64,
    /// Checkpoints among them whose signature verified.
    pub checkpoints: u64,
    /// The seq of the last verified checkpoint, 0 if none.
    pub last_checkpoint: u64,
    /// The first bad entry, if any.
    pub first_bad: Option<BadEntry>,
}

impl Verification {
    /// True when no entry is bad.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }

    /// Intact entries after the last checkpoint: no signature vouches for them yet.
    pub fn uncovered(&self) -> u64 {
        self.entries - self.last_checkpoint
    }

    /// Names `seq` as the first bad entry and returns the outcome.
    pub fn stop_at(mut self, seq: u64, flaw: Flaw) -> Self {
        self.first_bad = Some(BadEntry { seq, flaw });
        self
    }
}

/// Checks a sequence of encoded entries, in log order, against the node's public signing
/// key: every entry must have the next seq and carry the hash of the one before; every
/// checkpoint must name the entry before it and verify with `key`; and no more than
/// [`CHECKPOINT_EVERY`] entries may follow one another without a checkpoint. Stops at the
/// first bad entry.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a [u8]>, key: &[u8; 32]) -> Verification {
    verify_any(entries, std::slice::from_ref(key))
}

/// Like [`verify`], for a node that rotated its signing key: each checkpoint must verify
/// with one of `keys` (the current key and those it retired).
pub fn verify_any<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
    keys: &[[u8; 32]],
) -> Verification {
    let mut done = Verification::default();
    let mut prev = [0u8; 32];
    let mut since_checkpoint = 0u64;
    for encoded in entries {
        let seq = done.entries + 1;
        let Ok(entry) = Entry::decode(encoded) else {
            return done.stop_at(seq, Flaw::Undecodable);
        };
        let is_checkpoint = entry.action == Action::Checkpoint.name();
        let flaw = if entry.seq != seq {
            Some(Flaw::OutOfPlace { found: entry.seq })
        } else if entry.prev_hash != prev {
            Some(Flaw::BrokenLink)
        } else if is_checkpoint {
            check_checkpoint(&entry, keys)
        } else if since_checkpoint == CHECKPOINT_EVERY {
            Some(Flaw::MissingCheckpoint)
        } else {
            None
        };
        if let Some(flaw) = flaw {
            return done.stop_at(seq, flaw);
        }
        done.entries = seq;
        if is_checkpoint {
            done.checkpoints += 1;
            done.last_checkpoint = seq;
            since_checkpoint = 0;
        } else {
            since_checkpoint += 1;
        }
        prev = entry_hash(encoded);
    }
    done
}

/// Checks a checkpoint whose link to the entry before it already holds.
fn check_checkpoint(entry: &Entry, keys: &[[u8; 32]]) -> Option<Flaw> {
    let covers = entry.seq - 1;
    match named_entry(&entry.detail) {
        Some((seq, hash)) if seq == covers && hash == entry.prev_hash => {}
        _ => return Some(Flaw::WrongHash),
    }
    let message = checkpoint_message(entry.seq, entry.at_ms, covers, &entry.prev_hash);
    if keys
        .iter()
        .any(|key| identity::verify_signature(key, &message, &entry.signature))
    {
        None
    } else {
        Some(Flaw::BadSignature)
    }
}

/// Which entries an audit search returns; an unset field matches every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only entries with this action name.
    pub action: Option<String>,
    /// Only entries naming this partner or peer.
    pub peer: Option<String>,
    /// Only entries naming this item id.
    pub item_id: Option<String>,
    /// Only entries recorded at or after this time, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Only entries recorded before this time, ms since the epoch.
    pub until_ms: Option<i64>,
}

impl Filter {
    /// True when `entry` passes every condition set.
    pub fn matches(&self, entry: &Entry) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        is(&self.action, &entry.action)
            && is(&self.peer, &entry.peer)
            && is(&self.item_id, &entry.item_id)
            && self.since_ms.is_none_or(|t| entry.at_ms >= t)
            && self.until_ms.is_none_or(|t| entry.at_ms < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[7; 32])
    }

    fn public() -> [u8; 32] {
        key().public()
    }

    fn entry(seq: u64, prev_hash: Vec<u8>) -> Entry {
        Entry {
            seq,
            at_ms: 1_700_000_000_000 + seq as i64,
            action: Action::Queued.name().to_owned(),
            peer: "DE-BAFA".to_owned(),
            item_id: format!("01J000000000000000000000{seq:02}"),
            detail: String::new(),
            prev_hash,
            signature: Vec::new(),
            sealed: Vec::new(),
        }
    }

    /// The encodings of a correctly linked chain of `n` entries, with a checkpoint signed
    /// by `signer` after every [`CHECKPOINT_EVERY`] others, as the store writes them.
    fn signed_chain(n: u64, signer: &dyn Signer) -> Vec<Vec<u8>> {
        let mut prev = vec![0u8; 32];
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut since = 0;
        while (out.len() as u64) < n {
            let seq = out.len() as u64 + 1;
            let next = if since == CHECKPOINT_EVERY {
                since = 0;
                checkpoint(seq, 1_700_000_000_000 + seq as i64, prev, signer)
            } else {
                since += 1;
                entry(seq, prev)
            };
            let encoded = next.encode_to_vec();
            prev = entry_hash(&encoded).to_vec();
            out.push(encoded);
        }
        out
    }

    fn chain(n: u64) -> Vec<Vec<u8>> {
        signed_chain(n, &key())
    }

    fn decoded(entries: &[Vec<u8>]) -> Vec<Entry> {
        entries
            .iter()
            .map(|e| Entry::decode(e.as_slice()).unwrap())
            .collect()
    }

    /// What someone without the key does after changing entries: renumbers and links the
    /// whole chain again so that every hash matches.
    fn relink(entries: Vec<Entry>) -> Vec<Vec<u8>> {
        let mut prev = vec![0u8; 32];
        let mut out = Vec::new();
        for (i, mut e) in entries.into_iter().enumerate() {
            e.seq = i as u64 + 1;
            e.prev_hash = prev;
            let encoded = e.encode_to_vec();
            prev = entry_hash(&encoded).to_vec();
            out.push(encoded);
        }
        out
    }

    /// The entry count, or the seq of the first bad entry.
    fn check(entries: &[Vec<u8>]) -> Result<u64, u64> {
        let done = verify(entries.iter().map(Vec::as_slice), &public());
        match done.first_bad {
            None => Ok(done.entries),
            Some(bad) => Err(bad.seq),
        }
    }

    fn flaw(entries: &[Vec<u8>]) -> Option<Flaw> {
        verify(entries.iter().map(Vec::as_slice), &public())
            .first_bad
            .map(|b| b.flaw)
    }

    #[test]
    fn an_empty_log_verifies_with_no_entries() {
        assert_eq!(check(&[]), Ok(0));
    }

    #[test]
    fn a_linked_chain_verifies_to_its_length() {
        assert_eq!(check(&chain(5)), Ok(5));
    }

    #[test]
    fn a_reordered_chain_fails_at_the_first_displaced_entry() {
        let mut entries = chain(5);
        entries.swap(1, 2);
        assert_eq!(check(&entries), Err(2));
        assert_eq!(flaw(&entries), Some(Flaw::OutOfPlace { found: 3 }));
    }

    #[test]
    fn a_removed_entry_is_reported_by_its_seq() {
        let mut entries = chain(5);
        entries.remove(2);
        assert_eq!(check(&entries), Err(3));
        let mut entries = chain(5);
        entries.remove(0);
        assert_eq!(check(&entries), Err(1));
    }

    #[test]
    fn a_changed_detail_breaks_the_link_to_the_next_entry() {
        let mut entries = chain(5);
        let mut changed = Entry::decode(entries[2].as_slice()).unwrap();
        changed.detail = "nothing happened".into();
        entries[2] = changed.encode_to_vec();
        assert_eq!(check(&entries), Err(4));
        assert_eq!(flaw(&entries), Some(Flaw::BrokenLink));
    }

    #[test]
    fn a_renumbered_entry_is_refused() {
        let mut entries = chain(3);
        let mut changed = Entry::decode(entries[1].as_slice()).unwrap();
        changed.seq = 7;
        entries[1] = changed.encode_to_vec();
        assert_eq!(check(&entries), Err(2));
    }

    #[test]
    fn a_chain_must_start_from_the_zero_hash() {
        let first = entry(1, vec![1; 32]).encode_to_vec();
        assert_eq!(check(&[first]), Err(1));
    }

    #[test]
    fn an_undecodable_entry_is_reported_by_its_position() {
        let mut entries = chain(3);
        entries[1] = vec![0xff, 0xff, 0xff];
        assert_eq!(check(&entries), Err(2));
        assert_eq!(flaw(&entries), Some(Flaw::Undecodable));
    }

    #[test]
    fn checkpoints_verify_and_are_counted() {
        let n = 2 * CHECKPOINT_EVERY + 10;
        let done = verify(chain(n).iter().map(Vec::as_slice), &public());
        assert_eq!(done.first_bad, None);
        assert_eq!(done.entries, n);
        assert_eq!(done.checkpoints, 2);
        assert_eq!(done.last_checkpoint, 2 * CHECKPOINT_EVERY + 2);
        assert_eq!(done.uncovered(), 8);
    }

    #[test]
    fn a_checkpoint_names_the_seq_and_hash_of_the_entry_before_it() {
        let entries = chain(CHECKPOINT_EVERY + 1);
        let last = Entry::decode(entries[CHECKPOINT_EVERY as usize].as_slice()).unwrap();
        let covered = entry_hash(&entries[CHECKPOINT_EVERY as usize - 1]);
        assert_eq!(last.action, "checkpoint");
        assert_eq!(
            last.detail,
            format!("entry {CHECKPOINT_EVERY} sha256 {}", hex::encode(covered))
        );
        assert_eq!(last.signature.len(), 64);
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_refused() {
        let other = SigningKey::from_seed(&[8; 32]);
        let entries = signed_chain(CHECKPOINT_EVERY + 5, &other);
        assert_eq!(check(&entries), Err(CHECKPOINT_EVERY + 1));
        assert_eq!(flaw(&entries), Some(Flaw::BadSignature));
    }

    #[test]
    fn a_checkpoint_with_a_changed_signature_is_refused() {
        let mut log = decoded(&chain(CHECKPOINT_EVERY + 5));
        log[CHECKPOINT_EVERY as usize].signature[0] ^= 1;
        let entries = relink(log);
        assert_eq!(check(&entries), Err(CHECKPOINT_EVERY + 1));
        assert_eq!(flaw(&entries), Some(Flaw::BadSignature));
    }

    #[test]
    fn a_checkpoint_naming_a_wrong_hash_is_refused() {
        let mut log = decoded(&chain(CHECKPOINT_EVERY + 5));
        let cp = &mut log[CHECKPOINT_EVERY as usize];
        cp.detail = format!("entry {CHECKPOINT_EVERY} sha256 {}", hex::encode([9u8; 32]));
        let entries = relink(log);
        assert_eq!(check(&entries), Err(CHECKPOINT_EVERY + 1));
        assert_eq!(flaw(&entries), Some(Flaw::WrongHash));
    }

    #[test]
    fn a_chain_rebuilt_consistently_without_the_key_is_detected() {
        // Change an early entry, then link everything again: every hash matches, but the
        // first checkpoint's signature no longer covers what is before it.
        let mut log = decoded(&chain(2 * CHECKPOINT_EVERY + 10));
        log[9].detail = "nothing happened".into();
        let kept_detail = relink(log.clone());
        assert_eq!(check(&kept_detail), Err(CHECKPOINT_EVERY + 1));
        assert_eq!(flaw(&kept_detail), Some(Flaw::WrongHash));
        // Rewriting the checkpoint to name the new hash does not help without the key.
        let mut prev = vec![0u8; 32];
        let mut forged = Vec::new();
        for (i, mut e) in log.clone().into_iter().enumerate() {
            e.seq = i as u64 + 1;
            if e.action == "checkpoint" {
                e.detail = format!("entry {} sha256 {}", i, hex::encode(&prev));
            }
            e.prev_hash = prev;
            let encoded = e.encode_to_vec();
            prev = entry_hash(&encoded).to_vec();
            forged.push(encoded);
        }
        assert_eq!(check(&forged), Err(CHECKPOINT_EVERY + 1));
        assert_eq!(flaw(&forged), Some(Flaw::BadSignature));
        // Nor does leaving the checkpoints out.
        log.retain(|e| e.action != "checkpoint");
        let unsigned = relink(log);
        assert_eq!(check(&unsigned), Err(CHECKPOINT_EVERY + 1));
        assert_eq!(flaw(&unsigned), Some(Flaw::MissingCheckpoint));
    }

    #[test]
    fn more_entries_in_a_row_than_a_checkpoint_covers_are_refused() {
        let log: Vec<Entry> = (1..=CHECKPOINT_EVERY + 1)
            .map(|seq| entry(seq, Vec::new()))
            .collect();
        let entries = relink(log);
        assert_eq!(
            check(&entries[..CHECKPOINT_EVERY as usize]),
            Ok(CHECKPOINT_EVERY)
        );
        assert_eq!(check(&entries), Err(CHECKPOINT_EVERY + 1));
    }

    #[test]
    fn a_removed_checkpoint_breaks_the_chain_at_its_place() {
        let mut entries = chain(CHECKPOINT_EVERY + 5);
        entries.remove(CHECKPOINT_EVERY as usize);
        assert_eq!(check(&entries), Err(CHECKPOINT_EVERY + 1));
    }

    #[test]
    fn the_checkpoint_message_starts_with_its_label() {
        let message = checkpoint_message(2, 3, 1, &[5; 32]);
        assert!(message.starts_with(b"entente/v1/audit-checkpoint\0"));
        assert_eq!(message.len(), CHECKPOINT_LABEL.len() + 24 + 32);
    }

    #[test]
    fn a_filter_matches_on_every_field_it_sets() {
        let e = entry(3, Vec::new());
        assert!(Filter::default().matches(&e));
        let by_peer = Filter {
            peer: Some("DE-BAFA".into()),
            action: Some("queued".into()),
            ..Filter::default()
        };
        assert!(by_peer.matches(&e));
        let other = Filter {
            peer: Some("JP-METI".into()),
            ..Filter::default()
        };
        assert!(!other.matches(&e));
        let window = |since, until| Filter {
            since_ms: Some(since),
            until_ms: Some(until),
            ..Filter::default()
        };
        assert!(window(e.at_ms, e.at_ms + 1).matches(&e));
        assert!(!window(e.at_ms + 1, e.at_ms + 2).matches(&e));
        assert!(!window(e.at_ms - 1, e.at_ms).matches(&e));
    }

    #[test]
    fn entry_hash_is_sha256_of_the_encoding() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(hex::encode(entry_hash(b"")), empty);
    }

    #[test]
    fn action_names_are_distinct() {
        let actions = [
            Action::Submitted,
            Action::Queued,
            Action::Withheld,
            Action::Delivered,
            Action::RefusedByPartner,
            Action::Received,
            Action::Refused,
            Action::Query,
            Action::PolicyChanged,
            Action::ListPublished,
            Action::ListApplied,
            Action::ListMismatch,
            Action::ListPull,
            Action::Checkpoint,
            Action::Correlated,
        ];
        let mut names: Vec<&str> = actions.iter().map(|a| a.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), actions.len());
    }
}
