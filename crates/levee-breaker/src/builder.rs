//! Building a breaker.

use std::sync::Arc;
use std::time::Duration;

use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener};

use crate::{BreakerEvent, BreakerSettings, CircuitBreaker, OpenWait, SlidingWindow};

/// Builds a [`CircuitBreaker`]; every setting starts at its [`BreakerSettings`] default and is
/// checked by [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use levee_breaker::{CircuitBreaker, OpenWait};
///
/// let breaker = CircuitBreaker::builder()
///     .name("payments")
///     .count_window(50)
///     .minimum_calls(10)
///     .failure_rate_threshold(40.0)
///     .slow_calls(Duration::from_secs(2), 80.0)
///     .backoff(OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(60)).jitter(0.1))
///     .half_open_calls(5)
///     .build()
///     .unwrap();
/// assert_eq!(breaker.name(), "payments");
///
/// let err = CircuitBreaker::builder().failure_rate_threshold(120.0).build().unwrap_err();
/// assert_eq!(err.setting, "failure_rate_threshold");
/// ```
#[must_use]
#[derive(Debug)]
pub struct CircuitBreakerBuilder<C: Clock = FastClock> {
    settings: BreakerSettings,
    clock: C,
    name: Arc<str>,
    hook: EventHook<BreakerEvent>,
}

/// The former name of [`CircuitBreakerBuilder`].
///
/// ```
/// #[allow(deprecated)]
/// use levee_breaker::{Builder, CircuitBreaker};
///
/// #[allow(deprecated)]
/// let builder: Builder = CircuitBreaker::builder(); // prefer `CircuitBreakerBuilder`
/// assert!(builder.build().is_ok());
/// ```
#[deprecated(
    since = "0.1.0",
    note = "renamed to `CircuitBreakerBuilder` (levee's `XBuilder` convention)"
)]
pub type Builder<C = FastClock> = CircuitBreakerBuilder<C>;

impl Default for CircuitBreakerBuilder<FastClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerBuilder<FastClock> {
    /// Default settings, [`FastClock`], no name, no listener.
    pub fn new() -> Self {
        Self {
            settings: BreakerSettings::default(),
            clock: FastClock,
            name: Arc::from(""),
            hook: EventHook::none(),
        }
    }
}

impl<C: Clock> CircuitBreakerBuilder<C> {
    /// Replaces all settings at once (e.g. read from a config file).
    pub fn settings(mut self, settings: BreakerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Names the breaker in events and metrics.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Judges the last `size` calls.
    pub fn count_window(mut self, size: u32) -> Self {
        self.settings.window = SlidingWindow::count(size);
        self
    }

    /// Judges the calls of the last `length`, in one-second buckets (see
    /// [`SlidingWindow::time`]).
    pub fn time_window(mut self, length: Duration) -> Self {
        self.settings.window = SlidingWindow::time(length);
        self
    }

    /// Judges the calls of the last `length`, in `buckets` buckets.
    pub fn time_window_buckets(mut self, length: Duration, buckets: u32) -> Self {
        self.settings.window = SlidingWindow::Time { length, buckets };
        self
    }

    /// Opens at this failure percentage, `0.0..=100.0`.
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.settings.failure_rate_threshold = percent;
        self
    }

    /// Tracks calls slower than `duration` and opens when `percent` of the window is slow.
    pub fn slow_calls(mut self, duration: Duration, percent: f64) -> Self {
        self.settings.slow_call_duration = Some(duration);
        self.settings.slow_call_rate_threshold = percent;
        self
    }

    /// Counts a slow success as a failure too.
    pub fn slow_success_is_failure(mut self, yes: bool) -> Self {
        self.settings.slow_success_is_failure = yes;
        self
    }

    /// No rate decision before the window holds `calls` calls.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.settings.minimum_calls = calls;
        self
    }

    /// Also opens as soon as the window holds `failures` failures.
    pub fn failure_count_threshold(mut self, failures: u32) -> Self {
        self.settings.failure_count_threshold = Some(failures);
        self
    }

    /// Stays open for `wait` every time.
    pub fn open_wait(mut self, wait: Duration) -> Self {
        self.settings.open_wait = OpenWait::fixed(wait);
        self
    }

    /// Stays open as `policy` says (e.g. exponential backoff across reopenings).
    pub fn backoff(mut self, policy: OpenWait) -> Self {
        self.settings.open_wait = policy;
        self
    }

    /// Lets `calls` trial calls through when half-open.
    pub fn half_open_calls(mut self, calls: u32) -> Self {
        self.settings.half_open_calls = calls;
        self
    }

    /// Reopens the circuit when it has been half-open for `wait` without a decision.
    pub fn half_open_max_wait(mut self, wait: Duration) -> Self {
        self.settings.half_open_max_wait = Some(wait);
        self
    }

    /// Adds a listener for state transitions.
    pub fn listener(mut self, listener: impl Listener<BreakerEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Replaces the listeners with `hook` (shared with other breakers, say).
    pub fn hook(mut self, hook: EventHook<BreakerEvent>) -> Self {
        self.hook = hook;
        self
    }

    /// Reads time from `clock` (a `ManualClock` in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder { settings: self.settings, clock, name: self.name, hook: self.hook }
    }

    /// Checks the settings and builds the breaker, closed.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting.
    pub fn build(self) -> Result<CircuitBreaker<C>, ConfigError> {
        self.settings.validate()?;
        Ok(CircuitBreaker::assemble(self.settings, self.clock, self.name, self.hook))
    }
}
