//! How long to wait before each retry.
//!
//! - **Constant**: the same delay every time (optionally spread by a jitter fraction).
//! - **Exponential**: `base * factor^(n-1)` for the `n`th retry, capped at `max`, spread by
//!   the jitter fraction (then capped again).
//! - **Decorrelated jitter** (Marc Brooker, "Exponential Backoff And Jitter", AWS
//!   Architecture Blog, 2015): `min(max, random(base, 3 * previous))`. Each delay is drawn
//!   from a range that grows with the previous one, which spreads retrying clients apart
//!   better than jittering a fixed exponential schedule.
//!
//! Randomness comes from `levee_core::random` (thread-local, a few nanoseconds).

use std::time::Duration;

use levee_core::{ConfigError, random};

/// A backoff schedule. Build one with the constructors and check it with
/// [`validate`](Self::validate) (a [`RetryBuilder`](crate::RetryBuilder) does that for you).
///
/// ```
/// use std::time::Duration;
/// use levee_policy::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(b.delay(1, Duration::ZERO), Duration::from_millis(100));
/// assert_eq!(b.delay(3, Duration::ZERO), Duration::from_millis(400));
/// assert_eq!(b.delay(9, Duration::ZERO), Duration::from_secs(1)); // capped
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case", deny_unknown_fields))]
pub enum Backoff {
    /// Retry at once.
    Immediate,
    /// The same delay before every retry.
    Constant {
        /// The delay.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        delay: Duration,
        /// Spread each delay uniformly by up to this fraction either way (`0.0..=1.0`).
        #[cfg_attr(feature = "serde", serde(default))]
        jitter: f64,
    },
    /// Growing delays: `base * factor^(n-1)`, capped at `max`.
    Exponential {
        /// The first delay.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        base: Duration,
        /// Growth per retry (at least 1.0).
        #[cfg_attr(feature = "serde", serde(default = "two"))]
        factor: f64,
        /// The longest delay.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        max: Duration,
        /// Spread each delay uniformly by up to this fraction either way (`0.0..=1.0`).
        #[cfg_attr(feature = "serde", serde(default))]
        jitter: f64,
    },
    /// Decorrelated jitter: each delay random in `base..=3 * previous`, capped at `max`.
    DecorrelatedJitter {
        /// The smallest delay, and the first retry's.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        base: Duration,
        /// The longest delay.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        max: Duration,
    },
}

#[cfg(feature = "serde")]
fn two() -> f64 {
    2.0
}

impl Default for Backoff {
    /// Exponential from 100 ms, doubling, capped at 10 s, with 20 % jitter.
    fn default() -> Self {
        Self::Exponential {
            base: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The same `delay` every time, no jitter.
    #[must_use]
    pub const fn constant(delay: Duration) -> Self {
        Self::Constant { delay, jitter: 0.0 }
    }

    /// Doubling from `base`, capped at `max`, no jitter.
    #[must_use]
    pub const fn exponential(base: Duration, max: Duration) -> Self {
        Self::Exponential { base, factor: 2.0, max, jitter: 0.0 }
    }

    /// Decorrelated jitter from `base`, capped at `max`.
    #[must_use]
    pub const fn decorrelated_jitter(base: Duration, max: Duration) -> Self {
        Self::DecorrelatedJitter { base, max }
    }

    /// The same schedule with its jitter fraction set (constant and exponential only).
    #[must_use]
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        match &mut self {
            Self::Constant { jitter, .. } | Self::Exponential { jitter, .. } => *jitter = fraction,
            Self::Immediate | Self::DecorrelatedJitter { .. } => {}
        }
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A zero `base`, a `max` below `base`, a `factor` below 1 or not finite, a `jitter`
    /// outside `0.0..=1.0`: a [`ConfigError`] naming the field (`backoff.base`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let jitter_ok = |j: f64| {
            if (0.0..=1.0).contains(&j) {
                Ok(())
            } else {
                Err(ConfigError::new("backoff.jitter", format!("must be in 0.0..=1.0, got {j}")))
            }
        };
        match *self {
            Self::Immediate => Ok(()),
            Self::Constant { jitter, .. } => jitter_ok(jitter),
            Self::Exponential { base, factor, max, jitter } => {
                ConfigError::require_positive("backoff.base", base)?;
                if !(factor.is_finite() && factor >= 1.0) {
                    return Err(ConfigError::new(
                        "backoff.factor",
                        format!("must be a finite number >= 1.0, got {factor}"),
                    ));
                }
                if max < base {
                    return Err(ConfigError::new("backoff.max", "must be at least `base`"));
                }
                jitter_ok(jitter)
            }
            Self::DecorrelatedJitter { base, max } => {
                ConfigError::require_positive("backoff.base", base)?;
                if max < base {
                    return Err(ConfigError::new("backoff.max", "must be at least `base`"));
                }
                Ok(())
            }
        }
    }

