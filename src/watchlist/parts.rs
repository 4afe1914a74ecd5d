//! Splitting a watchlist delta into parts that each fit a message, and putting the parts
//! back together.
//!
//! Every part repeats the delta's list, versions, digest, entry count and publication
//! time, and carries a share of its upserts, then of its removals, in their order. The
//! split depends only on the delta and the limit, so two senders that split the same
//! delta under the same limit send the same parts.

use prost::Message as _;

use crate::pb;

/// Bytes a repeated field's tag and length prefix can add to an element's encoding.
const FIELD_OVERHEAD: usize = 11;

/// `delta` as parts whose encodings are at most `max_bytes` each (a single entry larger
/// than that still makes a part of its own). Each part is numbered; one part is the whole
/// delta, with `part` and `parts` set to 1.
pub fn split(delta: &pb::WatchlistDelta, max_bytes: usize) -> Vec<pb::WatchlistDelta> {
    let header = pb::WatchlistDelta {
        upserts: Vec::new(),
        removals: Vec::new(),
        part: u32::MAX,
        parts: u32::MAX,
        ..delta.clone()
    };
    let whole = pb::WatchlistDelta {
        part: 1,
        parts: 1,
        ..delta.clone()
    };
    if whole.encoded_len() <= max_bytes {
        return vec![whole];
    }
    let base = header.encoded_len();
    let mut parts = vec![header.clone()];
    let mut size = base;
    for entry in &delta.upserts {
        let len = entry.encoded_len() + FIELD_OVERHEAD;
        let part = next_part(&mut parts, &mut size, base, len, max_bytes, &header);
        part.upserts.push(entry.clone());
    }
    for id in &delta.removals {
        let len = id.len() + FIELD_OVERHEAD;
        let part = next_part(&mut parts, &mut size, base, len, max_bytes, &header);
        part.removals.push(id.clone());
    }
    let count = parts.len() as u32;
    for (i, part) in parts.iter_mut().enumerate() {
        part.part = i as u32 + 1;
        part.parts = count;
    }
    parts
}

/// The part that takes an element of `len` bytes: the current one, or a new one when it
/// would grow past `max_bytes` (a part always takes at least one element).
fn next_part<'a>(
    parts: &'a mut Vec<pb::WatchlistDelta>,
    size: &mut usize,
    base: usize,
    len: usize,
    max_bytes: usize,
    header: &pb::WatchlistDelta,
) -> &'a mut pb::WatchlistDelta {
    if *size > base && *size + len > max_bytes {
        parts.push(header.clone());
        *size = base;
    }
    *size += len;
    let last = parts.len() - 1;
    &mut parts[last]
}

/// The whole delta from its parts, given in any order, or `None` when a part is missing,
/// given twice, or disagrees with the others about the delta it belongs to.
pub fn assemble(mut parts: Vec<pb::WatchlistDelta>) -> Option<pb::WatchlistDelta> {
    parts.sort_by_key(|p| p.part);
    let first = parts.first()?.clone();
    let count = first.parts.max(1);
    if parts.len() != count as usize {
        return None;
    }
    let same = |p: &pb::WatchlistDelta| {
        p.list == first.list
            && p.from_version == first.from_version
            && p.to_version == first.to_version
            && p.digest == first.digest
            && p.entry_count == first.entry_count
            && p.parts == first.parts
            && p.published_at_ms == first.published_at_ms
    };
    let mut whole = pb::WatchlistDelta {
        upserts: Vec::new(),
        removals: Vec::new(),
        part: 1,
        parts: 1,
        ..first.clone()
    };
    for (i, part) in parts.into_iter().enumerate() {
        if part.part != i as u32 + 1 || !same(&part) {
            return None;
        }
        whole.upserts.extend(part.upserts);
        whole.removals.extend(part.removals);
    }
    Some(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(upserts: usize, removals: usize) -> pb::WatchlistDelta {
        pb::WatchlistDelta {
            list: "US-BIS/dpl".into(),
            from_version: 3,
            to_version: 4,
            upserts: (0..upserts)
                .map(|i| pb::WatchlistEntry {
                    id: format!("e{i:05}"),
                    name: format!("Name number {i} of a listed party"),
                    ..Default::default()
                })
                .collect(),
            removals: (0..removals).map(|i| format!("r{i:05}")).collect(),
            digest: vec![7; 32],
            entry_count: 99,
            part: 0,
            parts: 0,
            published_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_delta_that_fits_is_one_part() {
        let parts = split(&delta(3, 2), 10_000);
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].part, parts[0].parts), (1, 1));
        assert_eq!(parts[0].upserts.len(), 3);
    }

    #[test]
    fn every_part_fits_and_the_parts_assemble_to_the_delta() {
        let original = delta(500, 300);
        let parts = split(&original, 2_000);
        assert!(parts.len() > 10, "{}", parts.len());
        for p in &parts {
            assert!(p.encoded_len() <= 2_000, "{}", p.encoded_len());
            assert_eq!(p.parts as usize, parts.len());
        }
        let mut shuffled = parts.clone();
        shuffled.reverse();
        let whole = assemble(shuffled).unwrap();
        assert_eq!(whole.upserts, original.upserts);
        assert_eq!(whole.removals, original.removals);
        assert_eq!((whole.part, whole.parts), (1, 1));
    }

    #[test]
    fn a_missing_repeated_or_foreign_part_assembles_nothing() {
        let parts = split(&delta(200, 0), 2_000);
        let mut missing = parts.clone();
        missing.remove(1);
        assert!(assemble(missing).is_none());
        let mut repeated = parts.clone();
        repeated[1] = repeated[0].clone();
        assert!(assemble(repeated).is_none());
        let mut foreign = parts.clone();
        foreign[2].to_version = 9;
        assert!(assemble(foreign).is_none());
        assert!(assemble(Vec::new()).is_none());
    }

    #[test]
    fn the_split_is_deterministic() {
        let d = delta(300, 40);
        assert_eq!(split(&d, 3_000), split(&d, 3_000));
    }
}
