//! The settings of the limiter stages (feature `limit`).

use std::sync::Arc;
use std::time::Duration;

use levee_core::{Clock, ConfigError, FastClock};
use levee_limit::{Quota, RateLimiter};

#[cfg(doc)]
use crate::BulkheadPolicy;
use crate::Limiter;

/// Settings of a rate limiter stage: `count` calls per `period`, bursts of `burst`.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::settings::RateLimitSettings;
///
/// // 100 calls per second, bursts of 20, waiting up to 50 ms for a slot.
/// let settings = RateLimitSettings {
///     count: 100,
///     period: Duration::from_secs(1),
///     burst: Some(20),
///     max_wait: Some(Duration::from_millis(50)),
/// };
/// let stage = settings.build()?;
/// # let _ = stage;
/// assert!(RateLimitSettings { count: 0, ..settings }.build().is_err());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct RateLimitSettings {
    /// Calls per period.
    pub count: u32,
    /// The period (default 1 s).
    #[cfg_attr(
        feature = "serde",
        serde(with = "levee_core::serde_duration", default = "one_second")
    )]
    pub period: Duration,
    /// The largest burst (default `count`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub burst: Option<u32>,
    /// Wait up to this long for the limiter before refusing (default: refuse at once).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option", default))]
    pub max_wait: Option<Duration>,
}

#[cfg(feature = "serde")]
fn one_second() -> Duration {
    Duration::from_secs(1)
}

impl RateLimitSettings {
    /// Builds the stage around a new limiter on the default clock.
    ///
    /// # Errors
    /// Any invalid quota setting, named (`quota.count`, `quota.period`, `quota.burst`).
    pub fn build(&self) -> Result<Limiter, ConfigError> {
        self.build_with_clock(FastClock)
    }

    /// Builds the stage around a new limiter reading `clock`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_clock<C: Clock>(
        &self,
        clock: C,
    ) -> Result<Limiter<RateLimiter<C>>, ConfigError> {
        let mut quota = Quota::new(self.count, self.period);
        if let Some(burst) = self.burst {
            quota = quota.with_burst(burst);
        }
        let limiter = Limiter::new(Arc::new(RateLimiter::with_clock(quota, clock)?));
        Ok(limiter.max_wait(self.max_wait.unwrap_or_default()))
    }
}

/// Settings of a bulkhead stage: levee-limit's [`BulkheadSettings`], one type for the
/// bulkhead wherever it is used. Wrap what it builds in a [`BulkheadPolicy`]
/// (`BulkheadPolicy::new(Arc::new(settings.build()?))`).
pub use levee_limit::BulkheadSettings;
