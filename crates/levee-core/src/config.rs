//! The error every levee builder returns for an invalid setting.

use std::borrow::Cow;
use std::time::Duration;

/// A setting was out of range; the message names it and says why.
///
/// Builders validate everything in `build()`, so an invalid configuration is caught when a
/// service starts, never as a panic (or a limiter that admits everything) later.
///
/// ```
/// use levee_core::ConfigError;
///
/// let err = ConfigError::new("burst", "must be at least 1");
/// assert_eq!(err.to_string(), "invalid setting `burst`: must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// The setting's name as the builder method spells it.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: Cow<'static, str>,
}

impl ConfigError {
    /// An error for `setting`.
    #[must_use]
    pub fn new(setting: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self { setting, reason: reason.into() }
    }

    /// Checks that a count is at least one.
    ///
    /// # Errors
    /// When `value` is zero.
    pub fn require_nonzero<T: Default + PartialEq>(
        setting: &'static str,
        value: T,
    ) -> Result<T, Self> {
        if value == T::default() {
            Err(Self::new(setting, "must be greater than zero"))
        } else {
            Ok(value)
        }
    }

    /// Checks that a duration is longer than zero.
    ///
    /// # Errors
    /// When `value` is zero.
    pub fn require_positive(setting: &'static str, value: Duration) -> Result<Duration, Self> {
        if value.is_zero() {
            Err(Self::new(setting, "must be longer than zero"))
        } else {
            Ok(value)
        }
    }

    /// Checks that a percentage lies in `0.0..=100.0` (and is not NaN).
    ///
    /// # Errors
    /// When `value` is outside the range.
    pub fn require_percent(setting: &'static str, value: f64) -> Result<f64, Self> {
        if (0.0..=100.0).contains(&value) {
            Ok(value)
        } else {
            Err(Self::new(setting, format!("must be a percentage in 0..=100, got {value}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_name_the_setting() {
        assert_eq!(ConfigError::require_nonzero("n", 3u32), Ok(3));
        assert_eq!(ConfigError::require_nonzero("n", 0u32).unwrap_err().setting, "n");
        assert!(ConfigError::require_positive("wait", Duration::ZERO).is_err());
        assert!(ConfigError::require_percent("rate", 100.0).is_ok());
        assert!(ConfigError::require_percent("rate", f64::NAN).is_err());
        let err = ConfigError::require_percent("rate", 101.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid setting `rate`: must be a percentage in 0..=100, got 101"
        );
    }
}
