//! Edge protection: a per-client rate limit and a global bulkhead that sheds load.
//!
//! STAND-IN until `levee-limit` lands on main: a tiny GCRA over a locked map and a tokio
//! semaphore. The shop uses only [`Edge::check_rate`], [`Edge::try_enter`] and
//! [`Edge::stats`], so the swap changes this file alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee_core::Clock;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::ShopClock;
use crate::config::EdgeConfig;

/// Counters of the edge, for `/admin/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EdgeStats {
    /// Requests refused by the per-client rate limit (429).
    pub rate_limited: u64,
    /// Requests shed by the bulkhead (503).
    pub shed: u64,
    /// Requests admitted.
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
    clock: ShopClock,
    emission_ns: u64,
    tolerance_ns: u64,
    tats: Mutex<HashMap<String, u64>>,
    permits: Arc<Semaphore>,
    max_concurrent: u64,
    rate_limited: AtomicU64,
    shed: AtomicU64,
    admitted: AtomicU64,
}

/// Clients tracked before idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

impl Edge {
    /// An edge with `config`'s limits, timed by `clock`.
    #[must_use]
    pub fn new(config: &EdgeConfig, clock: ShopClock) -> Self {
        let emission_ns = (1e9 / config.rate_per_sec).max(1.0) as u64;
        Self {
            clock,
            emission_ns,
            tolerance_ns: emission_ns * u64::from(config.burst.saturating_sub(1)),
            tats: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(config.max_concurrent as usize)),
            max_concurrent: u64::from(config.max_concurrent),
            rate_limited: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
        }
    }

    /// Takes one request of `client` from its allowance.
    ///
    /// # Errors
    /// The client is over its rate: how long until its next request is allowed.
    pub fn check_rate(&self, client: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut tats = self.tats.lock();
        if tats.len() >= MAX_TRACKED {
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.get(client).copied().unwrap_or(now).max(now);
        if tat - now > self.tolerance_ns {
            drop(tats);
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(Duration::from_nanos(tat - now - self.tolerance_ns));
        }
        tats.insert(client.to_owned(), tat + self.emission_ns);
        Ok(())
    }

    /// A bulkhead slot, or `None` when all are taken (the request is shed).
    #[must_use]
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            self.admitted.fetch_add(1, Ordering::Relaxed);
            Some(p)
        } else {
            self.shed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> EdgeStats {
        EdgeStats {
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
            admitted: self.admitted.load(Ordering::Relaxed),
            in_flight: self.max_concurrent - self.permits.available_permits() as u64,
            max_concurrent: self.max_concurrent,
            tracked_clients: self.tats.lock().len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee_core::ManualClock;

    #[test]
    fn burst_then_rate() {
        let manual = ManualClock::new();
        let edge = Edge::new(
            &EdgeConfig { rate_per_sec: 10.0, burst: 3, max_concurrent: 1 },
            ShopClock::manual(manual.clone()),
        );
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
        assert_eq!(edge.stats().shed, 1);
        assert_eq!(edge.stats().rate_limited, 1);
    }
}
