//! Settings of [`serve`](super::serve).

use std::time::Duration;

use levee_core::ConfigError;

/// How [`serve`](super::serve) runs a subscription's consumers.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::ServeConfig;
///
/// let config = ServeConfig::new()
///     .consumers(4)
///     .concurrency(8) // 32 handlers at most in all
///     .heartbeat(Duration::from_secs(10)) // with an ack_wait of, say, 30 s
///     .drain_timeout(Duration::from_secs(20));
/// assert!(config.validate().is_ok());
/// assert!(ServeConfig::new().consumers(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct ServeConfig {
    /// Competing consumers of the subscription, each receiving on its own. Default 1.
    pub consumers: usize,
    /// Handlers one consumer runs at once; it receives only as many messages as it has room
    /// for. Default 16.
    pub concurrency: usize,
    /// How long one receive waits for messages before the consumer asks again (the
    /// long-poll of a networked broker). Shutdown does not wait for it. Default 5 s.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub receive_wait: Duration,
    /// While a handler runs, extend its lease (`in_progress`) this often; `None` (the
    /// default) never does, so a handler must finish within the subscription's ack wait.
    /// Pick well under the ack wait (a third, say). Measured on tokio's clock.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub heartbeat: Option<Duration>,
    /// How long [`shutdown`](super::ServeHandle::shutdown) lets running handlers finish;
    /// those still running then are cancelled and their messages nacked for redelivery at
    /// once. Measured on tokio's clock. Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub drain_timeout: Duration,
    /// How long a consumer waits before receiving again after the broker refused a receive
    /// (other than by closing). Measured on tokio's clock. Default 1 s.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub retry_delay: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            consumers: 1,
            concurrency: 16,
            receive_wait: Duration::from_secs(5),
            heartbeat: None,
            drain_timeout: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
        }
    }
}

impl ServeConfig {
    /// Default settings.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`consumers`](Self::consumers).
    #[must_use]
    pub fn consumers(mut self, n: usize) -> Self {
        self.consumers = n;
        self
    }

    /// Sets [`concurrency`](Self::concurrency).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets [`receive_wait`](Self::receive_wait).
    #[must_use]
    pub fn receive_wait(mut self, wait: Duration) -> Self {
        self.receive_wait = wait;
        self
    }

    /// Sets [`heartbeat`](Self::heartbeat).
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every);
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`retry_delay`](Self::retry_delay).
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting out of range: zero `consumers`, a
    /// `concurrency` of zero or above 2^29 (tokio's semaphore bound), a zero `receive_wait`,
    /// or a zero `heartbeat`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::require_nonzero("consumers", self.consumers)?;
        ConfigError::require_nonzero("concurrency", self.concurrency)?;
        if self.concurrency > MAX_CONCURRENCY {
            return Err(ConfigError::new("concurrency", "must be at most 2^29"));
        }
        ConfigError::require_positive("receive_wait", self.receive_wait)?;
        if let Some(every) = self.heartbeat {
            ConfigError::require_positive("heartbeat", every)?;
        }
        Ok(())
    }
}

/// Below `tokio::sync::Semaphore::MAX_PERMITS` (2^61 - 1 on 64-bit) and `u32::MAX`, so a
/// drain can take every permit at once.
pub(crate) const MAX_CONCURRENCY: usize = 1 << 29;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_named() {
        let base = ServeConfig::new();
        assert!(base.validate().is_ok());
        let cases = [
            (base.clone().consumers(0), "consumers"),
            (base.clone().concurrency(0), "concurrency"),
            (base.clone().concurrency(MAX_CONCURRENCY + 1), "concurrency"),
            (base.clone().receive_wait(Duration::ZERO), "receive_wait"),
            (base.clone().heartbeat(Duration::ZERO), "heartbeat"),
        ];
        for (config, setting) in cases {
            assert_eq!(config.validate().unwrap_err().setting, setting);
        }
    }
}
