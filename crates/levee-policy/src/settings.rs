//! Settings as data: serde types (feature `serde`) that a service loads from a TOML or JSON
//! file and builds into policies, validated at build time.
//!
//! Durations are written as strings with a unit (`"250ms"`, `"2s"`, `"1.5s"`, `"5m"`,
//! `"1h"`, `"800us"`, `"100ns"`) or as a bare integer of milliseconds.

use std::time::Duration;

use levee_core::{Clock, ConfigError, FastClock};

use std::sync::Arc;

use crate::{Backoff, Hedge, HedgeDelay, Retry, RetryBudgetBuilder, RetryBuilder};

#[cfg(feature = "limit")]
mod limits;
#[cfg(all(feature = "breaker", feature = "limit"))]
mod stack;

#[cfg(feature = "limit")]
pub use limits::{BulkheadSettings, RateLimitSettings};
#[cfg(all(feature = "breaker", feature = "limit"))]
pub use stack::{PipelineSettings, StandardPipeline, StandardStack};

/// Settings of a [`Retry`].
///
/// ```
/// use levee_policy::settings::RetrySettings;
///
/// let settings = RetrySettings { max_attempts: 5, ..RetrySettings::default() };
/// let retry = settings.build()?;
/// assert_eq!(retry.max_attempts(), 5);
/// assert!(RetrySettings { max_attempts: 0, ..settings }.build().is_err());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RetrySettings {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The delay schedule.
    pub backoff: Backoff,
    /// A retry budget, if any.
    pub budget: Option<RetryBudgetBuilder>,
    /// Give up when a retry-after hint is longer than this.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub max_retry_after: Option<Duration>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self { max_attempts: 3, backoff: Backoff::default(), budget: None, max_retry_after: None }
    }
}

impl RetrySettings {
    /// Builds the policy (retrying every error), its budget on the default clock.
    ///
    /// # Errors
    /// Any invalid setting, named.
    pub fn build(&self) -> Result<Retry, ConfigError> {
        self.build_with_clock(FastClock)
    }

    /// Builds the policy, its retry budget (if any) reading `clock`: give it the clock of the
    /// pipeline it goes into.
    ///
    /// # Errors
    /// Any invalid setting, named.
    pub fn build_with_clock(&self, clock: impl Clock) -> Result<Retry, ConfigError> {
        self.builder_with_clock(clock)?.build()
    }

    /// A [`RetryBuilder`] set to these settings, its retry budget (if any) built on `clock`:
    /// for what a settings file does not hold, such as which errors to retry.
    ///
    /// ```
    /// use levee_core::ManualClock;
    /// use levee_policy::{Error, Pipeline, RetrySettings};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let clock = ManualClock::new();
    /// let retry = RetrySettings::default()
    ///     .builder_with_clock(clock.clone())
    ///     .unwrap()
    ///     .retry_on_error(|e: &Error<&str>| matches!(e, Error::Operation("busy")))
    ///     .build()
    ///     .unwrap();
    /// let pipeline = Pipeline::builder().retry(retry).clock(clock).build().unwrap();
    /// // "gone" is not worth retrying: one attempt.
    /// let calls = std::sync::atomic::AtomicU32::new(0);
    /// let out = pipeline
    ///     .execute(|_ctx| {
    ///         calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ///         async { Err::<(), _>("gone") }
    ///     })
    ///     .await;
    /// assert_eq!((out, calls.into_inner()), (Err(Error::Operation("gone")), 1));
    /// # }
    /// ```
    ///
    /// # Errors
    /// An invalid retry budget, named (the other settings are checked by
    /// [`RetryBuilder::build`]).
    pub fn builder_with_clock(&self, clock: impl Clock) -> Result<RetryBuilder, ConfigError> {
        let mut b = Retry::builder().max_attempts(self.max_attempts).backoff(self.backoff);
        if let Some(budget) = self.budget {
            b = b.budget(Arc::new(budget.build_with_clock(clock)?));
        }
        if let Some(max) = self.max_retry_after {
            b = b.max_retry_after(max);
        }
        Ok(b)
    }
}

/// Settings of a [`Hedge`].
///
/// ```
/// use std::time::Duration;
/// use levee_policy::HedgeDelay;
/// use levee_policy::settings::HedgeSettings;
///
/// let settings = HedgeSettings { max_hedges: 1, delay: HedgeDelay::Fixed { delay: Duration::from_millis(30) } };
/// let hedge = settings.build()?;
/// assert_eq!(hedge.current_delay(), Duration::from_millis(30));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct HedgeSettings {
    /// Extra attempts at most.
    pub max_hedges: u32,
    /// When to start each.
    pub delay: HedgeDelay,
}

impl HedgeSettings {
    /// Builds the policy (it takes time from the pipeline it runs in, so it needs no clock).
    ///
    /// # Errors
    /// Any invalid setting, named.
    pub fn build(&self) -> Result<Hedge, ConfigError> {
        Hedge::new(self.max_hedges, self.delay)
    }
}

/// Parses a duration written with a unit (`"250ms"`, `"2s"`, `"1.5s"`, `"5m"`, `"1h"`,
/// `"800us"`, `"100ns"`): levee-core's parser, re-exported here.
pub use levee_core::parse_duration;

/// Formats a duration the way [`parse_duration`] reads it: levee-core's formatter,
/// re-exported here.
pub use levee_core::format_duration;

/// serde for a `Duration` field: `"250ms"` strings or milliseconds (levee-core's
/// `serde_duration`, re-exported here; its `option` module serves `Option<Duration>` fields).
#[cfg(feature = "serde")]
pub use levee_core::serde_duration as duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("800us"), Ok(Duration::from_micros(800)));
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("-1s").is_err());
        for d in [Duration::from_millis(250), Duration::from_secs(3), Duration::from_nanos(7)] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[cfg(all(feature = "breaker", feature = "limit"))]
    #[test]
    fn invalid_settings_are_named() {
        let s = PipelineSettings { attempt_timeout: Some(Duration::ZERO), ..Default::default() };
        assert_eq!(s.build().unwrap_err().setting, "attempt_timeout");
        let s = PipelineSettings {
            retry: Some(RetrySettings { max_attempts: 0, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(s.build().unwrap_err().setting, "max_attempts");
    }
}
