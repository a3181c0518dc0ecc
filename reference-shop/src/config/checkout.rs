//! `[payment.checkout]`: how long a synchronous checkout (`POST /orders/{id}/checkout`) lets
//! its customer wait for the payment provider before it answers "payment pending" and hands
//! the payment to the queued path.
//!
//! The wait is latency-aware: a checkout waits a few times the provider's recent answer
//! latency (`latency_multiplier` x the `latency_percentile` of its last answers, at least
//! `min_timeout`, at most `timeout`), so a provider that turns slow is cut off in tens of
//! milliseconds and the order handed to the queue, while a provider that answers slowly but
//! surely (every answer slow, the queued path still hearing them) moves the deadline up with
//! it.

use std::time::Duration;

use levee::core::ConfigError;
use serde::{Deserialize, Serialize};

use super::{SettingError, section};

/// The synchronous checkout's own deadlines. Its retries, retry budget and breaker are the
/// payment pipeline's (`[payment.retry]`, `[payment.breaker]`), shared with the queued
/// payments: a provider the queue found down is down for the checkout too, and the other way
/// round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckoutConfig {
    /// The longest a customer waits for the payment's outcome: every attempt and backoff
    /// pause of a synchronous checkout. Past it the checkout answers 202 (payment pending)
    /// and the queue goes on trying.
    #[serde(with = "levee::core::serde_duration")]
    pub timeout: Duration,
    /// Deadline of one provider call made while the customer waits (at most `timeout`; the
    /// attempt timeout of `[payment]` applies too, whichever is shorter). A cut call is a
    /// failure to the shared breaker.
    #[serde(with = "levee::core::serde_duration")]
    pub attempt_timeout: Duration,
    /// Follow the provider's recent latency (default true): a checkout waits
    /// `latency_multiplier` x the `latency_percentile` of the provider's recent answers
    /// (both paths' calls that got an answer, a charge or a decline), within
    /// `min_timeout..=timeout`. Until enough answers were heard, and with `false`, it waits
    /// `timeout`.
    pub latency_aware: bool,
    /// Which percentile of the recent answers the deadline follows, in `(0, 1]` (default 0.9).
    pub latency_percentile: f64,
    /// How many times that percentile a checkout waits, at least 1 (default 4).
    pub latency_multiplier: f64,
    /// The shortest latency-aware deadline (default 50 ms): room for a healthy provider's
    /// jitter however fast its recent answers were.
    #[serde(with = "levee::core::serde_duration")]
    pub min_timeout: Duration,
}

impl Default for CheckoutConfig {
    /// Wait at most 1 s, 500 ms per provider call: room for one retry of a quick fault; with
    /// the provider's recent answers known, 4 x their p90, at least 50 ms.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_millis(500),
            latency_aware: true,
            latency_percentile: 0.9,
            latency_multiplier: 4.0,
            min_timeout: Duration::from_millis(50),
        }
    }
}

impl CheckoutConfig {
    /// Checks that the deadlines are positive, an attempt and the shortest deadline fit the
    /// whole, and the percentile and multiplier are in range.
    ///
    /// # Errors
    /// The first setting out of range, as `payment.checkout.<setting>`.
    pub fn validate(&self) -> Result<(), SettingError> {
        let named = section("payment.checkout");
        ConfigError::require_positive("timeout", self.timeout).map_err(&named)?;
        ConfigError::require_positive("attempt_timeout", self.attempt_timeout).map_err(&named)?;
        if self.attempt_timeout > self.timeout {
            return Err(named(ConfigError::new("attempt_timeout", "must not exceed `timeout`")));
        }
        ConfigError::require_positive("min_timeout", self.min_timeout).map_err(&named)?;
        if self.min_timeout > self.timeout {
            return Err(named(ConfigError::new("min_timeout", "must not exceed `timeout`")));
        }
        let p = self.latency_percentile;
        if !(p > 0.0 && p <= 1.0) {
            return Err(named(ConfigError::new("latency_percentile", "must lie in (0, 1]")));
        }
        let m = self.latency_multiplier;
        if !(m.is_finite() && m >= 1.0) {
            return Err(named(ConfigError::new("latency_multiplier", "must be finite and >= 1")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_deadlines_are_named() {
        assert_eq!(CheckoutConfig::default().validate(), Ok(()));
        let zero = CheckoutConfig { timeout: Duration::ZERO, ..CheckoutConfig::default() };
        assert_eq!(zero.validate().unwrap_err().path(), "payment.checkout.timeout");
        let long =
            CheckoutConfig { attempt_timeout: Duration::from_secs(2), ..CheckoutConfig::default() };
        let err = long.validate().unwrap_err();
        assert_eq!(err.path(), "payment.checkout.attempt_timeout");
        assert!(err.to_string().contains("must not exceed"), "{err}");
        let floor = CheckoutConfig { min_timeout: Duration::from_secs(2), ..Default::default() };
        assert_eq!(floor.validate().unwrap_err().path(), "payment.checkout.min_timeout");
        let zero = CheckoutConfig { min_timeout: Duration::ZERO, ..Default::default() };
        assert_eq!(zero.validate().unwrap_err().path(), "payment.checkout.min_timeout");
        for p in [0.0, 1.5, f64::NAN] {
            let bad = CheckoutConfig { latency_percentile: p, ..Default::default() };
            assert_eq!(bad.validate().unwrap_err().path(), "payment.checkout.latency_percentile");
        }
        for m in [0.5, f64::INFINITY, f64::NAN] {
            let bad = CheckoutConfig { latency_multiplier: m, ..Default::default() };
            assert_eq!(bad.validate().unwrap_err().path(), "payment.checkout.latency_multiplier");
        }
    }
}
