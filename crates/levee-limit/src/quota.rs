//! Quotas: "N per period with burst B", validated once when a limiter is built.

use std::time::Duration;

use levee_core::{ConfigError, nanos};

/// The longest span (period, or burst tolerance) a quota may describe: 2^62 ns, about 146
/// years. Keeping every span below it means `now + span` can never overflow a `u64` clock
/// reading, so the hot path needs no overflow checks beyond one saturating add.
pub const MAX_SPAN: Duration = Duration::from_nanos(1 << 62);

/// A rate: `count` cells per `period`, of which up to `burst` may arrive at once.
///
/// A quota is plain data; it is checked when a limiter is built ([`Quota::gcra`] is what the
/// limiters call), so a bad quota is a [`ConfigError`] at start-up rather than a panic or a
/// limiter that admits everything later.
///
/// The burst defaults to `count`: `Quota::per_second(10)` admits ten at once after a quiet
/// second, then one every 100 ms.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::Quota;
///
/// let quota = Quota::per_second(100).with_burst(20);
/// assert_eq!(quota.burst(), 20);
/// assert_eq!(quota.emission_interval().unwrap(), Duration::from_millis(10));
///
/// // Zero is refused, naming the setting.
/// let err = Quota::per_minute(0).emission_interval().unwrap_err();
/// assert_eq!(err.setting, "quota.count");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Quota {
    /// Cells admitted per `period` in the long run.
    pub count: u32,
    /// The period `count` refers to (`"1s"`, `"250ms"` in settings files).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub period: Duration,
    /// Cells that may be admitted at once after a quiet spell; `None` means `count`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub burst: Option<u32>,
}

impl Quota {
    /// `count` cells per `period`, burst `count`.
    #[must_use]
    pub const fn new(count: u32, period: Duration) -> Self {
        Self { count, period, burst: None }
    }

    /// `count` cells per second.
    #[must_use]
    pub const fn per_second(count: u32) -> Self {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` cells per minute.
    #[must_use]
    pub const fn per_minute(count: u32) -> Self {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` cells per hour.
    #[must_use]
    pub const fn per_hour(count: u32) -> Self {
        Self::new(count, Duration::from_secs(3600))
    }

    /// One cell every `interval` (burst one).
    #[must_use]
    pub const fn every(interval: Duration) -> Self {
        Self { count: 1, period: interval, burst: Some(1) }
    }

    /// The same rate with a different burst.
    #[must_use]
    pub const fn with_burst(self, burst: u32) -> Self {
        Self { burst: Some(burst), ..self }
    }

    /// The burst: how many cells may be admitted at once.
    #[must_use]
    pub const fn burst(&self) -> u32 {
        match self.burst {
            Some(b) => b,
            None => self.count,
        }
    }

    /// The time one cell "costs": `period / count`, rounded up to whole nanoseconds so the
    /// limiter never admits faster than asked.
    ///
    /// # Errors
    /// As [`Quota::gcra`].
    pub fn emission_interval(&self) -> Result<Duration, ConfigError> {
        self.gcra().map(|g| Duration::from_nanos(g.t))
    }

    /// Checks the quota and converts it to the GCRA parameters the limiters run on.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `quota.count`, `quota.period` or `quota.burst` when one is
    /// zero, when the rate exceeds one cell per nanosecond, or when the period or the burst
    /// tolerance (`burst` cells' worth of time) exceeds [`MAX_SPAN`].
    pub fn gcra(&self) -> Result<Gcra, ConfigError> {
        let count = ConfigError::require_nonzero("quota.count", self.count)?;
        let period = ConfigError::require_positive("quota.period", self.period)?;
        let burst = ConfigError::require_nonzero("quota.burst", self.burst())?;
        let period = nanos(period);
        if period > nanos(MAX_SPAN) {
            return Err(ConfigError::new("quota.period", "must be at most 2^62 ns (146 years)"));
        }
        if period < u64::from(count) {
            return Err(ConfigError::new(
                "quota.count",
                format!("{count} per {period} ns is more than one cell per nanosecond"),
            ));
        }
        let t = period.div_ceil(u64::from(count));
        // t + tau = t * burst: the span one full burst covers.
        match t.checked_mul(u64::from(burst)) {
            Some(span) if span <= nanos(MAX_SPAN) => Ok(Gcra { t, tau: span - t, burst }),
            _ => Err(ConfigError::new(
                "quota.burst",
                format!("a burst of {burst} cells spans more than 2^62 ns (146 years)"),
            )),
        }
    }
}

/// Validated GCRA parameters: the emission interval `t` and the tolerance `tau`, in
/// nanoseconds. Built only by [`Quota::gcra`], so `t >= 1` and `t + tau <= 2^62` always hold.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::Quota;
///
/// let gcra = Quota::per_second(10).with_burst(5).gcra()?;
/// assert_eq!(gcra.emission_interval(), Duration::from_millis(100)); // one cell per 100 ms
/// assert_eq!(gcra.burst(), 5);
/// assert_eq!(gcra.tolerance(), Duration::from_millis(400)); // 4 more cells at once
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub(crate) t: u64,
    pub(crate) tau: u64,
    pub(crate) burst: u32,
}

impl Gcra {
    /// The emission interval: one cell's worth of time.
    #[must_use]
    pub const fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.t)
    }

    /// The burst tolerance: `(burst - 1)` cells' worth of time.
    #[must_use]
    pub const fn tolerance(&self) -> Duration {
        Duration::from_nanos(self.tau)
    }

    /// Cells admissible at once.
    #[must_use]
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// Time for a drained limiter to refill completely (`burst` cells' worth of time).
    #[must_use]
    pub const fn refill_time(&self) -> Duration {
        Duration::from_nanos(self.t + self.tau)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_quotas_naming_the_setting() {
        let setting = |q: Quota| q.gcra().unwrap_err().setting;
        assert_eq!(setting(Quota::per_second(0)), "quota.count");
        assert_eq!(setting(Quota::new(1, Duration::ZERO)), "quota.period");
        assert_eq!(setting(Quota::per_second(1).with_burst(0)), "quota.burst");
        assert_eq!(setting(Quota::new(10, Duration::from_nanos(5))), "quota.count");
        assert_eq!(setting(Quota::new(1, Duration::MAX)), "quota.period");
        assert_eq!(setting(Quota::new(1, MAX_SPAN).with_burst(2)), "quota.burst");
        assert_eq!(setting(Quota::per_hour(1).with_burst(u32::MAX)), "quota.burst");
    }

    #[test]
    fn derives_gcra_parameters() {
        let g = Quota::per_second(10).gcra().unwrap();
        assert_eq!((g.t, g.tau, g.burst), (100_000_000, 900_000_000, 10));
        // Rounded up: three per second never admits faster than three per second.
        let g = Quota::per_second(3).with_burst(1).gcra().unwrap();
        assert_eq!((g.t, g.tau), (333_333_334, 0));
        assert_eq!(g.refill_time(), Duration::from_nanos(333_333_334));
        let g = Quota::every(Duration::from_millis(5)).gcra().unwrap();
        assert_eq!((g.t, g.tau, g.burst), (5_000_000, 0, 1));
        assert!(Quota::new(1, MAX_SPAN).gcra().is_ok());
        assert!(Quota::new(u32::MAX, Duration::from_secs(5)).gcra().is_ok());
    }
}
