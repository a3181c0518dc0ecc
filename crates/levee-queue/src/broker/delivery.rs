//! A leased message and the four verbs that settle it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use levee_core::{Clock, FastClock};

use super::core::{Grant, Verb};
use super::error::BrokerError;
use super::message::{Headers, StoredMessage};
use super::nack::Nack;
use super::slots::Holder;
use super::subscription::Owner;

/// A message leased to one consumer until its ack deadline.
///
/// Settle it with one verb: [`ack`](Self::ack) (done), [`nack`](Self::nack) (failed, try
/// again later), [`term`](Self::term) (failed for good: dead-letter now); extend the lease
/// with [`in_progress`](Self::in_progress) while working. A delivery dropped without a verb
/// is a nack (counted as `dropped`), never a lost message; one not settled before its
/// deadline is redelivered (counted as a lease expiry, apart from handler failures).
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{InProcessBroker, Message, Nack, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u32>::new();
/// let sub = broker.subscribe("jobs", SubscriptionConfig::new("workers")).unwrap();
/// broker.try_publish("jobs", Message::new(1)).unwrap();
/// broker.try_publish("jobs", Message::new(2)).unwrap();
/// let mut batch = sub.consumer().try_receive(2).unwrap();
/// let second = batch.pop().unwrap();
/// let first = batch.pop().unwrap();
/// assert_eq!((*first.payload(), first.attempt()), (1, 1));
/// first.ack().unwrap(); // handled: gone
/// second.nack(Nack::new().delay(Duration::from_secs(1)).reason("db busy")).unwrap(); // again later
/// assert_eq!(sub.stats().acked, 1);
/// ```
pub struct Delivery<T, C: Clock = FastClock> {
    pub(crate) owner: Arc<Owner<T, C>>,
    pub(crate) msg: Arc<StoredMessage<T>>,
    pub(crate) slot: u32,
    pub(crate) token: u64,
    attempt: u32,
    first_delivered: u64,
    deadline: u64,
    pub(crate) settled: AtomicBool,
    /// Set by a batch ack that succeeded, so latency is recorded after the lock is released.
    pub(crate) acked: bool,
}

/// A detached handle to a delivery: `Copy`, so it can travel to whatever settles the
/// delivery later through [`Subscription::ack`](super::Subscription::ack) and friends.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<String>::new();
/// let sub = broker.subscribe("mail", SubscriptionConfig::new("sender")).unwrap();
/// broker.try_publish("mail", Message::new("welcome".to_string())).unwrap();
/// let delivery = sub.consumer().try_receive(1).unwrap().remove(0);
/// let receipt = delivery.receipt(); // small and `Copy`: settle later without the payload
/// drop(delivery.payload().clone());
/// sub.ack(receipt).unwrap();
/// # drop(delivery);
/// assert_eq!(sub.stats().acked, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub(crate) subscription: u64,
    pub(crate) slot: u32,
    pub(crate) token: u64,
    pub(crate) seq: u64,
}

