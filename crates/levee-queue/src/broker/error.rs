//! The broker's error type.

use levee_core::ConfigError;

/// Why a broker operation was refused. Every refusal is a value; nothing in the broker
/// panics on bad input, and a refused operation changes nothing (no message is lost or
/// delivered twice because of it).
///
/// ```
/// use levee_queue::broker::{BrokerError, InProcessBroker, Message};
///
/// let broker = InProcessBroker::<u8>::new();
/// broker.close();
/// let err = broker.try_publish("orders", Message::new(1)).unwrap_err().error;
/// assert!(matches!(err, BrokerError::Closed));
/// assert_eq!(err.to_string(), "broker is closed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker was closed: it accepts no publish and no receive. Deliveries already out
    /// can still be settled.
    #[error("broker is closed")]
    Closed,
    /// Publishing to a topic nobody created (topics are created by `create_topic` or by the
    /// first `subscribe`).
    #[error("no topic named `{topic}`")]
    NoSuchTopic {
        /// The topic asked for.
        topic: String,
    },
    /// A subscription's backlog is at its bound and its overflow policy refuses the message
    /// (or every held message is in flight, so none can be dead-lettered to make room).
    /// Nothing was published to any subscription.
    #[error("subscription `{subscription}` is full ({capacity} messages held)")]
    Full {
        /// The full subscription.
        subscription: String,
        /// Its `max_backlog`.
        capacity: usize,
    },
    /// A setting or argument is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `subscribe` named an existing subscription with different settings.
    #[error("subscription `{subscription}` already exists with different settings")]
    SubscriptionMismatch {
        /// The subscription's name.
        subscription: String,
    },
    /// A subject filter is malformed.
    #[error("invalid subject filter `{filter}`: {reason}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A published subject is malformed.
    #[error("invalid subject `{subject}`: {reason}")]
    InvalidSubject {
        /// The subject as given.
        subject: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The delivery was already acked, nacked or terminated.
    #[error("delivery of message {seq} was already settled")]
    AlreadySettled {
        /// The message's sequence number.
        seq: u64,
    },
    /// The delivery's lease ran out before this verb arrived: the message was (or will be)
    /// redelivered or dead-lettered, so this consumer no longer owns it.
    #[error("lease on message {seq} expired; it was handed on")]
    LeaseExpired {
        /// The message's sequence number.
        seq: u64,
    },
    /// A [`Receipt`](super::Receipt) presented after its delivery was settled or dropped, once
    /// the broker has reused the delivery's slot: it was settled, or its lease expired, and the
    /// broker no longer remembers which. Only verbs through a receipt return it; a
    /// [`Delivery`](super::Delivery)'s own verbs always learn how it ended.
    #[error("delivery of message {seq} is no longer in flight")]
    NotInFlight {
        /// The message's sequence number.
        seq: u64,
    },
    /// The durable broker's log failed (a write or fsync error): nothing more is confirmed
    /// until the broker is reopened, which recovers what reached the disk. An operation that
    /// gets this error may or may not have been recorded.
    #[error("durable log failed: {reason}")]
    Storage {
        /// The underlying error.
        reason: String,
    },
    /// The durable broker's log is at its disk budget and the publish was refused (or could
    /// not wait). Acks let retention free space.
    #[error("durable log is full ({used} of {budget} bytes)")]
    DiskFull {
        /// Bytes the log takes.
        used: u64,
        /// Its budget for publishes.
        budget: u64,
    },
    /// The durable broker was opened read-only (it found corruption and was told to open
    /// read-only): it lists and reports, and refuses every change.
    #[error("broker is read-only")]
    ReadOnly,
    /// A receipt was presented to a subscription that did not deliver it.
    #[error("receipt of message {seq} was not issued by subscription `{subscription}`")]
    WrongSubscription {
        /// The subscription the receipt was presented to.
        subscription: String,
        /// The message's sequence number.
        seq: u64,
    },
    /// A networked broker's server could not be reached, or did not answer in time. Whether
    /// the operation took effect is unknown: retry it (a publish with a message id is
    /// deduplicated, so the retry is safe).
    #[error("broker unavailable: {reason}")]
    Unavailable {
        /// What failed (connection refused, timed out, ...).
        reason: String,
    },
    /// A networked broker's server refused the operation for a reason of its own (not one of
    /// the refusals above).
    #[error("broker refused: {reason}")]
    Backend {
        /// The server's reason.
        reason: String,
    },
    /// A payload could not be encoded for, or decoded from, a networked broker.
    #[error("payload codec: {reason}")]
    Codec {
        /// What the codec reported.
        reason: String,
    },
}

impl BrokerError {
    /// True for refusals that may succeed if retried later (a full backlog, a full disk, an
    /// unreachable server).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Full { .. } | Self::DiskFull { .. } | Self::Unavailable { .. })
    }
}

/// Some deliveries of a batch ack could not be acked; the rest were.
///
/// ```
/// use levee_queue::broker::{BrokerError, InProcessBroker, Message, SubscriptionConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let broker = InProcessBroker::<u32>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).unwrap();
/// for n in 0..3 {
///     broker.publish("orders", Message::new(n)).await.unwrap();
/// }
/// let consumer = sub.consumer();
/// let mut batch = consumer.try_receive(3).unwrap();
/// let seq = batch[1].seq();
/// batch[1].ack().unwrap(); // settled on its own first
///
/// let err = consumer.ack_all(&mut batch).unwrap_err();
/// assert_eq!(err.acked, 2);
/// assert_eq!(err.failed, vec![(seq, BrokerError::AlreadySettled { seq })]);
/// assert!(batch.is_empty()); // the batch is drained either way
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of {} deliveries could not be acked{}", failed.len(), failed.len() + acked, first_reason(failed))]
pub struct BatchAckError {
    /// How many were acked.
    pub acked: usize,
    /// The others: sequence number and why (never empty).
    pub failed: Vec<(u64, BrokerError)>,
}

fn first_reason(failed: &[(u64, BrokerError)]) -> String {
    failed.first().map(|(_, e)| format!(" (first: {e})")).unwrap_or_default()
}
