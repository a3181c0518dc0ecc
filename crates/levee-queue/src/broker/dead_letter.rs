//! Dead letters: messages a subscription gave up on, with the reason and their history.

use std::sync::Arc;
use std::time::Duration;

use super::message::StoredMessage;

/// How one delivery attempt ended (other than by an ack).
///
/// ```
/// use levee_queue::broker::{AttemptOutcome, InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u8>::new();
/// let sub = broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
/// broker.try_publish("t", Message::new(1)).unwrap();
/// sub.consumer().try_receive(1).unwrap()[0].term("poison").unwrap();
/// let history = &sub.dead_letters()[0].history;
/// assert!(matches!(history[0].outcome, AttemptOutcome::Terminated { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
pub enum AttemptOutcome {
    /// The handler nacked it; redelivery was due after `delay`.
    Nacked {
        /// The redelivery delay that was applied.
        delay: Duration,
        /// The reason the nack gave, if any ([`Nack::reason`](super::Nack::reason)).
        reason: Option<String>,
    },
    /// The delivery was dropped without a verb (counted as a handler failure).
    Dropped,
    /// The lease ran out: the consumer crashed, hung or forgot the message.
    LeaseExpired,
    /// The handler terminated it.
    Terminated {
        /// The handler's reason.
        reason: String,
    },
}

/// One delivery attempt that did not end in an ack.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u8>::new();
/// let sub = broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
/// broker.try_publish("t", Message::new(1)).unwrap();
/// sub.consumer().try_receive(1).unwrap()[0].term("poison").unwrap();
/// let record = &sub.dead_letters()[0].history[0];
/// assert_eq!(record.attempt, 1);
/// assert_eq!(record.reason(), Some("poison"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AttemptRecord {
    /// Which delivery of the message this was (1 for the first).
    pub attempt: u32,
    /// When it was delivered (broker clock, nanoseconds).
    pub delivered_at: u64,
    /// When it ended.
    pub ended_at: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

impl AttemptRecord {
    /// The reason the handler gave for this failure: a nack's reason or a term's. `None` for
    /// a nack without one, a drop and a lease expiry.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        match &self.outcome {
            AttemptOutcome::Nacked { reason, .. } => reason.as_deref(),
            AttemptOutcome::Terminated { reason } => Some(reason),
            AttemptOutcome::Dropped | AttemptOutcome::LeaseExpired => None,
        }
    }
}

/// Why a message was dead-lettered.
///
/// ```
/// use levee_queue::broker::{DeadLetterReason, InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<&str>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("payment")).unwrap();
/// broker.try_publish("orders", Message::new("bad order")).unwrap();
/// let delivery = sub.consumer().try_receive(1).unwrap().remove(0);
/// delivery.term("unknown product").unwrap(); // can never succeed
/// assert!(matches!(sub.dead_letters()[0].reason, DeadLetterReason::Terminated { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// Its handler failed `max_deliveries` times.
    MaxDeliveries {
        /// Handler failures (nacks and drops).
        failures: u32,
    },
    /// Its lease expired `max_lease_expiries` times.
    MaxLeaseExpiries {
        /// Lease expiries.
        expiries: u32,
    },
    /// A handler terminated it with this reason.
    Terminated {
        /// The handler's reason.
        reason: String,
    },
    /// It was at the head of the ready queue of a full subscription whose policy is
    /// [`Overflow::DeadLetterOldest`](super::Overflow::DeadLetterOldest).
    Overflow,
}

/// A message in a subscription's dead-letter queue.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, Select, SubscriptionConfig};
///
/// let broker = InProcessBroker::<&str>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("payment")).unwrap();
/// broker.try_publish("orders", Message::new("order 9")).unwrap();
/// sub.consumer().try_receive(1).unwrap()[0].term("card expired").unwrap();
/// let dead = sub.dead_letters();
/// assert_eq!((dead[0].topic.as_ref(), *dead[0].message.payload()), ("orders", "order 9"));
/// assert_eq!(sub.replay(Select::All), 1); // an operator sends it round again
/// ```
#[derive(Debug)]
pub struct DeadLetter<T> {
    /// The message itself.
    pub message: Arc<StoredMessage<T>>,
    /// The topic it was published to.
    pub topic: Arc<str>,
    /// Why it is here.
    pub reason: DeadLetterReason,
    /// Every attempt that did not end in an ack, oldest first (at most the last 64).
    pub history: Vec<AttemptRecord>,
    /// Deliveries made in all (including the failed ones in `history`).
    pub attempts: u32,
    /// When it was dead-lettered (broker clock, nanoseconds).
    pub dead_lettered_at: u64,
}

impl<T> Clone for DeadLetter<T> {
    fn clone(&self) -> Self {
        Self {
            message: Arc::clone(&self.message),
            topic: Arc::clone(&self.topic),
            reason: self.reason.clone(),
            history: self.history.clone(),
            attempts: self.attempts,
            dead_lettered_at: self.dead_lettered_at,
        }
    }
}

impl<T> DeadLetter<T> {
    /// The message's sequence number: what [`replay`](super::Subscription::replay) and
    /// [`purge`](super::Subscription::purge) take.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.message.seq()
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &T {
        self.message.payload()
    }

    /// The reason the last failed attempt gave (see [`AttemptRecord::reason`]): what an
    /// operator reads first. `None` when the last attempt gave none (a drop, a lease expiry, a
    /// nack without a reason) or the message was never delivered.
    #[must_use]
    pub fn last_reason(&self) -> Option<&str> {
        self.history.last().and_then(AttemptRecord::reason)
    }

    /// The message's subject (the topic's name unless it was published with one).
    #[must_use]
    pub fn subject(&self) -> &str {
        self.message.subject().unwrap_or(&self.topic)
    }
}

/// Which dead letters an operator acts on.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, Select, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u8>::new();
/// let sub = broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
/// for n in [1, 2] {
///     broker.try_publish("t", Message::new(n)).unwrap();
/// }
/// for d in sub.consumer().try_receive(2).unwrap() {
///     d.term("bad").unwrap();
/// }
/// let first = sub.dead_letters()[0].seq();
/// assert_eq!(sub.purge(Select::Seqs(vec![first])), 1);
/// assert_eq!(sub.replay(Select::All), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Every dead letter.
    All,
    /// The ones with these sequence numbers (unknown ones are ignored).
    Seqs(Vec<u64>),
}

impl Select {
    /// True when the dead letter with sequence number `seq` is selected.
    #[must_use]
    pub fn contains(&self, seq: u64) -> bool {
        match self {
            Self::All => true,
            Self::Seqs(seqs) => seqs.contains(&seq),
        }
    }
}

impl From<u64> for Select {
    fn from(seq: u64) -> Self {
        Self::Seqs(vec![seq])
    }
}

impl From<Vec<u64>> for Select {
    fn from(seqs: Vec<u64>) -> Self {
        Self::Seqs(seqs)
    }
}

impl From<&[u64]> for Select {
    fn from(seqs: &[u64]) -> Self {
        Self::Seqs(seqs.to_vec())
    }
}
