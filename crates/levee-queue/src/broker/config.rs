//! Settings of topics and subscriptions: plain data, validated when used.

use std::time::Duration;

use levee_core::ConfigError;

/// What a publish does when a subscription's backlog is at its `max_backlog`.
///
/// ```
/// use levee_queue::broker::{BrokerError, InProcessBroker, Message, Overflow, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u32>::new();
/// broker.subscribe("events", SubscriptionConfig::new("audit").max_backlog(1).overflow(Overflow::Reject))?;
/// broker.try_publish("events", Message::new(1)).unwrap();
/// let refused = broker.try_publish("events", Message::new(2)).unwrap_err();
/// assert!(matches!(refused.error, BrokerError::Full { capacity: 1, .. }));
/// assert_eq!(refused.message.into_payload(), 2); // handed back, not lost
/// # Ok::<(), BrokerError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Overflow {
    /// The publisher waits for room (`publish().await`); `try_publish` gets
    /// [`BrokerError::Full`](super::BrokerError::Full).
    #[default]
    Wait,
    /// The publisher gets [`BrokerError::Full`](super::BrokerError::Full).
    Reject,
    /// The message at the head of the ready queue (the one waiting longest to be delivered) is
    /// moved to the dead-letter queue (reason [`Overflow`](super::DeadLetterReason::Overflow))
    /// to make room. When nothing is ready (everything held is in flight, scheduled for later
    /// or queued behind its ordering key) there is nothing to move and the publish gets
    /// `Full`.
    DeadLetterOldest,
}

/// Settings of one subscription.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{Overflow, SubscriptionConfig};
///
/// let config = SubscriptionConfig::new("payment")
///     .filter("orders.placed")
///     .ack_wait(Duration::from_secs(30))
///     .max_deliveries(5)
///     .backoff(vec![Duration::from_secs(1), Duration::from_secs(10), Duration::from_secs(60)])
///     .max_backlog(10_000)
///     .overflow(Overflow::Reject)
///     .max_in_flight_per_consumer(64);
/// assert_eq!(config.name, "payment");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct SubscriptionConfig {
    /// Name, unique within the topic. (Left out of a settings file when empty: a file may
    /// hold one set of settings for several subscriptions, each named in code.)
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "String::is_empty"))]
    pub name: String,
    /// Only messages whose subject matches this pattern are delivered (`orders.*`,
    /// `orders.>`); `None` takes every message of the topic.
    pub filter: Option<String>,
    /// How long a consumer owns a delivery before it is redelivered (extended by
    /// `in_progress`). Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub ack_wait: Duration,
    /// How many handler failures (nack, or a delivery dropped without a verb) a message
    /// survives: after the `max_deliveries`-th failed delivery it is dead-lettered.
    /// Default 5.
    pub max_deliveries: u32,
    /// How many lease expiries (a consumer crashed or hung) a message survives before it is
    /// dead-lettered. Counted apart from handler failures, so a crashing deploy does not burn
    /// a message's retries. Default 5.
    pub max_lease_expiries: u32,
    /// Redelivery delay after the n-th handler failure is `backoff[n - 1]`, the last entry
    /// repeating; empty means redeliver at once. A nack with an explicit delay overrides it.
    /// Default 1 s, 5 s, 30 s (`["1s", "5s", "30s"]` in a settings file).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::vec"))]
    pub backoff: Vec<Duration>,
    /// The most messages the subscription holds (waiting, scheduled and in flight) before
    /// `overflow` applies. Default 100 000.
    pub max_backlog: usize,
    /// What a publish does at `max_backlog`. Default [`Overflow::Wait`].
    pub overflow: Overflow,
    /// The most unacked deliveries one consumer holds at once. Default 1 000.
    pub max_in_flight_per_consumer: usize,
    /// The most dead letters kept; beyond it the oldest is dropped and counted
    /// (`dead_letters_dropped`). Default 10 000.
    pub max_dead_letters: usize,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            filter: None,
            ack_wait: Duration::from_secs(30),
            max_deliveries: 5,
            max_lease_expiries: 5,
            backoff: vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(30)],
            max_backlog: 100_000,
            overflow: Overflow::Wait,
            max_in_flight_per_consumer: 1_000,
            max_dead_letters: 10_000,
        }
    }
}

