//! Per-partner limits on the peer listener: how many streams a partner may hold open, how
//! fast it may deliver envelopes, and how long a delivery stream may stay silent.
//!
//! Each partner has its own stream count and its own rate, so a partner that floods this
//! node uses up only its own share: the others' streams are neither refused nor slowed.
//! Envelopes over the rate are not refused; the stream is held back until the rate allows
//! the batch, which is the backpressure a well-behaved sender sees as a slower receiver.

use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// The limits in force for every registered partner.
pub(super) struct PeerLimits {
    per_partner: HashMap<String, PartnerLimits>,
    max_streams: u32,
    burst: NonZeroU32,
    idle: Duration,
}

struct PartnerLimits {
    streams: Arc<Semaphore>,
    rate: DefaultDirectRateLimiter,
}

impl PeerLimits {
    /// Limits for the partners named `agencies`, as `limits` sets them.
    pub(super) fn new<'a>(limits: &Limits, agencies: impl IntoIterator<Item = &'a str>) -> Self {
        let burst = NonZeroU32::new(limits.max_envelopes_per_sec).unwrap_or(NonZeroU32::MIN);
        let per_partner = agencies
            .into_iter()
            .map(|agency| {
                let limits = PartnerLimits {
                    streams: Arc::new(Semaphore::new(limits.max_streams_per_peer as usize)),
                    rate: RateLimiter::direct(Quota::per_second(burst)),
                };
                (agency.to_owned(), limits)
            })
            .collect();
        Self {
            per_partner,
            max_streams: limits.max_streams_per_peer,
            burst,
            idle: Duration::from_secs(u64::from(limits.idle_stream_secs)),
        }
    }

    /// A slot for one more stream from `partner`, held until the permit is dropped; `Err`
    /// says why there is none.
    pub(super) fn open_stream(&self, partner: &str) -> Result<OwnedSemaphorePermit, String> {
        let limits = self
            .per_partner
            .get(partner)
            .ok_or_else(|| format!("{partner} is not a registered partner"))?;
        limits.streams.clone().try_acquire_owned().map_err(|_| {
            format!(
                "{partner} already has {} streams open, the most this node allows \
                 (limits.max_streams_per_peer)",
                self.max_streams
            )
        })
    }

    /// Waits until `partner` may deliver `envelopes` more envelopes. Returns whether it had
    /// to wait.
    pub(super) async fn admit(&self, partner: &str, envelopes: usize) -> bool {
        let Some(limits) = self.per_partner.get(partner) else {
            return false;
        };
        let mut left = u32::try_from(envelopes).unwrap_or(u32::MAX);
        let mut waited = false;
        while let Some(n) = NonZeroU32::new(left.min(self.burst.get())) {
            if limits.rate.check_n(n).is_ok_and(|r| r.is_ok()) {
                left -= n.get();
                continue;
            }
            waited = true;
            // `n` is at most the burst, so the limiter can always grant it in time.
            let _ = limits.rate.until_n_ready(n).await;
            left -= n.get();
        }
        waited
    }

    /// How long a delivery stream may stay silent before it is closed.
    pub(super) fn idle(&self) -> Duration {
        self.idle
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failed unwrap is a failed test.
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_partner_has_its_own_stream_slots() {
        let limits = Limits {
            max_streams_per_peer: 2,
            ..Limits::default()
        };
        let peers = PeerLimits::new(&limits, ["AA-ONE", "BB-TWO"]);
        let first = peers.open_stream("AA-ONE").unwrap();
        let _second = peers.open_stream("AA-ONE").unwrap();
        let refused = peers.open_stream("AA-ONE").unwrap_err();
        assert!(refused.contains("already has 2 streams open"), "{refused}");
        assert!(
            peers.open_stream("BB-TWO").is_ok(),
            "another partner is not affected"
        );
        drop(first);
        assert!(
            peers.open_stream("AA-ONE").is_ok(),
            "a closed stream frees its slot"
        );
        assert!(peers.open_stream("ZZ-NONE").is_err());
    }

    #[tokio::test]
    async fn envelopes_over_the_rate_wait_and_other_partners_do_not() {
        let limits = Limits {
            max_envelopes_per_sec: 100,
            ..Limits::default()
        };
        let peers = PeerLimits::new(&limits, ["AA-ONE", "BB-TWO"]);
        assert!(
            !peers.admit("AA-ONE", 100).await,
            "one second's worth at once"
        );
        let started = std::time::Instant::now();
        assert!(peers.admit("AA-ONE", 150).await, "more must wait");
        assert!(started.elapsed() >= Duration::from_millis(1400));
        assert!(!peers.admit("BB-TWO", 100).await, "BB-TWO has its own rate");
    }
}
