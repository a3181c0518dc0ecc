//! A whole pipeline as data (features `breaker` and `limit`).

use std::sync::Arc;
use std::time::Duration;

use levee_breaker::{BreakerSettings, CircuitBreaker};
use levee_core::{Clock, ConfigError, FastClock};
use levee_limit::{Bulkhead, RateLimiter};

use super::{BulkheadSettings, HedgeSettings, RateLimitSettings, RetrySettings};
use crate::stage::{Layered, Leaf};
use crate::{Breaker, BulkheadPolicy, Hedge, Limiter, Pipeline, Retry, RetryBudget, Timeout};

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
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Leaf, PipelineSettings, StandardStack};
///
/// let settings = PipelineSettings { timeout: Some(Duration::from_secs(2)), ..Default::default() };
/// let pipeline = settings.build()?;
/// let stack: &StandardStack = pipeline.stack(); // every stage present, the unset ones `None`
/// assert_eq!(stack.policy.as_ref().map(|t| t.duration()), Some(Duration::from_secs(2)));
/// assert!(stack.inner.policy.is_none()); // no retry configured
/// # let _: &Leaf = &stack.inner.inner.inner.inner.inner.inner.inner;
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
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
///
/// ```
/// use levee_breaker::BreakerSettings;
/// use levee_policy::{Error, PipelineSettings, StandardPipeline};
///
/// let settings = PipelineSettings { breaker: Some(BreakerSettings::default()), ..Default::default() };
/// let pipeline: StandardPipeline = settings.build()?;
/// assert_eq!(pipeline.call(|_| Err::<u32, _>("500")), Err(Error::Operation("500")));
/// // The stateful policies the settings made are reachable: here the breaker counted the failure.
/// assert_eq!(pipeline.breaker().unwrap().metrics().failed_calls, 1);
/// assert!(pipeline.retry_budget().is_none());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
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
                                    .map(|b| {
                                        b.build_with_clock(clock.clone())
                                            .map(|b| BulkheadPolicy::new(Arc::new(b)))
                                    })
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