impl SubscriptionConfig {
    /// Default settings for a subscription called `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Sets [`filter`](Self::filter).
    #[must_use]
    pub fn filter(mut self, pattern: impl Into<String>) -> Self {
        self.filter = Some(pattern.into());
        self
    }

    /// Sets [`ack_wait`](Self::ack_wait).
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Sets [`max_deliveries`](Self::max_deliveries).
    #[must_use]
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }

    /// Sets [`max_lease_expiries`](Self::max_lease_expiries).
    #[must_use]
    pub fn max_lease_expiries(mut self, n: u32) -> Self {
        self.max_lease_expiries = n;
        self
    }

    /// Sets [`backoff`](Self::backoff).
    #[must_use]
    pub fn backoff(mut self, schedule: Vec<Duration>) -> Self {
        self.backoff = schedule;
        self
    }

    /// Sets [`max_backlog`](Self::max_backlog).
    #[must_use]
    pub fn max_backlog(mut self, n: usize) -> Self {
        self.max_backlog = n;
        self
    }

    /// Sets [`overflow`](Self::overflow).
    #[must_use]
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// Sets [`max_in_flight_per_consumer`](Self::max_in_flight_per_consumer).
    #[must_use]
    pub fn max_in_flight_per_consumer(mut self, n: usize) -> Self {
        self.max_in_flight_per_consumer = n;
        self
    }

    /// Sets [`max_dead_letters`](Self::max_dead_letters).
    #[must_use]
    pub fn max_dead_letters(mut self, n: usize) -> Self {
        self.max_dead_letters = n;
        self
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting out of range: an empty `name`, a zero
    /// `ack_wait`, or a zero `max_deliveries`, `max_lease_expiries`, `max_backlog`,
    /// `max_in_flight_per_consumer` or `max_dead_letters`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        ConfigError::require_positive("ack_wait", self.ack_wait)?;
        ConfigError::require_nonzero("max_deliveries", self.max_deliveries)?;
        ConfigError::require_nonzero("max_lease_expiries", self.max_lease_expiries)?;
        ConfigError::require_nonzero("max_backlog", self.max_backlog)?;
        ConfigError::require_nonzero(
            "max_in_flight_per_consumer",
            self.max_in_flight_per_consumer,
        )?;
        ConfigError::require_nonzero("max_dead_letters", self.max_dead_letters)?;
        Ok(())
    }

    /// The redelivery delay after the `failures`-th handler failure: `backoff[failures - 1]`,
    /// the last entry repeating, zero for an empty schedule.
    #[must_use]
    pub fn backoff_for(&self, failures: u32) -> Duration {
        let i = (failures as usize).saturating_sub(1);
        self.backoff.get(i).or(self.backoff.last()).copied().unwrap_or(Duration::ZERO)
    }
}

/// Settings of one topic.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig, TopicConfig};
///
/// let broker = InProcessBroker::<&str>::builder()
///     .topic_defaults(TopicConfig::new().dedup_window(Duration::from_secs(600)).dedup_capacity(10_000))
///     .build();
/// broker.subscribe("orders", SubscriptionConfig::new("billing")).unwrap();
/// broker.try_publish("orders", Message::new("o-1").id("o-1")).unwrap();
/// assert!(broker.try_publish("orders", Message::new("o-1").id("o-1")).unwrap().is_duplicate());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct TopicConfig {
    /// How long a message id is remembered for deduplication. Zero turns deduplication off.
    /// Default 2 minutes.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub dedup_window: Duration,
    /// The most message ids remembered at once; the oldest is forgotten first. Default
    /// 100 000.
    pub dedup_capacity: usize,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self { dedup_window: Duration::from_secs(120), dedup_capacity: 100_000 }
    }
}

