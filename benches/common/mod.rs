//! What the screening benchmarks share: percentiles, the process's memory, thread CPU
//! time, and the plain brute-force Jaro-Winkler scan that the index is compared with.

#![allow(dead_code)]

use std::time::Duration;

use entente::pb;
use entente::screen::normalise;

/// The `p` quantile of `times` (nearest rank).
pub fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

/// A `/proc/self/status` figure in KiB (0 where there is none).
fn status_kib(key: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of this process now (VmRSS), in KiB.
pub fn rss_kib() -> usize {
    status_kib("VmRSS:")
}

/// Peak resident memory of this process so far (VmHWM), in KiB.
pub fn hwm_kib() -> usize {
    status_kib("VmHWM:")
}

/// Processor time used by this thread so far.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// An environment variable as a number, or `default`.
pub fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The brute-force Jaro-Winkler scan: every name (primary and aliases) of every entry,
/// normalised as the index normalises names (case, accents, transliteration,
/// punctuation, legal forms), its tokens sorted so that word order does not matter, and
/// compared whole with the query, normalised the same way, by `strsim::jaro_winkler`.
/// An entry scores its best name. Preparing the names is not timed; a search reads
/// them all.
#[derive(Debug, Default)]
pub struct PlainScan {
    /// Entry ids, by entry number.
    ids: Vec<String>,
    /// Prepared names and their entry numbers, entry by entry.
    names: Vec<(Box<str>, u32)>,
}

impl PlainScan {
    /// Adds `entry`, known as `id` (for example "list\0entry id").
    pub fn add(&mut self, id: String, entry: &pb::WatchlistEntry) {
        let number = self.ids.len() as u32;
        self.ids.push(id);
        for name in std::iter::once(&entry.name).chain(&entry.aliases) {
            let key = plain_key(name);
            if !key.is_empty() {
                self.names.push((key.into(), number));
            }
        }
    }

    /// Number of names held.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The ids of the `limit` entries most similar to `query`, best first.
    pub fn search(&self, query: &str, limit: usize) -> Vec<String> {
        let query = plain_key(query);
        let mut best: Vec<(f64, u32)> = Vec::with_capacity(limit + 1);
        let mut keep = |score: f64, entry: u32| {
            if best.len() < limit || best.last().is_some_and(|l| score > l.0) {
                let at = best.partition_point(|b| b.0 >= score);
                best.insert(at, (score, entry));
                best.truncate(limit);
            }
        };
        let (mut current, mut score) = (u32::MAX, 0.0f64);
        for (name, entry) in &self.names {
            let s = strsim::jaro_winkler(&query, name);
            if *entry == current {
                score = score.max(s);
            } else {
                if current != u32::MAX {
                    keep(score, current);
                }
                (current, score) = (*entry, s);
            }
        }
        if current != u32::MAX {
            keep(score, current);
        }
        best.into_iter()
            .map(|(_, e)| self.ids[e as usize].clone())
            .collect()
    }
}

/// A name as the plain scan compares it: normalised tokens, sorted, joined by spaces.
fn plain_key(name: &str) -> String {
    let mut tokens = normalise(name);
    tokens.sort_unstable();
    tokens.join(" ")
}
