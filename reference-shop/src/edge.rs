//! Edge protection, on levee-limit: a per-client GCRA rate limit ([`KeyedRateLimiter`], keyed
//! by API key or client address; idle keys reclaim themselves) and a global [`Bulkhead`] that
//! sheds load at once instead of queueing. Both take time from the shop clock.

use std::sync::Arc;
use std::time::Duration;

use levee::limit::{Bulkhead, KeyedRateLimiter, OwnedPermit, Quota};
use serde::Serialize;

use crate::clock::ShopClock;
use crate::config::EdgeConfig;

/// Counters of the edge, for `/admin/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EdgeStats {
    /// Requests refused by the per-client rate limit (429).
    pub rate_limited: u64,
    /// Requests shed by the bulkhead (503).
    pub shed: u64,
    /// Requests admitted by the bulkhead.
    pub admitted: u64,
    /// Requests being served now.
    pub in_flight: u64,
    /// Bulkhead size.
    pub max_concurrent: u64,
    /// Clients the rate limiter tracks.
    pub tracked_clients: u64,
}

/// Per-client rate limit plus global bulkhead.
#[derive(Debug)]
pub struct Edge {
    rate: KeyedRateLimiter<String, ShopClock>,
    bulkhead: Arc<Bulkhead<ShopClock>>,
}

impl Edge {
    /// An edge with `config`'s limits, timed by `clock`.
    ///
    /// # Errors
    /// A limit out of range, named.
    pub fn new(config: &EdgeConfig, clock: ShopClock) -> Result<Self, levee::core::ConfigError> {
        let interval =
            Duration::from_secs_f64(1.0 / config.rate_per_sec).max(Duration::from_nanos(1));
        let quota = Quota::every(interval).with_burst(config.burst);
        let rate = KeyedRateLimiter::builder(quota).clock(clock.clone()).build()?;
        let bulkhead = Bulkhead::builder(config.max_concurrent as usize)
            .count_acquired(true)
            .clock(clock)
            .build()?;
        Ok(Self { rate, bulkhead: Arc::new(bulkhead) })
    }

    /// Takes one request of `client` from its allowance.
    ///
    /// # Errors
    /// The client is over its rate: how long until its next request is allowed.
    pub fn check_rate(&self, client: &str) -> Result<(), Duration> {
        self.rate.check(client).map_err(|t| t.retry_after())
    }

    /// A bulkhead slot, or `None` when all are taken (the request is shed).
    #[must_use]
    pub fn try_enter(&self) -> Option<OwnedPermit<ShopClock>> {
        self.bulkhead.try_acquire_owned().ok()
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> EdgeStats {
        let rate = self.rate.stats();
        let bulkhead = self.bulkhead.stats();
        EdgeStats {
            rate_limited: rate.rejected,
            shed: bulkhead.rejected,
            admitted: bulkhead.acquired.unwrap_or(0),
            in_flight: bulkhead.in_flight as u64,
            max_concurrent: bulkhead.limit as u64,
            tracked_clients: rate.keys as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee::core::ManualClock;

    #[test]
    fn burst_then_rate() {
        let manual = ManualClock::new();
        let edge = Edge::new(
            &EdgeConfig { rate_per_sec: 10.0, burst: 3, max_concurrent: 1 },
            ShopClock::manual(manual.clone()),
        )
        .unwrap();
        for _ in 0..3 {
            edge.check_rate("a").unwrap();
        }
        let wait = edge.check_rate("a").unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        edge.check_rate("b").unwrap();
        manual.advance(Duration::from_millis(100));
        edge.check_rate("a").unwrap();
        let p = edge.try_enter().unwrap();
        assert!(edge.try_enter().is_none());
        drop(p);
        assert!(edge.try_enter().is_some());
        assert_eq!(edge.stats().shed, 1);
        assert_eq!(edge.stats().rate_limited, 1);
    }
}