impl TopicConfig {
    /// Default settings.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`dedup_window`](Self::dedup_window).
    #[must_use]
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Sets [`dedup_capacity`](Self::dedup_capacity).
    #[must_use]
    pub fn dedup_capacity(mut self, n: usize) -> Self {
        self.dedup_capacity = n;
        self
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A [`ConfigError`] for a zero `dedup_capacity` while deduplication is on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.dedup_window.is_zero() {
            ConfigError::require_nonzero("dedup_capacity", self.dedup_capacity)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_settings_are_named() {
        let base = SubscriptionConfig::new("s");
        assert!(base.validate().is_ok());
        let cases: [(SubscriptionConfig, &str); 7] = [
            (SubscriptionConfig::new(""), "name"),
            (base.clone().ack_wait(Duration::ZERO), "ack_wait"),
            (base.clone().max_deliveries(0), "max_deliveries"),
            (base.clone().max_lease_expiries(0), "max_lease_expiries"),
            (base.clone().max_backlog(0), "max_backlog"),
            (base.clone().max_in_flight_per_consumer(0), "max_in_flight_per_consumer"),
            (base.clone().max_dead_letters(0), "max_dead_letters"),
        ];
        for (config, setting) in cases {
            assert_eq!(config.validate().unwrap_err().setting, setting);
        }
        assert_eq!(
            TopicConfig::new().dedup_capacity(0).validate().unwrap_err().setting,
            "dedup_capacity"
        );
        assert!(
            TopicConfig::new().dedup_window(Duration::ZERO).dedup_capacity(0).validate().is_ok()
        );
    }

    #[test]
    fn backoff_repeats_its_last_step() {
        let c = SubscriptionConfig::new("s")
            .backoff(vec![Duration::from_secs(1), Duration::from_secs(4)]);
        assert_eq!(c.backoff_for(1), Duration::from_secs(1));
        assert_eq!(c.backoff_for(2), Duration::from_secs(4));
        assert_eq!(c.backoff_for(9), Duration::from_secs(4));
        assert_eq!(c.backoff(vec![]).backoff_for(3), Duration::ZERO);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn settings_files_write_durations_with_a_unit() {
        let config = SubscriptionConfig::new("payment")
            .ack_wait(Duration::from_secs(60))
            .backoff(vec![Duration::from_millis(500), Duration::from_secs(1)]);
        let text = serde_json::to_string(&config).unwrap();
        assert!(text.contains(r#""ack_wait":"1m""#), "{text}");
        assert!(text.contains(r#""backoff":["500ms","1s"]"#), "{text}");
        assert_eq!(serde_json::from_str::<SubscriptionConfig>(&text).unwrap(), config);
        // Left-out settings keep their defaults; a bare number is milliseconds.
        let read: SubscriptionConfig =
            serde_json::from_str(r#"{"name": "n", "ack_wait": 1500, "backoff": ["2s"]}"#).unwrap();
        assert_eq!(read.ack_wait, Duration::from_millis(1500));
        assert_eq!(read.backoff_for(3), Duration::from_secs(2));
        assert_eq!(read.max_deliveries, SubscriptionConfig::default().max_deliveries);
        let template = SubscriptionConfig::new("").max_deliveries(2);
        let text = serde_json::to_string(&template).unwrap();
        assert!(!text.contains("name"), "{text}");
        assert_eq!(serde_json::from_str::<SubscriptionConfig>(&text).unwrap(), template);
        let topic: TopicConfig = serde_json::from_str(r#"{"dedup_window": "30s"}"#).unwrap();
        assert_eq!(topic, TopicConfig::new().dedup_window(Duration::from_secs(30)));
    }
}
