//! Settings as data: serde types (feature `serde`) that a service loads from a TOML or JSON
//! file and builds into policies, validated at build time.
//!
//! Durations are written as strings with a unit (`"250ms"`, `"2s"`, `"1.5s"`, `"5m"`,
//! `"1h"`, `"800us"`, `"100ns"`) or as a bare integer of milliseconds.

use std::time::Duration;

use levee_core::{Clock, ConfigError, FastClock};

use std::sync::Arc;

use levee_breaker::{BreakerSettings, CircuitBreaker};
use levee_limit::{Bulkhead, Quota, RateLimiter};

use crate::stage::{Layered, Leaf};
use crate::{
    Backoff, Breaker, BulkheadPolicy, Hedge, HedgeDelay, Limiter, Pipeline, Retry, RetryBudget,
    RetryBudgetBuilder, Timeout,
};

/// Settings of a [`Retry`].
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
        let mut b = Retry::builder().max_attempts(self.max_attempts).backoff(self.backoff);
        if let Some(budget) = self.budget {
            b = b.budget(Arc::new(budget.build_with_clock(clock)?));
        }
        if let Some(max) = self.max_retry_after {
            b = b.max_retry_after(max);
        }
        b.build()
    }
}

/// Settings of a [`Hedge`].
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

/// Settings of a rate limiter stage: `count` calls per `period`, bursts of `burst`.
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

/// Settings of a bulkhead stage.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct BulkheadSettings {
    /// Calls in flight at most.
    pub max_concurrent: usize,
    /// Calls that may wait for a permit (default 0: refuse at once).
    #[cfg_attr(feature = "serde", serde(default))]
    pub max_queue: usize,
    /// How long a queued call waits at most (default: until a permit frees up).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option", default))]
    pub max_wait: Option<Duration>,
}

impl BulkheadSettings {
    /// Builds the stage around a new bulkhead on the default clock.
    ///
    /// # Errors
    /// Any invalid bulkhead setting, named.
    pub fn build(&self) -> Result<BulkheadPolicy, ConfigError> {
        self.build_with_clock(FastClock)
    }

    /// Builds the stage around a new bulkhead whose queue waits on `clock`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_clock<C: Clock>(&self, clock: C) -> Result<BulkheadPolicy<C>, ConfigError> {
        let mut b = Bulkhead::builder(self.max_concurrent).max_queue(self.max_queue).clock(clock);
        if let Some(wait) = self.max_wait {
            b = b.max_wait(wait);
        }
        Ok(BulkheadPolicy::new(Arc::new(b.build()?)))
    }
}

/// A whole pipeline as data, in the standard order: overall timeout, retry, hedge, circuit
/// breaker, rate limiter, bulkhead, per-attempt timeout. Every part is optional.
///
/// The breaker's settings are levee-breaker's [`BreakerSettings`]. Each `build` makes new
/// stateful policies; reach them through [`StandardPipeline`]'s accessors.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use levee_policy::PipelineSettings;
///
/// let settings: PipelineSettings = toml::from_str(r#"
///     timeout = "2s"
///     attempt_timeout = "500ms"
///     [retry]
///     max_attempts = 3
///     backoff = { type = "exponential", base = "50ms", max = "1s", jitter = 0.2 }
///     budget = { ratio = 0.1, min_per_sec = 5, window = "10s" }
/// "#).unwrap();
/// let pipeline = settings.build().unwrap();
/// let out = pipeline.call(|_ctx| Ok::<_, ()>(1));
/// assert_eq!(out, Ok(1));
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct PipelineSettings {
    /// The overall deadline of a call, retries included.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub timeout: Option<Duration>,
    /// Retries.
    pub retry: Option<RetrySettings>,
    /// Hedging.
    pub hedge: Option<HedgeSettings>,
    /// A circuit breaker.
    pub breaker: Option<BreakerSettings>,
    /// A rate limiter.
    pub rate_limit: Option<RateLimitSettings>,
    /// A bulkhead.
    pub bulkhead: Option<BulkheadSettings>,
    /// The deadline of each attempt.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub attempt_timeout: Option<Duration>,
}

