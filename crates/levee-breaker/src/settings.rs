//! A breaker's settings: plain data, validated once, (de)serialisable with the `serde` feature.

use std::time::Duration;

use levee_core::{Clock, ConfigError, FastClock, nanos};

use crate::state::{MAX_ATTEMPTS, MAX_TRIALS};

/// The largest count-based window, in calls (2^17). Each call takes four bytes.
pub const MAX_COUNT_WINDOW: u32 = 1 << 17;
/// The most buckets a time-based window may have.
pub const MAX_TIME_BUCKETS: u32 = 1024;
/// The longest open wait, fixed or after backoff: 24 days.
pub const MAX_OPEN_WAIT: Duration = Duration::from_secs(24 * 24 * 3600);
/// The most trial calls a half-open breaker may let through.
pub const MAX_HALF_OPEN_CALLS: u32 = MAX_TRIALS;

/// Which recent calls the closed state judges.
///
/// ```
/// use std::time::Duration;
/// use levee_breaker::{BreakerSettings, SlidingWindow};
///
/// let last_100_calls = BreakerSettings { window: SlidingWindow::count(100), ..Default::default() };
/// let last_minute = BreakerSettings {
///     window: SlidingWindow::Time { length: Duration::from_secs(60), buckets: 12 },
///     ..Default::default()
/// };
/// assert!(last_100_calls.build().is_ok() && last_minute.build().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case", deny_unknown_fields))]
pub enum SlidingWindow {
    /// The last `size` calls.
    Count {
        /// Calls in the window, `1..=MAX_COUNT_WINDOW`.
        size: u32,
    },
    /// The calls of the last `length`, kept in `buckets` equal slices of time; the oldest
    /// slice drops out as a whole when a new one starts.
    ///
    /// Successes are counted per thread in the current slice (one 128-byte stripe per slot of
    /// a process-wide pool of `4 x CPUs` thread numbers, at least 8), so threads calling
    /// through one breaker do not contend. On the default clock ([`FastClock`]) the slice of a
    /// success that cannot change the verdict is read from [`CoarseClock`], whose shared
    /// updater thread the first such breaker starts; verdicts always use the exact clock.
    ///
    /// [`FastClock`]: levee_core::FastClock
    /// [`CoarseClock`]: levee_core::CoarseClock
    Time {
        /// How far back the window reaches.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        length: Duration,
        /// Slices of the window, `1..=MAX_TIME_BUCKETS`, each at least a millisecond long.
        buckets: u32,
    },
}

impl SlidingWindow {
    /// The last `size` calls.
    #[must_use]
    pub const fn count(size: u32) -> Self {
        Self::Count { size }
    }

