//! The append-only, hash-chained audit log.
//!
//! Every send, refusal, receipt and receive is recorded as an [`Entry`]. Each entry carries
//! the SHA-256 of the previous one, so a changed, removed or reordered entry breaks the
//! chain at that point; [`verify_chain`] finds the first bad entry. Entries name items by
//! id and partners by agency id: they never copy report content.

use ring::digest;

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
    /// A short explanation: a reason or a count; never item content.
    #[prost(string, tag = "6")]
    pub detail: String,
    /// SHA-256 of the previous entry (zeros for the first).
    #[prost(bytes = "vec", tag = "7")]
    pub prev_hash: Vec<u8>,
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
}

impl Event {
    /// A new event.
    pub fn new(action: Action, peer: &str, item_id: &str, detail: impl Into<String>) -> Self {
        Self {
            action,
            peer: peer.to_owned(),
            item_id: item_id.to_owned(),
            detail: detail.into(),
        }
    }
}

/// SHA-256 of an entry's encoding: the link the next entry carries.
pub fn entry_hash(encoded: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, encoded).as_ref());
    out
}

/// Checks a sequence of encoded entries, in log order. Returns the sequence number of the
/// first entry that is missing, out of order, undecodable or not linked to its
/// predecessor.
pub fn verify_chain<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<u64, u64> {
    use prost::Message as _;
    let mut prev = [0u8; 32];
    let mut expected = 1u64;
    for encoded in entries {
        let entry = Entry::decode(encoded).map_err(|_| expected)?;
        if entry.seq != expected || entry.prev_hash != prev {
            return Err(expected);
        }
        prev = entry_hash(encoded);
        expected += 1;
    }
    Ok(expected - 1)
}
