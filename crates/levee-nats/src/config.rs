//! Connection and JetStream settings of a [`NatsBroker`](crate::NatsBroker).

use std::time::Duration;

use levee_core::ConfigError;

/// Where JetStream keeps a topic's streams.
///
/// ```
/// use levee_nats::{NatsConfig, Storage};
///
/// let mut config = NatsConfig::new("nats://127.0.0.1:4222");
/// assert_eq!(config.storage, Storage::File); // survives a server restart
/// config.storage = Storage::Memory; // scratch topics: faster, gone when the server stops
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// On disk: survives a server restart (the default).
    #[default]
    File,
    /// In memory: faster, lost when the server stops.
    Memory,
}

/// Settings of a [`NatsBroker`](crate::NatsBroker); build one with
/// [`NatsBroker::builder`](crate::NatsBroker::builder).
///
/// ```
/// use std::time::Duration;
/// use levee_nats::NatsConfig;
///
/// let mut config = NatsConfig::new("nats://127.0.0.1:4222");
/// config.prefix = "shop".into();
/// config.request_timeout = Duration::from_secs(2);
/// assert!(config.validate().is_ok());
/// config.prefix = "not a prefix!".into();
/// assert_eq!(config.validate().unwrap_err().setting, "prefix");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsConfig {
    /// The server(s) to connect to, e.g. `nats://127.0.0.1:4222` (comma-separated for several).
    pub url: String,
    /// Prefix of every stream, subject and bucket this broker uses (`A-Z a-z 0-9 _`), so
    /// several levee deployments can share one NATS account. Default `levee`.
    pub prefix: String,
    /// How long connecting may take before [`BrokerError::Unavailable`](levee_queue::broker::BrokerError::Unavailable).
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// How long any one request to the server (a publish, an acknowledgement, a stream
    /// lookup) waits for its answer before [`BrokerError::Unavailable`](levee_queue::broker::BrokerError::Unavailable).
    /// Default 5 s.
    pub request_timeout: Duration,
    /// How long a publish into a full topic waits for room when the subscription that bounds
    /// it has [`Overflow::Wait`](levee_queue::broker::Overflow::Wait), before `Full`.
    /// Default 30 s.
    pub full_wait: Duration,
    /// Where streams are kept. Default [`Storage::File`].
    pub storage: Storage,
    /// Replicas of each stream (1 on a single server, 3 or 5 in a cluster). Default 1.
    pub replicas: usize,
    /// The most unacknowledged deliveries one subscription (a JetStream consumer) has out
    /// across all its consumers and processes. Default 10 000.
    pub max_ack_pending: i64,
    /// Wait for the server to confirm each ack / nack / term / in-progress (JetStream's
    /// "double ack"). With it, a verb that returned `Ok` took effect; without it a verb lost
    /// in a disconnect surfaces later as a redelivery. Default `true`.
    pub confirm_acks: bool,
    /// Delete a subscription nobody has received from for this long, with what it had not
    /// acknowledged (JetStream's consumer `inactive_threshold`). Default `None`: kept for
    /// ever.
    ///
    /// Set it for a broker whose subscriptions belong to one process each (a replica's own
    /// inbox, named after the replica): when that process is gone for good, its subscription
    /// would otherwise hold every message published to the topic until the topic's backlog
    /// is full and publishes are refused for everyone. Never set it for shared work
    /// subscriptions, which must keep their messages while all their consumers are down. A
    /// process that was silent for longer and receives again gets a new, empty subscription
    /// of the same name.
    pub idle_subscription_expiry: Option<Duration>,
}

impl NatsConfig {
    /// Defaults for the server at `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "levee".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            full_wait: Duration::from_secs(30),
            storage: Storage::File,
            replicas: 1,
            max_ack_pending: 10_000,
            confirm_acks: true,
            idle_subscription_expiry: None,
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A [`ConfigError`] for an empty url, a prefix that is empty or holds anything but
    /// `A-Z a-z 0-9 _`, a zero timeout, zero replicas, a `max_ack_pending` below 1, or an
    /// `idle_subscription_expiry` under a second.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.url.trim().is_empty() {
            return Err(ConfigError::new("url", "must not be empty"));
        }
        let prefix_ok = !self.prefix.is_empty()
            && self.prefix.len() <= 32
            && self.prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !prefix_ok {
            return Err(ConfigError::new("prefix", "must be 1 to 32 of A-Z a-z 0-9 _"));
        }
        ConfigError::require_positive("connect_timeout", self.connect_timeout)?;
        ConfigError::require_positive("request_timeout", self.request_timeout)?;
        ConfigError::require_nonzero("replicas", self.replicas)?;
        if self.max_ack_pending < 1 {
            return Err(ConfigError::new("max_ack_pending", "must be at least 1"));
        }
        if self.idle_subscription_expiry.is_some_and(|d| d < Duration::from_secs(1)) {
            // A subscription that receives long-polls for up to its wait; under a second, a
            // live one could expire between two receives.
            return Err(ConfigError::new("idle_subscription_expiry", "must be at least 1 s"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        assert!(NatsConfig::new("nats://127.0.0.1:4222").validate().is_ok());
        let base = NatsConfig::new("nats://127.0.0.1:4222");
        let cases = [
            (NatsConfig { url: " ".into(), ..base.clone() }, "url"),
            (NatsConfig { prefix: "a-b".into(), ..base.clone() }, "prefix"),
            (NatsConfig { prefix: String::new(), ..base.clone() }, "prefix"),
            (NatsConfig { request_timeout: Duration::ZERO, ..base.clone() }, "request_timeout"),
            (NatsConfig { replicas: 0, ..base.clone() }, "replicas"),
            (NatsConfig { max_ack_pending: 0, ..base.clone() }, "max_ack_pending"),
            (
                NatsConfig { idle_subscription_expiry: Some(Duration::from_millis(999)), ..base },
                "idle_subscription_expiry",
            ),
        ];
        for (config, setting) in cases {
            assert_eq!(config.validate().unwrap_err().setting, setting);
        }
    }
}
