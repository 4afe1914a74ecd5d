//! Prometheus metrics: what the node counts, and the `/metrics` endpoint that serves them.
//!
//! The node records through the `metrics` facade wherever something happens; nothing is
//! kept unless a recorder is installed, which `entente serve` does when
//! `[node] metrics_listen` is set ([`serve`]). One process, one recorder: nodes started in
//! the same process (the demo, tests) share it. Labels are agency ids, list names, refusal
//! reasons and query kinds, never item content.

use std::{net::SocketAddr, time::Duration};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::store::Store;

/// Reports this node's analysts submitted.
pub const SUBMITTED: &str = "entente_items_submitted_total";
/// Envelopes sealed and queued, by `partner`.
pub const QUEUED: &str = "entente_envelopes_queued_total";
/// Items a partner confirmed with a verified receipt, by `partner`.
pub const DELIVERED: &str = "entente_items_delivered_total";
/// Items refused by the partner they were sent to, by `partner` and `reason`.
pub const REFUSED_BY_PARTNER: &str = "entente_items_refused_by_partner_total";
/// Items received from a partner and stored, by `partner`.
pub const RECEIVED: &str = "entente_items_received_total";
/// Envelopes from partners this node refused, by `partner` and `reason`.
pub const REFUSED: &str = "entente_envelopes_refused_total";
/// Connections and streams refused before any envelope, by `reason`.
pub const CONNECTIONS_REFUSED: &str = "entente_connections_refused_total";
/// Time from sending a batch to its verified receipt, by `partner`.
pub const DELIVERY_SECONDS: &str = "entente_delivery_seconds";
/// Envelopes waiting in a partner's outbox, by `partner`.
pub const OUTBOX_DEPTH: &str = "entente_outbox_depth";
/// The version of each watchlist held, by `list`.
pub const WATCHLIST_VERSION: &str = "entente_watchlist_version";
/// Queries on the control socket (lists, shows, screenings, audit searches), by `kind`.
pub const QUERIES: &str = "entente_queries_total";
/// Links made between items whose subjects match, or an item and a watchlist entry.
pub const CORRELATIONS: &str = "entente_correlations_total";
/// Calls refused on the local listener for want of a role, by `method`.
pub const ACCESS_DENIED: &str = "entente_local_access_denied_total";

/// How often the gauges read from the store are refreshed.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder for this process and serves `GET /metrics` on
/// `addr` (plain HTTP: bind it to a local or monitoring-only address).
pub fn serve(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full(DELIVERY_SECONDS.to_owned()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ],
        )?
        .install()?;
    describe();
    Ok(())
}

fn describe() {
    describe_counter!(SUBMITTED, "Reports this node's analysts submitted.");
    describe_counter!(QUEUED, "Envelopes sealed and queued for a partner.");
    describe_counter!(
        DELIVERED,
        "Items a partner confirmed with a verified receipt."
    );
    describe_counter!(
        REFUSED_BY_PARTNER,
        "Items the partner they were sent to refused."
    );
    describe_counter!(RECEIVED, "Items received from a partner and stored.");
    describe_counter!(REFUSED, "Envelopes from partners that this node refused.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections and streams refused before any envelope was read."
    );
    describe_histogram!(
        DELIVERY_SECONDS,
        Unit::Seconds,
        "Time from sending a batch to a partner to its verified receipt."
    );
    describe_gauge!(OUTBOX_DEPTH, "Envelopes waiting in a partner's outbox.");
    describe_gauge!(
        WATCHLIST_VERSION,
        "Version of each watchlist the node holds."
    );
    describe_counter!(
        QUERIES,
        "Queries on the control socket and the local listener."
    );
    describe_counter!(
        CORRELATIONS,
        "Links made between items whose subjects match, or an item and a watchlist entry."
    );
    describe_counter!(
        ACCESS_DENIED,
        "Calls on the local listener refused because the caller's role does not allow them."
    );
}

/// Sets the gauges that are read from the store: outbox depth per partner and the
/// version of each list.
pub fn refresh_gauges(store: &Store, partners: &[String]) {
    for partner in partners {
        let depth = store.outbox_len(partner);
        metrics::gauge!(OUTBOX_DEPTH, "partner" => partner.clone()).set(depth as f64);
    }
    if let Ok(lists) = store.lists() {
        for (list, meta) in lists {
            metrics::gauge!(WATCHLIST_VERSION, "list" => list).set(meta.version as f64);
        }
    }
}