/// The stack [`PipelineSettings`] builds, its stateful policies on clock `C`.
pub type StandardStack<C = FastClock> = Layered<
    Option<Timeout>,
    Layered<
        Option<Retry>,
        Layered<
            Option<Hedge>,
            Layered<
                Option<Breaker<C>>,
                Layered<
                    Option<Limiter<RateLimiter<C>>>,
                    Layered<Option<BulkheadPolicy<C>>, Layered<Option<Timeout>, Leaf>>,
                >,
            >,
        >,
    >,
>;

/// The pipeline [`PipelineSettings`] builds, on clock `C`.
pub type StandardPipeline<C = FastClock> = Pipeline<StandardStack<C>, C>;

impl<C: Clock> StandardPipeline<C> {
    /// The retry budget, if the settings had one.
    #[must_use]
    pub fn retry_budget(&self) -> Option<&Arc<RetryBudget>> {
        self.stack().inner.policy.as_ref().and_then(Retry::budget)
    }

    /// The circuit breaker, if the settings had one.
    #[must_use]
    pub fn breaker(&self) -> Option<&Arc<CircuitBreaker<C>>> {
        self.stack().inner.inner.inner.policy.as_ref().map(Breaker::breaker)
    }

    /// The rate limiter, if the settings had one.
    #[must_use]
    pub fn rate_limiter(&self) -> Option<&Arc<RateLimiter<C>>> {
        self.stack().inner.inner.inner.inner.policy.as_ref().map(Limiter::limiter)
    }

    /// The bulkhead, if the settings had one.
    #[must_use]
    pub fn bulkhead(&self) -> Option<&Arc<Bulkhead<C>>> {
        self.stack().inner.inner.inner.inner.inner.policy.as_ref().map(BulkheadPolicy::bulkhead)
    }
}

impl PipelineSettings {
    /// Builds the pipeline on the default clock ([`FastClock`]).
    ///
    /// # Errors
    /// The first invalid setting, named (`timeout`, `max_attempts`, `backoff.base`...).
    pub fn build(&self) -> Result<StandardPipeline, ConfigError> {
        self.build_with_clock(FastClock)
    }

    /// Builds the pipeline on `clock`: its timeouts and delays, and its breaker, rate
    /// limiter, bulkhead and retry budget all read it (a
    /// [`ManualClock`](levee_core::ManualClock) in tests).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_clock<C: Clock + Clone>(
        &self,
        clock: C,
    ) -> Result<StandardPipeline<C>, ConfigError> {
        let timeout = |d: Option<Duration>, name: &'static str| {
            d.map(|d| Timeout::new(d).map_err(|e| ConfigError { setting: name, ..e })).transpose()
        };
        let stack = Layered {
            policy: timeout(self.timeout, "timeout")?,
            inner: Layered {
                policy: self
                    .retry
                    .as_ref()
                    .map(|r| r.build_with_clock(clock.clone()))
                    .transpose()?,
                inner: Layered {
                    policy: self.hedge.as_ref().map(HedgeSettings::build).transpose()?,
                    inner: Layered {
                        policy: self
                            .breaker
                            .clone()
                            .map(|s| {
                                s.build_with_clock(clock.clone()).map(|b| Breaker::new(Arc::new(b)))
                            })
                            .transpose()?,
                        inner: Layered {
                            policy: self
                                .rate_limit
                                .as_ref()
                                .map(|r| r.build_with_clock(clock.clone()))
                                .transpose()?,
                            inner: Layered {
                                policy: self
                                    .bulkhead
                                    .as_ref()
                                    .map(|b| b.build_with_clock(clock.clone()))
                                    .transpose()?,
                                inner: Layered {
                                    policy: timeout(self.attempt_timeout, "attempt_timeout")?,
                                    inner: Leaf,
                                },
                            },
                        },
                    },
                },
            },
        };
        Ok(Pipeline::from_stack(stack).with_clock(clock))
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
