//! Snapshots of what a subscription holds and has done.

/// Counts of one subscription, read in one consistent step. (End-to-end latency
/// percentiles come from [`Subscription::latency`](super::Subscription::latency).)
///
/// Gauges (`depth`, `scheduled`, `in_flight`, `dead_letters`) are what it holds now; the
/// other fields count since it was created.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u8>::new();
/// let sub = broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
/// broker.try_publish("t", Message::new(1)).unwrap();
/// broker.try_publish("t", Message::new(2)).unwrap();
/// let _held = sub.consumer().try_receive(1).unwrap();
/// let stats = sub.stats();
/// assert_eq!((stats.published, stats.depth, stats.in_flight), (2, 1, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SubscriptionStats {
    /// Messages waiting to be delivered: ready now, or held behind their ordering key.
    pub depth: usize,
    /// Messages waiting for a time: delayed publishes and nacks with a backoff.
    pub scheduled: usize,
    /// Deliveries out with consumers and not yet settled.
    pub in_flight: usize,
    /// Messages in the dead-letter queue.
    pub dead_letters: usize,
    /// Messages routed to this subscription.
    pub published: u64,
    /// Deliveries made (first deliveries and redeliveries).
    pub delivered: u64,
    /// Deliveries that were a second or later attempt.
    pub redelivered: u64,
    /// Messages acked.
    pub acked: u64,
    /// Handler failures: explicit nacks plus deliveries dropped without a verb.
    pub nacked: u64,
    /// Of `nacked`, the deliveries dropped without a verb.
    pub dropped: u64,
    /// Leases that ran out (consumer crashes), counted apart from handler failures.
    pub lease_expired: u64,
    /// Lease extensions (`in_progress`).
    pub extended: u64,
    /// Messages moved to the dead-letter queue (all reasons).
    pub dead_lettered: u64,
    /// Of `dead_lettered`, those a handler terminated.
    pub terminated: u64,
    /// Of `dead_lettered`, those moved out by the `DeadLetterOldest` overflow policy.
    pub overflowed: u64,
    /// Dead letters dropped because the dead-letter queue was full.
    pub dead_letters_dropped: u64,
    /// Dead letters replayed.
    pub replayed: u64,
    /// Dead letters purged.
    pub purged: u64,
    /// Publishes refused because this subscription was full.
    pub rejected: u64,
}

impl SubscriptionStats {
    /// Messages the subscription holds and has not settled: waiting, scheduled or in flight
    /// (what `max_backlog` bounds).
    #[must_use]
    pub fn held(&self) -> usize {
        self.depth + self.scheduled + self.in_flight
    }
}

/// Counts of one topic.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u8>::new();
/// broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
/// broker.try_publish("t", Message::new(1).id("a")).unwrap();
/// broker.try_publish("t", Message::new(1).id("a")).unwrap();
/// let stats = broker.topic("t").unwrap().stats();
/// assert_eq!((stats.published, stats.duplicates, stats.subscriptions), (1, 1, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TopicStats {
    /// Messages accepted.
    pub published: u64,
    /// Publishes recognised as duplicates.
    pub duplicates: u64,
    /// Accepted messages that matched no subscription.
    pub unrouted: u64,
    /// Subscriptions.
    pub subscriptions: usize,
}
