//! Node-to-node exchange: the `PeerExchange` gRPC service and the per-partner delivery
//! tasks that feed it.
//!
//! Receiving, for each envelope of a batch: the TLS peer names a registered partner (checked
//! once per stream), the envelope's sender is that partner, [`envelope::open`] verifies and
//! decrypts it with that partner's registered keys, the report is validated, and only then
//! is it stored, deduplicated by (sender, item id). The batch is flushed to disk before the
//! signed receipt goes back. Every refusal is logged with the peer and the reason and
//! recorded in the audit log; a refusal stores nothing else.
//!
//! Sending: one task per partner reads that partner's outbox in order, streams batches
//! over one connection with a small window of batches in flight, verifies each receipt
//! against the partner's registered signing key, and only then marks items delivered.
//! While the partner is unreachable it retries with capped exponential backoff; each
//! partner has its own task, so one slow partner holds up no other.
//!
//! Key announcements (`keys`): after a rotation, each delivery task first sends its
//! partner the node's key announcement (the `AnnounceKeys` RPC), and delivers nothing
//! else until the partner has applied it; the server side checks an announcement against
//! the keys it holds for the TLS peer before using the new ones.
//!
//! Watchlists (`sync`): deltas arrive like reports and are applied strictly in order; a
//! gap or a digest mismatch makes the node pull from the list's owner (the `Pull` RPC),
//! and the owner answers pulls with freshly sealed deltas or a snapshot.

mod keys;
mod limits;
mod receive;
mod send;
mod sync;

pub use receive::PeerService;
pub use send::{DeliveryEvent, run_delivery};
pub use sync::run_pulls;
