//! What the Redis limiter counts.

use levee_breaker::State;
use levee_core::Counter;
use levee_limit::RateStats;

/// Counters (all `Relaxed`: statistics, read in snapshots).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) admitted: Counter,
    pub(crate) rejected: Counter,
    pub(crate) round_trips: Counter,
    pub(crate) failures: Counter,
    pub(crate) timeouts: Counter,
    pub(crate) degraded: Counter,
    pub(crate) lease_hits: Counter,
    pub(crate) cached_refusals: Counter,
    pub(crate) leased_cells: Counter,
    pub(crate) expired_cells: Counter,
}

impl Counters {
    /// Counts a decision of `cells` cells and passes it on.
    pub(crate) fn settle<T, E>(&self, cells: u32, result: Result<T, E>) -> Result<T, E> {
        match &result {
            Ok(_) => self.admitted.add(u64::from(cells)),
            Err(_) => self.rejected.incr(),
        }
        result
    }

    pub(crate) fn snapshot(&self, breaker: State) -> RedisStats {
        RedisStats {
            admitted: self.admitted.get(),
            rejected: self.rejected.get(),
            round_trips: self.round_trips.get(),
            failures: self.failures.get(),
            timeouts: self.timeouts.get(),
            degraded: self.degraded.get(),
            lease_hits: self.lease_hits.get(),
            cached_refusals: self.cached_refusals.get(),
            leased_cells: self.leased_cells.get(),
            expired_cells: self.expired_cells.get(),
            breaker,
        }
    }
}

/// A snapshot of a [`RedisRateLimiter`](crate::RedisRateLimiter)'s counters.
///
/// ```no_run
/// use levee_limit::Quota;
/// use levee_redis::RedisRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), levee_redis::BuildError> {
/// let limiter = RedisRateLimiter::builder(Quota::per_second(100)).connect("redis://127.0.0.1:6379/")?;
/// let _ = limiter.check("k").await;
/// let stats = limiter.stats();
/// println!("{} round trips, {} degraded, breaker {:?}", stats.round_trips, stats.degraded, stats.breaker);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RedisStats {
    /// Cells admitted, by whichever path (a `check_n(key, 5)` counts five).
    pub admitted: u64,
    /// Calls refused (one per refused call, whatever its size).
    pub rejected: u64,
    /// Script calls sent to Redis, answered or not.
    pub round_trips: u64,
    /// Script calls that failed: an error, a malformed reply, or a timeout.
    pub failures: u64,
    /// Of the failures, those that hit the timeout.
    pub timeouts: u64,
    /// Calls decided by the [`FailMode`](crate::FailMode) because Redis could not decide
    /// (breaker open, or the call failed).
    pub degraded: u64,
    /// Lease mode: calls admitted from leased cells, without a round trip.
    pub lease_hits: u64,
    /// Lease mode: calls refused without a round trip, because Redis had refused the key
    /// until a time not yet reached.
    pub cached_refusals: u64,
    /// Lease mode: cells granted by Redis (spent, held, or expired).
    pub leased_cells: u64,
    /// Lease mode: leased cells that expired unspent (admissions the quota allowed but no
    /// process made).
    pub expired_cells: u64,
    /// The state of the breaker around Redis.
    pub breaker: State,
}

impl RedisStats {
    /// The counts in levee-limit's form (admissions are always counted here).
    #[must_use]
    pub fn rate(&self) -> RateStats {
        RateStats { admitted: Some(self.admitted), rejected: self.rejected, waited: 0 }
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::Counters;
    use levee_breaker::State;

    #[test]
    fn stats_serialize_with_the_breaker_state() {
        let counters = Counters::default();
        counters.admitted.incr();
        let json = serde_json::to_value(counters.snapshot(State::Open)).unwrap();
        assert_eq!((json["admitted"].clone(), json["breaker"].clone()), (1.into(), "open".into()));
    }
}
