//! Events a broker reports to its listeners.

use std::sync::Arc;
use std::time::Duration;

use super::dead_letter::DeadLetterReason;

/// Something notable a broker did. Listeners get these on the thread that caused them, after
/// the subscription's lock is released (a listener may call back into the broker).
///
/// Per-message successes (publish, deliver, ack) are counted in the stats, not reported here.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_queue::broker::{BrokerEvent, InProcessBroker, Message, Nack, SubscriptionConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let broker = InProcessBroker::<&str>::builder()
///     .listener(move |e: &BrokerEvent| sink.lock().unwrap().push(e.clone()))
///     .build();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).unwrap();
/// broker.publish("orders", Message::new("order 1")).await.unwrap();
/// let batch = sub.consumer().try_receive(1).unwrap();
/// batch[0].nack(Nack::new().reason("card declined")).unwrap();
///
/// assert!(matches!(seen.lock().unwrap()[..], [BrokerEvent::Nacked { .. }]));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// A publish was recognised as a duplicate and not delivered again.
    Duplicate {
        /// The topic.
        topic: Arc<str>,
        /// The duplicated message id.
        message_id: String,
        /// The sequence number of the original.
        original_seq: u64,
    },
    /// A publish was refused because a subscription was full.
    Rejected {
        /// The full subscription.
        subscription: Arc<str>,
    },
    /// A handler failed (nack or drop); the message is due again after `delay`.
    Nacked {
        /// The subscription.
        subscription: Arc<str>,
        /// The message.
        seq: u64,
        /// The attempt that failed.
        attempt: u32,
        /// The redelivery delay.
        delay: Duration,
    },
    /// A lease ran out: the consumer is presumed dead and the message handed on.
    LeaseExpired {
        /// The subscription.
        subscription: Arc<str>,
        /// The message.
        seq: u64,
        /// The attempt whose lease expired.
        attempt: u32,
    },
    /// A message went to the dead-letter queue.
    DeadLettered {
        /// The subscription.
        subscription: Arc<str>,
        /// The message.
        seq: u64,
        /// Why.
        reason: DeadLetterReason,
    },
    /// The dead-letter queue was full: its oldest entry was dropped for good.
    DeadLetterDropped {
        /// The subscription.
        subscription: Arc<str>,
        /// The dropped message.
        seq: u64,
    },
    /// Dead letters were put back into the subscription.
    Replayed {
        /// The subscription.
        subscription: Arc<str>,
        /// How many.
        count: usize,
    },
    /// Dead letters were deleted.
    Purged {
        /// The subscription.
        subscription: Arc<str>,
        /// How many.
        count: usize,
    },
    /// The broker was closed.
    Closed,
}
