//! Entente: the node an enforcement agency runs to share signed, encrypted intelligence
//! (suspicious-transaction reports, denial notifications, enforcement alerts) with its
//! partner agencies over mutual-TLS gRPC.
//!
//! The modules, from the wire inwards:
//!
//! - [`pb`]: code generated from `proto/` (the `entente.v1` schema).
//! - [`config`]: the node's TOML file, validated into typed values.
//! - [`identity`]: keys, key ids, and the partner registry.
//! - [`keys`]: key rotation: own and partner keys across rotations, key announcements.
//! - [`tls`]: X.509 material and the rustls configurations for mutual TLS.
//! - [`setup`]: generating CAs, node certificates, keys and config files (`init`, example).
//! - [`envelope`]: seal (sign, then encrypt to one recipient) and open (decrypt, verify).
//! - [`report`]: the JSON form of a report that analysts submit, and its validation.
//! - [`sharing`]: the report kinds by name.
//! - [`policy`]: per-partner sharing policies: outbound decisions, redaction, inbound kinds.
//! - [`screen`]: the in-memory screening index: names matched against every watchlist held.
//! - [`watchlist`]: watchlist names, importers for published list formats, digests, deltas.
//! - [`audit`]: the append-only, hash-chained audit log.
//! - [`metrics`]: the Prometheus metrics the node records, and their endpoint.
//! - [`store`]: the sled trees (items, outbox, deliveries, seen ids, audit).
//! - [`exchange`]: the peer gRPC service and the per-partner delivery tasks.
//! - [`node`]: a running node: listeners, delivery tasks and the control socket.
//! - [`control`]: the local control service the `entente` command talks to.
//! - [`view`]: text and JSON views of items for the command line.
//! - [`testbed`]: a federation of nodes in a scratch directory (bench, tests).
//! - [`bench`]: the end-to-end delivery benchmark behind `entente bench`.
//! - [`demo`]: the three-agency demonstration behind `entente demo`.

#![forbid(unsafe_code)]

pub mod audit;
pub mod bench;
pub mod config;
pub mod control;
pub mod demo;
pub mod envelope;
pub mod exchange;
pub mod identity;
pub mod keys;
pub mod lifecycle;
pub mod local;
pub mod metrics;
pub mod node;
pub mod policy;
pub mod report;
pub mod screen;
pub mod search;
pub mod setup;
pub mod sharing;
pub mod stix;
pub mod store;
pub mod testbed;
pub mod tls;
pub mod view;
pub mod watchlist;

/// Code generated from the `entente.v1` protobuf schema in `proto/`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("entente.v1");

    /// The encoded file descriptor set of the schema, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/entente_descriptor.bin"));
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The number of cores this process may use, read once: the standard library reads the
/// cgroup quota files on every call, which costs system calls on a hot path.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
