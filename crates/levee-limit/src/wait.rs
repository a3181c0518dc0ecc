//! Async waiting on an injected clock.
//!
//! A limiter's refusal says at which clock reading to come back ([`Throttled::earliest`]).
//! Waiting therefore sleeps *on the limiter's clock* ([`Clock::sleep_until`]): a real-time
//! clock on tokio's timer (or a parked thread in [`levee_core::block_on`]), a
//! [`ManualClock`](levee_core::ManualClock) until it is moved there (under paused tokio time
//! it follows tokio's auto-advance), so a waiting task wakes exactly when the limiter would
//! admit it.
//!
//! Waiting is cancellation-safe by construction: a waiting future holds nothing. It checks,
//! sleeps until the refusal's earliest time, and checks again; only a successful check (one
//! atomic step) takes capacity, so dropping the future at any await point consumes nothing.

use std::time::Duration;

use levee_core::{Clock, ConfigError, nanos};

use crate::error::Throttled;

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
    C: Clock,
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
}
