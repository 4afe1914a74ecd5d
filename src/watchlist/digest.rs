//! The canonical form of an entry, the digest of a list, and the delta between two
//! versions of a list.
//!
//! # Digest
//!
//! A list's digest is the sum, modulo 2^256, of SHA-256 over each entry's canonical
//! protobuf encoding (prefixed by the label `entente/v1/watchlist-entry` and a zero byte),
//! each hash read as a big-endian 256-bit number. The empty list's digest is zero.
//!
//! Addition is used rather than hashing the sorted entries because:
//!
//! - it is independent of order, so nodes agree on a digest however they store entries;
//! - it is incremental: applying a delta subtracts the hash of each replaced or removed
//!   entry and adds the hash of each new one, O(changed entries) rather than a pass over a
//!   list of a million entries, and a node can check its copy after every delta.
//!
//! The digest lets two honest nodes see that they hold the same entries; it is not what
//! makes a list authentic (deltas are signed by the list's owner). Sums of hashes admit
//! collisions far cheaper than 2^128 work for someone who chooses the entries (Wagner's
//! generalised birthday attack), which only the owner can do, and the owner gains nothing
//! by making its own list ambiguous.
//!
//! # Canonical form
//!
//! [`canonical`] makes the same content encode to the same bytes: every text is trimmed;
//! empty values are dropped from repeated fields; aliases, countries, programs,
//! identifiers and addresses are sorted and de-duplicated; an alias equal to the name is
//! dropped; country codes are upper-cased. Address lines keep their order, which is part
//! of the address.

use std::collections::{BTreeMap, HashMap};

use prost::Message as _;
use ring::digest;

use crate::pb;

/// The label hashed before each entry, so that an entry hash is never confused with any
/// other SHA-256 in the protocol.
const ENTRY_LABEL: &[u8] = b"entente/v1/watchlist-entry\0";

/// `entry` in canonical form (see the module documentation).
pub fn canonical(mut entry: pb::WatchlistEntry) -> pb::WatchlistEntry {
    for text in [
        &mut entry.id,
        &mut entry.name,
        &mut entry.listed_on,
        &mut entry.remarks,
    ] {
        trim(text);
    }
    let name = entry.name.clone();
    tidy(&mut entry.aliases);
    entry.aliases.retain(|alias| *alias != name);
    tidy(&mut entry.programs);
    entry
        .countries
        .iter_mut()
        .for_each(|c| c.make_ascii_uppercase());
    tidy(&mut entry.countries);
    for id in &mut entry.identifiers {
        trim(&mut id.scheme);
        trim(&mut id.value);
        trim(&mut id.country);
        id.country.make_ascii_uppercase();
    }
    entry.identifiers.retain(|id| !id.value.is_empty());
    sort_dedup_by_key(&mut entry.identifiers, |id| {
        (id.scheme.clone(), id.value.clone(), id.country.clone())
    });
    for address in &mut entry.addresses {
        address.lines.iter_mut().for_each(trim);
        address.lines.retain(|line| !line.is_empty());
        trim(&mut address.city);
        trim(&mut address.postal_code);
        trim(&mut address.country);
        address.country.make_ascii_uppercase();
    }
    entry.addresses.retain(|a| *a != pb::Address::default());
    sort_dedup_by_key(&mut entry.addresses, |a| {
        (
            a.country.clone(),
            a.city.clone(),
            a.lines.clone(),
            a.postal_code.clone(),
        )
    });
    entry
}

/// Trims `text` in place, without reallocating when nothing changes.
fn trim(text: &mut String) {
    if text.trim().len() != text.len() {
        *text = text.trim().to_owned();
    }
}

/// Trims, drops empty values, sorts and de-duplicates.
fn tidy(values: &mut Vec<String>) {
    values.iter_mut().for_each(trim);
    values.retain(|v| !v.is_empty());
    values.sort_unstable();
    values.dedup();
}

