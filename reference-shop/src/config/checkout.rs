//! `[payment.checkout]`: how long a synchronous checkout (`POST /orders/{id}/checkout`) lets
//! its customer wait for the payment provider before it answers "payment pending" and hands
//! the payment to the queued path.

use std::time::Duration;

use levee::core::ConfigError;
use serde::{Deserialize, Serialize};

use super::{SettingError, section};

/// The synchronous checkout's own deadlines. Its retries, retry budget and breaker are the
/// payment pipeline's (`[payment.retry]`, `[payment.breaker]`), shared with the queued
/// payments: a provider the queue found down is down for the checkout too, and the other way
/// round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Default for CheckoutConfig {
    /// Wait at most 1 s, 500 ms per provider call: room for one retry of a quick fault.
    fn default() -> Self {
        Self { timeout: Duration::from_secs(1), attempt_timeout: Duration::from_millis(500) }
    }
}

impl CheckoutConfig {
    /// Checks that both deadlines are positive and an attempt fits the whole.
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
    }
}