    /// The delay before retry number `retry` (1 for the first retry), given the previous
    /// delay (zero before the first retry; only decorrelated jitter uses it).
    #[must_use]
    pub fn delay(&self, retry: u32, previous: Duration) -> Duration {
        match *self {
            Self::Immediate => Duration::ZERO,
            Self::Constant { delay, jitter } => spread(delay, jitter),
            Self::Exponential { base, factor, max, jitter } => {
                let exp = retry.saturating_sub(1).min(1024) as i32;
                let grown = base.as_secs_f64() * factor.powi(exp);
                let capped = if grown.is_finite() && grown < max.as_secs_f64() {
                    Duration::from_secs_f64(grown)
                } else {
                    max
                };
                spread(capped, jitter).min(max)
            }
            Self::DecorrelatedJitter { base, max } => {
                let previous = previous.max(base);
                let upper = previous.saturating_mul(3).min(max);
                if upper <= base {
                    return upper;
                }
                let span = upper - base;
                base + span.mul_f64(random::next_f64())
            }
        }
    }
}

fn spread(delay: Duration, jitter: f64) -> Duration {
    if jitter > 0.0 { random::jitter(delay, jitter) } else { delay }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn constant_and_exponential_schedules() {
        assert_eq!(Backoff::constant(5 * MS).delay(7, Duration::ZERO), 5 * MS);
        let b = Backoff::Exponential { base: 10 * MS, factor: 3.0, max: 200 * MS, jitter: 0.0 };
        let got: Vec<_> = (1..=5).map(|n| b.delay(n, Duration::ZERO)).collect();
        assert_eq!(got, [10 * MS, 30 * MS, 90 * MS, 200 * MS, 200 * MS]);
        assert_eq!(b.delay(u32::MAX, Duration::ZERO), 200 * MS, "no overflow");
        assert_eq!(Backoff::Immediate.delay(3, MS), Duration::ZERO);
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let e = Backoff::exponential(Duration::ZERO, MS).validate().unwrap_err();
        assert_eq!(e.setting, "backoff.base");
        let e = Backoff::exponential(10 * MS, MS).validate().unwrap_err();
        assert_eq!(e.setting, "backoff.max");
        let e = Backoff::Exponential { base: MS, factor: 0.5, max: MS, jitter: 0.0 }
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, "backoff.factor");
        let e = Backoff::constant(MS).with_jitter(1.5).validate().unwrap_err();
        assert_eq!(e.setting, "backoff.jitter");
        let e = Backoff::Exponential { base: MS, factor: f64::NAN, max: MS, jitter: 0.0 }
            .validate()
            .unwrap_err();
        assert_eq!(e.setting, "backoff.factor");
        assert!(Backoff::default().validate().is_ok());
    }

    proptest! {
        #[test]
        fn jittered_exponential_stays_within_bounds(
            base_ms in 1u64..1000, max_mul in 1u64..100, retry in 1u32..40, jitter in 0.0f64..=1.0,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = base * max_mul as u32;
            let b = Backoff::exponential(base, max).with_jitter(jitter);
            let exact = Backoff::exponential(base, max).delay(retry, Duration::ZERO);
            let d = b.delay(retry, Duration::ZERO);
            prop_assert!(d <= max);
            prop_assert!(d >= exact.mul_f64(1.0 - jitter) - Duration::from_nanos(1));
            prop_assert!(d <= exact.mul_f64(1.0 + jitter) + Duration::from_nanos(1));
        }

        #[test]
        fn decorrelated_jitter_stays_within_bounds(
            base_ms in 1u64..1000, max_mul in 1u64..100, prev_ms in 0u64..100_000,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = base * max_mul as u32;
            let prev = Duration::from_millis(prev_ms);
            let d = Backoff::decorrelated_jitter(base, max).delay(2, prev);
            prop_assert!(d >= base.min(max) && d <= max);
            prop_assert!(d <= prev.max(base) * 3);
        }
    }
}