impl Receipt {
    /// The sequence number of the message.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl<T, C: Clock> fmt::Debug for Delivery<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subscription", &self.owner.sub.name)
            .field("seq", &self.msg.seq())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl<T, C: Clock> Delivery<T, C> {
    pub(crate) fn new(owner: Arc<Owner<T, C>>, grant: Grant<T>) -> Self {
        Self {
            owner,
            msg: grant.msg,
            slot: grant.slot,
            token: grant.token,
            attempt: grant.attempt,
            first_delivered: grant.first_delivered,
            deadline: grant.deadline,
            settled: AtomicBool::new(false),
            acked: false,
        }
    }

    fn settle(&self, verb: Verb) -> Result<(), BrokerError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(BrokerError::AlreadySettled { seq: self.msg.seq() });
        }
        self.owner.sub.settle(self.slot, self.token, self.msg.seq(), verb, Holder::Handle)
    }

    /// The message was handled: it will not be delivered again.
    ///
    /// # Errors
    /// Exactly two, however long ago the delivery ended and however many deliveries came
    /// and went since:
    /// [`AlreadySettled`](BrokerError::AlreadySettled) after another verb on this delivery
    /// (or through its [`receipt`](Self::receipt));
    /// [`LeaseExpired`](BrokerError::LeaseExpired) when the lease ran out and the message was
    /// handed on (the work may be done twice: handlers should be idempotent, or extend the
    /// lease with [`in_progress`](Self::in_progress)). A delivery never gets
    /// [`NotInFlight`](BrokerError::NotInFlight): the broker keeps its slot until the
    /// delivery is done with it.
    pub fn ack(&self) -> Result<(), BrokerError> {
        self.settle(Verb::Ack)
    }

    /// The handler failed: redeliver after [`nack.delay`](Nack::delay), or after the
    /// subscription's backoff for this failure when it has none; keep
    /// [`nack.reason`](Nack::reason) in the attempt history. After `max_deliveries` failures
    /// the message is dead-lettered.
    ///
    /// ```
    /// # use levee_queue::broker::{InProcessBroker, Message, Nack, SubscriptionConfig};
    /// # let broker = InProcessBroker::<u32>::new();
    /// # let sub = broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
    /// # let consumer = sub.consumer();
    /// # broker.try_publish("t", Message::new(1)).unwrap();
    /// let delivery = consumer.try_receive(1).unwrap().remove(0);
    /// delivery.nack(Nack::new().reason("inventory service unavailable")).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn nack(&self, nack: Nack) -> Result<(), BrokerError> {
        self.settle(Verb::Nack(nack))
    }

    /// The message can never be handled: dead-letter it now with `reason`.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn term(&self, reason: impl Into<String>) -> Result<(), BrokerError> {
        self.settle(Verb::Term(reason.into()))
    }

    /// Still working: the lease is extended to a full `ack_wait` from now. Returns the new
    /// deadline on the broker's clock.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn in_progress(&self) -> Result<u64, BrokerError> {
        if self.settled.load(Ordering::Acquire) {
            return Err(BrokerError::AlreadySettled { seq: self.msg.seq() });
        }
        self.owner.sub.extend(self.slot, self.token, self.msg.seq())
    }

    /// The lease deadline (broker clock, nanoseconds), following `in_progress` extensions.
    /// `None` once settled or expired.
    #[must_use]
    pub fn deadline(&self) -> Option<u64> {
        if self.settled.load(Ordering::Acquire) {
            return None;
        }
        self.owner.sub.lock().deadline_of(self.slot, self.token).ok()
    }

    /// The deadline this delivery was granted with.
    #[must_use]
    pub fn initial_deadline(&self) -> u64 {
        self.deadline
    }

    /// A detached handle for settling through the subscription. Settling through it makes
    /// this delivery's own verbs fail with `AlreadySettled`; dropping this delivery then does
    /// nothing. Settle through the receipt while the delivery is alive: dropping an unsettled
    /// delivery nacks it as always, and a receipt presented after its delivery is gone may
    /// get [`NotInFlight`](BrokerError::NotInFlight) (see
    /// [`Subscription::ack`](super::Subscription::ack)).
    #[must_use]
    pub fn receipt(&self) -> Receipt {
        Receipt {
            subscription: self.owner.sub.id,
            slot: self.slot,
            token: self.token,
            seq: self.msg.seq(),
        }
    }
}

impl<T, C: Clock> Delivery<T, C> {
    /// The message's sequence number in its topic.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.msg.seq()
    }

    /// The deduplication id it was published with, if any.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.msg.message_id()
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &T {
        self.msg.payload()
    }

    /// The headers.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        self.msg.headers()
    }

    /// The subject.
    #[must_use]
    pub fn subject(&self) -> &str {
        self.msg.subject().unwrap_or(&self.owner.sub.topic)
    }

    /// The ordering key, if any.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.msg.key()
    }

    /// Which delivery of this message this is: 1 the first time.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the message was first delivered to this subscription (broker clock, nanoseconds).
    #[must_use]
    pub fn first_delivered(&self) -> u64 {
        self.first_delivered
    }

    /// The whole stored message (shared, cheap to clone).
    #[must_use]
    pub fn message(&self) -> &Arc<StoredMessage<T>> {
        &self.msg
    }

    /// The subscription's name.
    #[must_use]
    pub fn subscription(&self) -> &str {
        &self.owner.sub.name
    }
}

impl<T, C: Clock> Drop for Delivery<T, C> {
    fn drop(&mut self) {
        if !*self.settled.get_mut() {
            // A delivery dropped without a verb is a handler failure, not a loss. Stale
            // (expired meanwhile) is fine: the message was already handed on.
            let _ = self.owner.sub.settle_dropped(self.slot, self.token);
        }
    }
}
