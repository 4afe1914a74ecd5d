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

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn entry(seq: u64, prev_hash: Vec<u8>) -> Entry {
        Entry {
            seq,
            at_ms: 1_700_000_000_000 + seq as i64,
            action: Action::Queued.name().to_owned(),
            peer: "DE-BAFA".to_owned(),
            item_id: format!("01J000000000000000000000{seq:02}"),
            detail: String::new(),
            prev_hash,
        }
    }

    /// The encodings of a correctly linked chain of `n` entries.
    fn chain(n: u64) -> Vec<Vec<u8>> {
        let mut prev = vec![0u8; 32];
        let mut out = Vec::new();
        for seq in 1..=n {
            let encoded = entry(seq, prev).encode_to_vec();
            prev = entry_hash(&encoded).to_vec();
            out.push(encoded);
        }
        out
    }

    fn verify(entries: &[Vec<u8>]) -> Result<u64, u64> {
        verify_chain(entries.iter().map(Vec::as_slice))
    }

    #[test]
    fn an_empty_log_verifies_with_no_entries() {
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn a_linked_chain_verifies_to_its_length() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn a_reordered_chain_fails_at_the_first_displaced_entry() {
        let mut entries = chain(5);
        entries.swap(1, 2);
        assert_eq!(verify(&entries), Err(2));
    }

    #[test]
    fn a_removed_entry_is_reported_by_its_seq() {
        let mut entries = chain(5);
        entries.remove(2);
        assert_eq!(verify(&entries), Err(3));
        let mut entries = chain(5);
        entries.remove(0);
        assert_eq!(verify(&entries), Err(1));
    }

    #[test]
    fn a_changed_detail_breaks_the_link_to_the_next_entry() {
        let mut entries = chain(5);
        let mut changed = Entry::decode(entries[2].as_slice()).unwrap();
        changed.detail = "nothing happened".into();
        entries[2] = changed.encode_to_vec();
        assert_eq!(verify(&entries), Err(4));
    }

    #[test]
    fn a_renumbered_entry_is_refused() {
        let mut entries = chain(3);
        let mut changed = Entry::decode(entries[1].as_slice()).unwrap();
        changed.seq = 7;
        entries[1] = changed.encode_to_vec();
        assert_eq!(verify(&entries), Err(2));
    }

    #[test]
    fn a_chain_must_start_from_the_zero_hash() {
        let first = entry(1, vec![1; 32]).encode_to_vec();
        assert_eq!(verify(&[first]), Err(1));
    }

    #[test]
    fn an_undecodable_entry_is_reported_by_its_position() {
        let mut entries = chain(3);
        entries[1] = vec![0xff, 0xff, 0xff];
        assert_eq!(verify(&entries), Err(2));
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
        ];
        let mut names: Vec<&str> = actions.iter().map(|a| a.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), actions.len());
    }
}
