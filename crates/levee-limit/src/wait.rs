//! Async waiting on an injected clock.
//!
//! A limiter's refusal says at which clock reading to come back ([`Throttled::earliest`]).
//! Waiting therefore needs a way to sleep *on the limiter's clock*: [`AsyncClock`]. The
//! production clocks sleep on tokio's timer; [`ManualClock`] sleeps on tokio's timer too and
//! then moves itself to the deadline, so a test that runs with `tokio::time::pause()` sees the
//! manual clock and tokio's paused clock advance together, and a waiting task wakes exactly
//! when the limiter would admit it.
//!
//! Waiting is cancellation-safe by construction: a waiting future holds nothing. It checks,
//! sleeps until the refusal's earliest time, and checks again; only a successful check (one
//! atomic step) takes capacity, so dropping the future at any await point consumes nothing.

use std::future::Future;
use std::time::Duration;

use levee_core::{Clock, CoarseClock, ConfigError, FastClock, ManualClock, SystemClock, nanos};

use crate::error::Throttled;

/// A [`Clock`] that async code can sleep on.
///
/// Implemented for levee-core's clocks. Sleeping uses tokio's timer, so it must happen inside
/// a tokio runtime with the time driver enabled (`tokio::time::sleep`'s requirement).
pub trait AsyncClock: Clock {
    /// Completes once this clock reads at least `deadline` (or as soon as possible after).
    fn sleep_until(&self, deadline: u64) -> impl Future<Output = ()> + Send + Sync + 'static;
}

fn tokio_sleep_for(nanos: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_nanos(nanos))
}

/// Clocks that follow real time sleep on tokio's timer for the time their reading still lacks.
/// (`CoarseClock` lags real time, so its sleep lasts at least until the deadline in real time;
/// a check that still finds its reading short of the deadline sleeps once more.)
macro_rules! real_time_async_clock {
    ($($clock:ty),+) => {$(
        impl AsyncClock for $clock {
            fn sleep_until(
                &self,
                deadline: u64,
            ) -> impl Future<Output = ()> + Send + Sync + 'static {
                tokio_sleep_for(deadline.saturating_sub(self.now()))
            }
        }
    )+};
}

real_time_async_clock!(FastClock, CoarseClock, SystemClock);

/// Sleeps on tokio's timer for the remaining time, then sets the manual clock to the
/// deadline (never backwards). Under `tokio::time::pause()` the two clocks thus move in step:
/// tokio auto-advances to the earliest sleeper, which moves the manual clock to its deadline.
impl AsyncClock for ManualClock {
    fn sleep_until(&self, deadline: u64) -> impl Future<Output = ()> + Send + Sync + 'static {
        let clock = self.clone();
        let sleep = tokio_sleep_for(deadline.saturating_sub(self.now()));
        async move {
            sleep.await;
            clock.set(deadline);
        }
    }
}

impl<C: AsyncClock + ?Sized> AsyncClock for levee_core::sync::Arc<C> {
    fn sleep_until(&self, deadline: u64) -> impl Future<Output = ()> + Send + Sync + 'static {
        (**self).sleep_until(deadline)
    }
}

/// Extra random delay added to each wait, so that callers refused together do not all come
/// back at the same instant (a thundering herd that would be refused again).
///
/// ```
/// use std::time::Duration;
/// use levee_limit::Jitter;
///
/// let jitter = Jitter::up_to(Duration::from_millis(10));
/// assert!(jitter.sample() <= Duration::from_millis(10));
/// assert_eq!(Jitter::NONE.sample(), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Jitter {
    min: Duration,
    max: Duration,
}

impl Jitter {
    /// No jitter.
    pub const NONE: Self = Self { min: Duration::ZERO, max: Duration::ZERO };

    /// A uniformly random extra delay in `0..=max`.
    #[must_use]
    pub const fn up_to(max: Duration) -> Self {
        Self { min: Duration::ZERO, max }
    }

    /// A uniformly random extra delay in `min..=max`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `jitter.min` when `min > max`.
    pub fn new(min: Duration, max: Duration) -> Result<Self, ConfigError> {
        if min > max {
            return Err(ConfigError::new("jitter.min", "must not exceed jitter.max"));
        }
        Ok(Self { min, max })
    }

    /// Draws one delay.
    #[must_use]
    pub fn sample(&self) -> Duration {
        Duration::from_nanos(self.sample_nanos())
    }

    pub(crate) fn sample_nanos(&self) -> u64 {
        let (min, max) = (nanos(self.min), nanos(self.max));
        if max <= min {
            return min;
        }
        min + levee_core::random::below(max - min + 1)
    }
}

/// Retries `attempt` until it succeeds, sleeping on `clock` until each refusal's earliest
/// time plus jitter. Returns the value and the time spent waiting (zero when the first attempt
/// succeeded). Holds nothing across an await, so dropping it consumes nothing.
pub(crate) async fn retry_until<C, T>(
    clock: &C,
    jitter: Jitter,
    mut attempt: impl FnMut() -> Result<T, Throttled>,
) -> (T, u64)
where
    C: AsyncClock,
{
    let mut started = None;
    loop {
        match attempt() {
            Ok(value) => {
                let waited = started.map_or(0, |s| clock.now().saturating_sub(s));
                return (value, waited);
            }
            Err(refusal) => {
                started.get_or_insert(refusal.decided_at());
                let deadline = refusal.earliest().saturating_add(jitter.sample_nanos());
                clock.sleep_until(deadline).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let j = Jitter::new(Duration::from_millis(2), Duration::from_millis(4)).unwrap();
        for _ in 0..1000 {
            let d = j.sample();
            assert!(d >= Duration::from_millis(2) && d <= Duration::from_millis(4), "{d:?}");
        }
        assert_eq!(
            Jitter::new(Duration::from_secs(2), Duration::from_secs(1)).unwrap_err().setting,
            "jitter.min"
        );
        assert_eq!(Jitter::default(), Jitter::NONE);
    }

    #[tokio::test(start_paused = true)]
    async fn manual_clock_follows_paused_tokio_time() {
        let clock = ManualClock::new();
        let start = tokio::time::Instant::now();
        clock.sleep_until(5_000_000).await;
        assert_eq!(clock.now(), 5_000_000);
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        // A deadline already passed returns at once and never moves the clock back.
        clock.sleep_until(1_000).await;
        assert_eq!(clock.now(), 5_000_000);
    }
}
