//! A known capacity for load tests (`[work]`, off unless the section is present): every
//! product read (`GET /products/{id}`) takes one of `concurrency` slots for `service_time`
//! before it is answered, so the shop serves at most `concurrency / service_time` product
//! reads a second (4 slots of 100 ms: 40 a second) however fast the machine is. Reads over
//! that wait for a slot in arrival order, as they would in front of a saturated database
//! pool.
//!
//! **Virtual time.** Each read is given its slot and its completion time when it arrives:
//! the slot that frees first, from `max(arrival, slot free)` for `service_time`; then it
//! sleeps until then. The slots are a simulated backend, so a late wake-up of the shop's own
//! process (a busy machine) delays that read's answer but not the next read's start: the
//! capacity stays exactly `concurrency / service_time` over any span, as a real database
//! would keep working while the shop's threads wait for a core. A read whose client hangs up
//! keeps its turn, as a query a database is already running does.
//!
//! The test of adaptive admission at twice the capacity (`tests/admission_load.rs`) sets it
//! far below what the machine can serve, so what it measures is the shop's queueing, not the
//! machine's speed. The wait is tokio's timer, paused in tests that pause time.
//!
//! ```toml
//! [work]
//! concurrency = 4          # product reads served at once
//! service_time = "100ms"   # each holds its slot this long
//! ```

use std::sync::Arc;
use std::time::Duration;

use levee::core::ConfigError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

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
    /// When each slot is free again; a lock held for a scan of `concurrency` instants.
    slots: Arc<Mutex<Vec<Instant>>>,
    service_time: Duration,
}

impl Work {
    /// The work `config` describes.
    ///
    /// # Errors
    /// As [`WorkConfig::validate`].
    pub fn new(config: &WorkConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let now = Instant::now();
        Ok(Self {
            slots: Arc::new(Mutex::new(vec![now; config.concurrency])),
            service_time: config.service_time,
        })
    }

    /// Takes the slot that frees first (module docs, "Virtual time") and waits until the
    /// read is done.
    pub async fn serve(&self) {
        let done = self.reserve(Instant::now());
        tokio::time::sleep_until(done).await;
    }

    /// The completion time of a read arriving at `now`, its slot reserved until then.
    fn reserve(&self, now: Instant) -> Instant {
        let mut slots = self.slots.lock();
        // `new` validated at least one slot.
        let Some(first) = slots.iter_mut().min() else { return now };
        let done = (*first).max(now) + self.service_time;
        *first = done;
        done
    }

    /// When every slot will be free, for reads already taken.
    #[must_use]
    pub fn idle_at(&self) -> Instant {
        self.slots.lock().iter().copied().max().unwrap_or_else(Instant::now)
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
    /// 100 ms, when every slot is idle again.
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
        assert_eq!(work.idle_at() - start, Duration::from_millis(100));
        let mut done = Vec::new();
        for r in reads {
            done.push(r.await.unwrap().as_millis());
        }
        done.sort_unstable();
        assert_eq!(done, [20, 20, 40, 40, 60, 60, 80, 80, 100, 100]);
        // Idle slots start the next read at its arrival.
        let again = Instant::now();
        work.serve().await;
        assert_eq!(again.elapsed(), Duration::from_millis(20));
    }

    /// A late wake-up does not cost capacity: a read that arrived while its slot was busy
    /// starts when the slot frees, whenever the shop gets round to it.
    #[test]
    fn the_slots_keep_their_own_time() {
        let work = work(1, 100);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(work.reserve(t0) - t0, ms(100));
        // Arrived at 10 ms, behind the first: done at 200 ms even if it is looked at late.
        assert_eq!(work.reserve(t0 + ms(10)) - t0, ms(200));
        assert_eq!(work.reserve(t0 + ms(150)) - t0, ms(300));
        // After an idle spell: from its arrival.
        assert_eq!(work.reserve(t0 + ms(1_000)) - t0, ms(1_100));
        assert_eq!(work.idle_at() - t0, ms(1_100));
    }
}