/// Sorts by `key` and drops values equal to their predecessor.
fn sort_dedup_by_key<T: PartialEq, K: Ord>(values: &mut Vec<T>, key: impl Fn(&T) -> K) {
    values.sort_by_cached_key(key);
    values.dedup();
}

/// The bytes that are hashed and compared for an entry: its canonical protobuf encoding.
fn canonical_bytes(entry: &pb::WatchlistEntry) -> Vec<u8> {
    canonical(entry.clone()).encode_to_vec()
}

/// The digest of a list's entries: order-independent and updated entry by entry (see the
/// module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `entries`.
    pub fn of<'a>(entries: impl IntoIterator<Item = &'a pb::WatchlistEntry>) -> Self {
        let mut digest = Self::default();
        for entry in entries {
            digest.add(entry);
        }
        digest
    }

    /// Accounts for `entry` joining the list.
    pub fn add(&mut self, entry: &pb::WatchlistEntry) {
        let hash = entry_hash(entry);
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let sum = u16::from(self.0[i]) + u16::from(hash[i]) + carry;
            self.0[i] = sum as u8;
            carry = sum >> 8;
        }
    }

    /// Accounts for `entry` leaving the list (the exact entry that was added).
    pub fn remove(&mut self, entry: &pb::WatchlistEntry) {
        let hash = entry_hash(entry);
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut diff = i16::from(self.0[i]) - i16::from(hash[i]) - borrow;
            borrow = i16::from(diff < 0);
            if diff < 0 {
                diff += 256;
            }
            self.0[i] = diff as u8;
        }
    }

    /// The digest as 64 lower-case hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses a digest from 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        bytes.try_into().ok().map(Self)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.hex())
    }
}

/// SHA-256 of the label and the canonical encoding of `entry`.
fn entry_hash(entry: &pb::WatchlistEntry) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(ENTRY_LABEL);
    ctx.update(&canonical_bytes(entry));
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// What changed from one version of a list to the next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// Entries that are new or whose content changed, in canonical form, sorted by id.
    pub upserts: Vec<pb::WatchlistEntry>,
    /// Ids of the entries that are gone, sorted.
    pub removals: Vec<String>,
}

impl Delta {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }

    /// Applies the delta to `entries` (by id) and updates `digest` to match, touching only
    /// the entries that change.
    pub fn apply(&self, entries: &mut BTreeMap<String, pb::WatchlistEntry>, digest: &mut Digest) {
        for id in &self.removals {
            if let Some(old) = entries.remove(id) {
                digest.remove(&old);
            }
        }
        for entry in &self.upserts {
            if let Some(old) = entries.insert(entry.id.clone(), entry.clone()) {
                digest.remove(&old);
            }
            digest.add(entry);
        }
    }
}

/// What changed from `old` to `new`, by entry id: an entry of `new` that `old` lacks, or
/// whose canonical encoding differs, is an upsert; an id of `old` that `new` lacks is a
/// removal. When a slice holds an id twice, its last entry counts.
pub fn diff(old: &[pb::WatchlistEntry], new: &[pb::WatchlistEntry]) -> Delta {
    let old_bytes: HashMap<&str, Vec<u8>> = old
        .iter()
        .map(|e| (e.id.trim(), canonical_bytes(e)))
        .collect();
    let mut latest: BTreeMap<&str, &pb::WatchlistEntry> = BTreeMap::new();
    for entry in new {
        latest.insert(entry.id.trim(), entry);
    }
    let upserts = latest
        .values()
        .map(|entry| canonical((*entry).clone()))
        .filter(|entry| old_bytes.get(entry.id.as_str()) != Some(&entry.encode_to_vec()))
        .collect();
    let mut removals: Vec<String> = old_bytes
        .keys()
        .filter(|id| !latest.contains_key(*id))
        .map(|id| (*id).to_owned())
        .collect();
    removals.sort_unstable();
    Delta { upserts, removals }
}

#[cfg(test)]
mod tests;
