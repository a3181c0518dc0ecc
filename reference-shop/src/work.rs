//! A known capacity for load tests (`[work]`, off unless the section is present): every
//! product read (`GET /products/{id}`) holds one of `concurrency` slots for `service_time`
//! before it is answered, so the shop serves at most `concurrency / service_time` product
//! reads a second (4 slots of 20 ms: 200 a second) however fast the machine is. Reads over
//! that wait for a slot in arrival order, as they would in front of a saturated database
//! pool.
//!
//! The test of adaptive admission at twice the capacity (`tests/admission_load.rs`) sets it
//! far below what the machine can serve, so what it measures is the shop's queueing, not the
//! machine's speed. The wait is a real one (tokio's timer, paused in tests that pause time);
//! a slot is given back when the request is dropped, so a client that hangs up frees it.
//!
//! ```toml
//! [work]
//! concurrency = 4        # product reads served at once
//! service_time = "20ms"  # each holds its slot this long
//! ```

use std::sync::Arc;
use std::time::Duration;

use levee::core::ConfigError;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Longest service time: ten seconds (a load test's capacity, not a fault).
pub const MAX_SERVICE_TIME: Duration = Duration::from_secs(10);

/// Most slots: the size of a large connection pool.
pub const MAX_CONCURRENCY: usize = 10_000;

/// The `[work]` section: a fixed service time under a fixed concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkConfig {
    /// Product reads served at once (1..=10000).
    pub concurrency: usize,
    /// How long each holds its slot (above zero, at most 10 s).
    #[serde(with = "levee::core::serde_duration")]
    pub service_time: Duration,
}

impl WorkConfig {
    /// Product reads a second the shop serves at most: `concurrency / service_time`.
    #[must_use]
    pub fn capacity_per_s(&self) -> f64 {
        self.concurrency as f64 / self.service_time.as_secs_f64()
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// A concurrency of zero or over [`MAX_CONCURRENCY`], a service time of zero or over
    /// [`MAX_SERVICE_TIME`], named by the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConfigError::new("concurrency", "must lie in 1..=10000"));
        }
        if self.service_time.is_zero() || self.service_time > MAX_SERVICE_TIME {
            return Err(ConfigError::new("service_time", "must lie above zero and at most 10s"));
        }
        Ok(())
    }
}

/// The slots and the service time of `[work]`.
#[derive(Debug, Clone)]
pub struct Work {
    slots: Arc<Semaphore>,
    service_time: Duration,
}

impl Work {
    /// The work `config` describes.
    ///
    /// # Errors
    /// As [`WorkConfig::validate`].
    pub fn new(config: &WorkConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(config.concurrency)),
            service_time: config.service_time,
        })
    }

    /// Waits for a slot (first come, first served), then holds it for the service time.
    pub async fn serve(&self) {
        // The semaphore is never closed, so acquiring only fails if it were.
        let Ok(_slot) = self.slots.acquire().await else { return };
        tokio::time::sleep(self.service_time).await;
    }

    /// Slots free now.
    #[must_use]
    pub fn free(&self) -> usize {
        self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn work(concurrency: usize, ms: u64) -> Work {
        Work::new(&WorkConfig { concurrency, service_time: Duration::from_millis(ms) }).unwrap()
    }

    #[test]
    fn ranges_are_checked_and_capacity_follows() {
        let ok = WorkConfig { concurrency: 4, service_time: Duration::from_millis(20) };
        assert!((ok.capacity_per_s() - 200.0).abs() < 1e-9);
        for (bad, setting) in [
            (WorkConfig { concurrency: 0, ..ok }, "concurrency"),
            (WorkConfig { concurrency: MAX_CONCURRENCY + 1, ..ok }, "concurrency"),
            (WorkConfig { service_time: Duration::ZERO, ..ok }, "service_time"),
            (WorkConfig { service_time: Duration::from_secs(11), ..ok }, "service_time"),
        ] {
            assert_eq!(Work::new(&bad).unwrap_err().setting, setting, "{bad:?}");
        }
        let parsed: WorkConfig =
            toml::from_str("concurrency = 4\nservice_time = \"20ms\"\n").unwrap();
        assert_eq!(parsed, ok);
    }

    /// Ten reads on two slots of 20 ms: they finish in pairs, 20 ms apart, the last at
    /// 100 ms; two slots in use meanwhile, all free after.
    #[tokio::test(start_paused = true)]
    async fn reads_over_the_concurrency_wait_their_turn() {
        let work = work(2, 20);
        let start = Instant::now();
        let reads: Vec<_> = (0..10)
            .map(|_| {
                let work = work.clone();
                tokio::spawn(async move {
                    work.serve().await;
                    start.elapsed()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(work.free(), 0);
        let mut done = Vec::new();
        for r in reads {
            done.push(r.await.unwrap().as_millis());
        }
        done.sort_unstable();
        assert_eq!(done, [20, 20, 40, 40, 60, 60, 80, 80, 100, 100]);
        assert_eq!(work.free(), 2);
    }

    /// A read dropped while it waits or while it holds a slot gives nothing away for good.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_read_frees_its_slot() {
        let work = work(1, 1_000);
        let holder = tokio::spawn({
            let work = work.clone();
            async move { work.serve().await }
        });
        let waiter = tokio::spawn({
            let work = work.clone();
            async move { work.serve().await }
        });
        tokio::task::yield_now().await;
        assert_eq!(work.free(), 0);
        holder.abort();
        waiter.abort();
        let _ = (holder.await, waiter.await);
        assert_eq!(work.free(), 1);
        let start = Instant::now();
        work.serve().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