    /// The calls of the last `length`, in one-second buckets (ten buckets when `length` is
    /// under ten seconds, at most [`MAX_TIME_BUCKETS`]).
    #[must_use]
    pub fn time(length: Duration) -> Self {
        let buckets = if length < Duration::from_secs(10) {
            10
        } else {
            u32::try_from(length.as_secs()).unwrap_or(u32::MAX).min(MAX_TIME_BUCKETS)
        };
        Self::Time { length, buckets }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Self::Count { size } => {
                ConfigError::require_nonzero("count_window", size)?;
                if size > MAX_COUNT_WINDOW {
                    return Err(ConfigError::new(
                        "count_window",
                        format!("must be at most {MAX_COUNT_WINDOW} calls, got {size}"),
                    ));
                }
            }
            Self::Time { length, buckets } => {
                ConfigError::require_positive("time_window", length)?;
                ConfigError::require_nonzero("time_window_buckets", buckets)?;
                if buckets > MAX_TIME_BUCKETS {
                    return Err(ConfigError::new(
                        "time_window_buckets",
                        format!("must be at most {MAX_TIME_BUCKETS}, got {buckets}"),
                    ));
                }
                if nanos(length) / u64::from(buckets) < 1_000_000 {
                    return Err(ConfigError::new(
                        "time_window_buckets",
                        "each bucket must be at least 1 ms long (fewer buckets or a longer window)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How long the circuit stays open before it lets trial calls through.
///
/// ```
/// use std::time::Duration;
/// use levee_breaker::OpenWait;
///
/// let wait = OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(30));
/// assert_eq!(wait.wait(0), Duration::from_secs(1));
/// assert_eq!(wait.wait(3), Duration::from_secs(8));
/// assert_eq!(wait.wait(10), Duration::from_secs(30)); // capped
/// assert_eq!(OpenWait::fixed(Duration::from_secs(5)).wait(7), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case", deny_unknown_fields))]
pub enum OpenWait {
    /// The same wait every time.
    Fixed {
        /// The wait.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        wait: Duration,
    },
    /// `initial * multiplier^k` after the k-th consecutive reopening (k = 0 for the first
    /// opening), capped at `max`, then spread by `jitter` (a fraction: 0.2 means ±20 %,
    /// never above `max`). A close starts the count again.
    Exponential {
        /// The first wait.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        initial: Duration,
        /// Growth per reopening, at least 1.
        multiplier: f64,
        /// The cap.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        max: Duration,
        /// Random spread, `0.0..=1.0`.
        jitter: f64,
    },
}

impl OpenWait {
    /// A fixed wait.
    #[must_use]
    pub const fn fixed(wait: Duration) -> Self {
        Self::Fixed { wait }
    }

    /// Exponential backoff from `initial` doubling up to `max`, without jitter; adjust with
    /// [`multiplier`](Self::multiplier) and [`jitter`](Self::jitter).
    #[must_use]
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self::Exponential { initial, multiplier: 2.0, max, jitter: 0.0 }
    }

    /// Sets the growth factor of an exponential wait (no effect on a fixed one).
    #[must_use]
    pub const fn multiplier(mut self, factor: f64) -> Self {
        if let Self::Exponential { multiplier, .. } = &mut self {
            *multiplier = factor;
        }
        self
    }

    /// Sets the jitter fraction of an exponential wait (no effect on a fixed one).
    #[must_use]
    pub const fn jitter(mut self, fraction: f64) -> Self {
        if let Self::Exponential { jitter, .. } = &mut self {
            *jitter = fraction;
        }
        self
    }

    /// The wait after `reopenings` consecutive reopenings (0 for a first opening).
    #[must_use]
    pub fn wait(&self, reopenings: u32) -> Duration {
        match *self {
            Self::Fixed { wait } => wait,
            Self::Exponential { initial, multiplier, max, jitter } => {
                let exponent = i32::try_from(reopenings).unwrap_or(i32::MAX);
                let secs = initial.as_secs_f64() * multiplier.powi(exponent);
                let base = if secs.is_finite() && secs < max.as_secs_f64() {
                    Duration::from_secs_f64(secs)
                } else {
                    max
                };
                let spread =
                    if jitter > 0.0 { levee_core::random::jitter(base, jitter) } else { base };
                spread.min(max)
            }
        }
    }

    /// The longest wait this policy can produce.
    #[must_use]
    pub const fn longest(&self) -> Duration {
        match *self {
            Self::Fixed { wait } => wait,
            Self::Exponential { max, .. } => max,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let too_long = |setting| {
            ConfigError::new(
                setting,
                format!("must be at most {} days", MAX_OPEN_WAIT.as_secs() / 86_400),
            )
        };
        match *self {
            Self::Fixed { wait } => {
                ConfigError::require_positive("open_wait", wait)?;
                if wait > MAX_OPEN_WAIT {
                    return Err(too_long("open_wait"));
                }
            }
            Self::Exponential { initial, multiplier, max, jitter } => {
                ConfigError::require_positive("open_wait", initial)?;
                if max < initial {
                    return Err(ConfigError::new(
                        "open_wait.max",
                        "must not be shorter than the initial wait",
                    ));
                }
                if max > MAX_OPEN_WAIT {
                    return Err(too_long("open_wait.max"));
                }
                if !(multiplier.is_finite() && multiplier >= 1.0) {
                    return Err(ConfigError::new(
                        "open_wait.multiplier",
                        format!("must be a finite number of at least 1, got {multiplier}"),
                    ));
                }
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(ConfigError::new(
                        "open_wait.jitter",
                        format!("must be a fraction in 0..=1, got {jitter}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Everything that decides a breaker's behaviour. The defaults are Resilience4j's, except that
/// slow-call detection is off until [`slow_call_duration`](Self::slow_call_duration) is set
/// (it costs two clock reads per call).
///
/// With the `serde` feature every field may be left out of a config file (the default is used)
/// and durations are written like `"30s"`, `"250ms"`, `"2m"` or a number of milliseconds:
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use levee_breaker::{BreakerSettings, SlidingWindow};
///
/// let settings: BreakerSettings = toml::from_str(r#"
///     failure_rate_threshold = 25.0
///     minimum_calls = 10
///     slow_call_duration = "2s"
///     window = { type = "time", length = "30s", buckets = 30 }
///     open_wait = { type = "exponential", initial = "1s", multiplier = 2.0, max = "1m", jitter = 0.1 }
/// "#).unwrap();
/// assert_eq!(settings.window, SlidingWindow::time(std::time::Duration::from_secs(30)));
/// settings.validate().unwrap();
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct BreakerSettings {
    /// The closed state's sliding window (default: the last 100 calls).
    pub window: SlidingWindow,
    /// Open when at least this percentage of the window's calls failed (default 50). A rate
    /// of zero failures never trips, so `0.0` means "any failure".
    pub failure_rate_threshold: f64,
    /// Open when at least this percentage of the window's calls were slow (default 100).
    /// Only with [`slow_call_duration`](Self::slow_call_duration) set.
    pub slow_call_rate_threshold: f64,
    /// A call that takes longer than this is slow (default: none, slow calls not tracked).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub slow_call_duration: Option<Duration>,
    /// Count a successful call that was slow as a failure too (default false).
    pub slow_success_is_failure: bool,
    /// No rate decision before the window holds this many calls (default 100; a count window
    /// uses at most its size).
    pub minimum_calls: u32,
    /// Also open as soon as the window holds this many failures, whatever the number of calls
    /// (default: none).
    pub failure_count_threshold: Option<u32>,
    /// How long the circuit stays open (default: fixed 60 s).
    pub open_wait: OpenWait,
    /// Trial calls a half-open breaker lets through before deciding (default 10).
    pub half_open_calls: u32,
    /// Reopen a breaker that has been half-open this long without a decision (default:
    /// none, it waits for its trials). Trials that hang would otherwise hold the circuit
    /// half-open, refusing everything else, for as long as they hang (Resilience4j's
    /// `maxWaitDurationInHalfOpenState`).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub half_open_max_wait: Option<Duration>,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window: SlidingWindow::count(100),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: None,
            slow_success_is_failure: false,
            minimum_calls: 100,
            failure_count_threshold: None,
            open_wait: OpenWait::fixed(Duration::from_secs(60)),
            half_open_calls: 10,
            half_open_max_wait: None,
        }
    }
}

impl BreakerSettings {
    /// A breaker with these settings on the default clock ([`FastClock`]), without listeners.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting (see [`validate`](Self::validate)).
    pub fn build(&self) -> Result<crate::CircuitBreaker, ConfigError> {
        self.build_with_clock(FastClock)
    }

    /// A breaker with these settings reading `clock`, without listeners.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_clock<C: Clock>(
        &self,
        clock: C,
    ) -> Result<crate::CircuitBreaker<C>, ConfigError> {
        crate::CircuitBreaker::builder().settings(self.clone()).clock(clock).build()
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting: a threshold outside `0..=100` %, a
    /// zero or oversized window, zero minimum calls or trial calls, a zero or over-long wait.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.window.validate()?;
        ConfigError::require_percent("failure_rate_threshold", self.failure_rate_threshold)?;
        ConfigError::require_percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if let Some(d) = self.slow_call_duration {
            ConfigError::require_positive("slow_call_duration", d)?;
        }
        ConfigError::require_nonzero("minimum_calls", self.minimum_calls)?;
        if let Some(n) = self.failure_count_threshold {
            ConfigError::require_nonzero("failure_count_threshold", n)?;
        }
        self.open_wait.validate()?;
        ConfigError::require_nonzero("half_open_calls", self.half_open_calls)?;
        if self.half_open_calls > MAX_HALF_OPEN_CALLS {
            return Err(ConfigError::new(
                "half_open_calls",
                format!("must be at most {MAX_HALF_OPEN_CALLS}, got {}", self.half_open_calls),
            ));
        }
        if let Some(d) = self.half_open_max_wait {
            ConfigError::require_positive("half_open_max_wait", d)?;
        }
        Ok(())
    }
}

/// Settings compiled for the hot path: integer thresholds, sentinels instead of options.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// Failure-rate threshold in hundredths of a percent.
    failure_bp: u64,
    /// Slow-call-rate threshold in hundredths of a percent.
    slow_bp: u64,
    /// Calls longer than this are slow; `u64::MAX` when slow calls are not tracked.
    pub(crate) slow_nanos: u64,
    pub(crate) slow_success_is_failure: bool,
    /// Effective minimum number of calls.
    pub(crate) min_calls: u64,
    /// Absolute failure count; `u64::MAX` when off.
    failure_count: u64,
    pub(crate) half_open_calls: u8,
    /// Whether permits must note their start time (only to measure slowness).
    pub(crate) times_calls: bool,
    /// The longest possible open wait in whole milliseconds, plus one.
    pub(crate) max_wait_ms: u32,
    /// `half_open_max_wait` in whole milliseconds (rounded up); `u64::MAX` when off.
    pub(crate) half_open_max_ms: u64,
}

/// Why a window's calls open the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    FailureRate,
    SlowCallRate,
    FailureCount,
}

impl Rules {
    /// Compiles validated settings.
    pub(crate) fn new(s: &BreakerSettings) -> Self {
        let bp = |pct: f64| (pct * 100.0).round() as u64;
        let min_calls = match s.window {
            SlidingWindow::Count { size } => s.minimum_calls.min(size),
            SlidingWindow::Time { .. } => s.minimum_calls,
        };
        let longest_ms = nanos(s.open_wait.longest()).div_ceil(1_000_000);
        Self {
            failure_bp: bp(s.failure_rate_threshold),
            slow_bp: bp(s.slow_call_rate_threshold),
            slow_nanos: s.slow_call_duration.map_or(u64::MAX, nanos),
            slow_success_is_failure: s.slow_success_is_failure,
            min_calls: u64::from(min_calls),
            failure_count: s.failure_count_threshold.map_or(u64::MAX, u64::from),
            half_open_calls: u8::try_from(s.half_open_calls).unwrap_or(u8::MAX),
            times_calls: s.slow_call_duration.is_some(),
            max_wait_ms: u32::try_from(longest_ms + 1).unwrap_or(u32::MAX),
            half_open_max_ms: s
                .half_open_max_wait
                .map_or(u64::MAX, |d| nanos(d).div_ceil(1_000_000)),
        }
    }

    /// Whether a closed window of `calls` calls with `failed` failures and `slow` slow calls
    /// opens the circuit.
    #[inline]
    pub(crate) fn closed_verdict(&self, calls: u64, failed: u64, slow: u64) -> Option<Verdict> {
        if failed >= self.failure_count {
            return Some(Verdict::FailureCount);
        }
        if calls < self.min_calls {
            return None;
        }
        self.rates_verdict(calls, failed, slow)
    }

    /// Whether completed trials reopen the circuit.
    #[inline]
    pub(crate) fn trial_verdict(&self, calls: u64, failed: u64, slow: u64) -> Option<Verdict> {
        if failed >= self.failure_count {
            return Some(Verdict::FailureCount);
        }
        self.rates_verdict(calls, failed, slow)
    }

    #[inline]
    fn rates_verdict(&self, calls: u64, failed: u64, slow: u64) -> Option<Verdict> {
        if calls == 0 {
            return None;
        }
        if failed > 0 && failed * 10_000 >= self.failure_bp * calls {
            return Some(Verdict::FailureRate);
        }
        if slow > 0 && self.slow_nanos != u64::MAX && slow * 10_000 >= self.slow_bp * calls {
            return Some(Verdict::SlowCallRate);
        }
        None
    }

    /// Whether a call that took `nanos` is slow.
    #[inline]
    pub(crate) const fn is_slow(&self, nanos: u64) -> bool {
        nanos > self.slow_nanos
    }
}

/// The consecutive-openings count after one more opening.
pub(crate) const fn bump_attempts(attempts: u8) -> u8 {
    if attempts >= MAX_ATTEMPTS { MAX_ATTEMPTS } else { attempts + 1 }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn setting_of(f: impl FnOnce(&mut BreakerSettings)) -> &'static str {
        let mut s = BreakerSettings::default();
        f(&mut s);
        s.validate().expect_err("should be rejected").setting
    }

    #[test]
    fn defaults_are_valid() {
        BreakerSettings::default().validate().unwrap();
    }

    #[test]
    fn bad_settings_are_named() {
        assert_eq!(setting_of(|s| s.failure_rate_threshold = 100.5), "failure_rate_threshold");
        assert_eq!(setting_of(|s| s.failure_rate_threshold = -1.0), "failure_rate_threshold");
        assert_eq!(setting_of(|s| s.failure_rate_threshold = f64::NAN), "failure_rate_threshold");
        assert_eq!(setting_of(|s| s.slow_call_rate_threshold = 101.0), "slow_call_rate_threshold");
        assert_eq!(setting_of(|s| s.window = SlidingWindow::count(0)), "count_window");
        assert_eq!(
            setting_of(|s| s.window = SlidingWindow::count(MAX_COUNT_WINDOW + 1)),
            "count_window"
        );
        assert_eq!(
            setting_of(|s| s.window = SlidingWindow::Time { length: Duration::ZERO, buckets: 1 }),
            "time_window"
        );
        assert_eq!(
            setting_of(
                |s| s.window = SlidingWindow::Time { length: Duration::from_secs(1), buckets: 0 }
            ),
            "time_window_buckets"
        );
        assert_eq!(
            setting_of(|s| s.window =
                SlidingWindow::Time { length: Duration::from_millis(5), buckets: 10 }),
            "time_window_buckets"
        );
        assert_eq!(setting_of(|s| s.half_open_calls = 0), "half_open_calls");
        assert_eq!(setting_of(|s| s.half_open_calls = 256), "half_open_calls");
        assert_eq!(setting_of(|s| s.minimum_calls = 0), "minimum_calls");
        assert_eq!(setting_of(|s| s.failure_count_threshold = Some(0)), "failure_count_threshold");
        assert_eq!(
            setting_of(|s| s.slow_call_duration = Some(Duration::ZERO)),
            "slow_call_duration"
        );
        assert_eq!(setting_of(|s| s.open_wait = OpenWait::fixed(Duration::ZERO)), "open_wait");
        assert_eq!(
            setting_of(|s| s.open_wait = OpenWait::fixed(MAX_OPEN_WAIT + Duration::from_secs(1))),
            "open_wait"
        );
        let exp = OpenWait::exponential(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(setting_of(|s| s.open_wait = exp), "open_wait.max");
        let exp = OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(setting_of(|s| s.open_wait = exp.multiplier(0.5)), "open_wait.multiplier");
        assert_eq!(
            setting_of(|s| s.open_wait = exp.multiplier(f64::INFINITY)),
            "open_wait.multiplier"
        );
        assert_eq!(setting_of(|s| s.open_wait = exp.jitter(1.5)), "open_wait.jitter");
    }

    #[test]
    fn exponential_wait_grows_to_the_cap() {
        let w = OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (0..6).map(|k| w.wait(k).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(w.wait(u32::MAX), Duration::from_secs(10));
        let jittered = w.jitter(0.5);
        for k in 0..8 {
            let d = jittered.wait(k);
            assert!(d <= Duration::from_secs(10), "{d:?}");
            assert!(d >= w.wait(k).mul_f64(0.5), "{d:?}");
        }
    }

    #[test]
    fn rules_compare_exactly() {
        let s = BreakerSettings {
            minimum_calls: 4,
            failure_rate_threshold: 50.0,
            ..Default::default()
        };
        let r = Rules::new(&s);
        assert_eq!(r.closed_verdict(3, 3, 0), None, "below minimum calls");
        assert_eq!(r.closed_verdict(4, 2, 0), Some(Verdict::FailureRate), "50 % of 4");
        assert_eq!(r.closed_verdict(5, 2, 0), None, "40 %");
        let zero =
            Rules::new(&BreakerSettings { failure_rate_threshold: 0.0, minimum_calls: 1, ..s });
        assert_eq!(zero.closed_verdict(10, 0, 0), None, "no failure never trips");
        assert_eq!(zero.closed_verdict(10, 1, 0), Some(Verdict::FailureRate));
        let count =
            Rules::new(&BreakerSettings { failure_count_threshold: Some(2), ..Default::default() });
        assert_eq!(
            count.closed_verdict(2, 2, 0),
            Some(Verdict::FailureCount),
            "ignores minimum calls"
        );
    }
}
