//! The public handle of a subscription.

use std::sync::Arc;

use levee_core::{Clock, FastClock, LatencySnapshot};

use super::super::config::SubscriptionConfig;
use super::super::core::Verb;
use super::super::dead_letter::{DeadLetter, Select};
use super::super::delivery::{Delivery, Receipt};
use super::super::error::{BatchAckError, BrokerError};
use super::super::nack::Nack;
use super::super::slots::Holder;
use super::super::stats::SubscriptionStats;
use super::consumer::{Consumer, Owner};
use super::shared::SubShared;

/// A subscription to a topic: every message published to the topic (matching its filter)
/// reaches it once; its [`Consumer`]s compete for those messages.
///
/// Cheap to clone (all clones are the same subscription). Also where an operator lists,
/// replays and purges dead letters.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<&str>::new();
/// // Two subscriptions of one topic each get every message; consumers of one compete.
/// let billing = broker.subscribe("orders", SubscriptionConfig::new("billing")).unwrap();
/// let shipping = broker.subscribe("orders", SubscriptionConfig::new("shipping")).unwrap();
/// broker.try_publish("orders", Message::new("order 1")).unwrap();
/// assert_eq!((billing.stats().depth, shipping.stats().depth), (1, 1));
/// assert_eq!(billing.name(), "billing");
/// ```
pub struct Subscription<T, C: Clock = FastClock> {
    pub(crate) shared: Arc<SubShared<T, C>>,
}

impl<T, C: Clock> Clone for Subscription<T, C> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<T, C: Clock> std::fmt::Debug for Subscription<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.shared.topic)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<T, C: Clock> Subscription<T, C> {
    /// The subscription's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The topic it subscribes to.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> SubscriptionConfig {
        self.shared.config()
    }

    /// A new consumer: consumers of one subscription share its messages (each message goes to
    /// one of them), each holding at most `max_in_flight_per_consumer` unsettled deliveries.
    #[must_use]
    pub fn consumer(&self) -> Consumer<T, C> {
        let index = self.shared.lock().add_consumer();
        Consumer { owner: Arc::new(Owner { sub: Arc::clone(&self.shared), index }) }
    }

    /// What the subscription holds and has done.
    #[must_use]
    pub fn stats(&self) -> SubscriptionStats {
        self.shared.stats()
    }

    /// End-to-end latency of acked messages: from the moment each became deliverable (its
    /// publish, or the end of its delay) to its ack, on the broker's clock.
    #[must_use]
    pub fn latency(&self) -> LatencySnapshot {
        self.shared.latency.snapshot()
    }

    /// Applies due timers and expired leases now. Receives do this themselves; call it to
    /// bring statistics and dead letters up to date when nobody is receiving.
    pub fn tick(&self) {
        self.shared.tick();
    }

    /// A copy of the dead-letter queue, oldest first.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter<T>> {
        self.shared.lock().dead_letters()
    }

    /// Puts the selected dead letters back for delivery, oldest first, as fresh messages
    /// (their failure and expiry counts start again; history and attempt numbers go on).
    /// Stops when the backlog is full; returns how many were replayed.
    pub fn replay(&self, select: impl Into<Select>) -> usize {
        let select = select.into();
        let (n, events) = {
            let mut core = self.shared.lock();
            let now = core.now();
            let mut ingress = self.shared.ingress.lock();
            let held = core.held() + ingress.queue.len();
            let n = core.replay(&select, now, self.shared.max_backlog.saturating_sub(held));
            ingress.core_held = core.held();
            drop(ingress);
            (n, core.take_events())
        };
        self.shared.emit(events);
        if n > 0 {
            self.shared.wake_receivers();
        }
        n
    }

    /// Deletes the selected dead letters; returns how many.
    pub fn purge(&self, select: impl Into<Select>) -> usize {
        let select = select.into();
        let (n, events) = {
            let mut core = self.shared.lock();
            let n = core.purge(&select);
            (n, core.take_events())
        };
        self.shared.emit(events);
        n
    }

    /// A receipt's verb: not the delivery handle's own, so the handle keeps its slot (and
    /// learns what happened when it comes back).
    fn settle(&self, receipt: Receipt, verb: Verb) -> Result<(), BrokerError> {
        self.check(&receipt)?;
        self.shared.settle(receipt.slot, receipt.token, receipt.seq, verb, Holder::Other)
    }

    fn check(&self, receipt: &Receipt) -> Result<(), BrokerError> {
        if receipt.subscription == self.shared.id {
            Ok(())
        } else {
            Err(BrokerError::WrongSubscription {
                subscription: self.shared.name.to_string(),
                seq: receipt.seq,
            })
        }
    }

    /// Acks every delivery in `batch` (draining it) under one lock acquisition: the fast way
    /// to ack what one receive returned. Deliveries of other subscriptions are acked through
    /// their own.
    ///
    /// # Errors
    /// [`BatchAckError`] listing the deliveries that could not be acked (already settled, or
    /// lease expired); all others were acked.
    pub fn ack_all(&self, batch: &mut Vec<Delivery<T, C>>) -> Result<usize, BatchAckError> {
        self.shared.ack_all(batch)
    }

    /// Acks the delivery `receipt` stands for.
    ///
    /// # Errors
    /// [`BrokerError::WrongSubscription`] for a receipt from another subscription;
    /// [`AlreadySettled`](BrokerError::AlreadySettled) or
    /// [`LeaseExpired`](BrokerError::LeaseExpired) when the delivery is no longer out, as
    /// for [`Delivery::ack`], as long as the [`Delivery`] it came from is alive;
    /// [`NotInFlight`](BrokerError::NotInFlight) when that delivery was settled or dropped
    /// and the broker has since reused its slot, so it no longer knows which.
    pub fn ack(&self, receipt: Receipt) -> Result<(), BrokerError> {
        self.settle(receipt, Verb::Ack)
    }

    /// Nacks the delivery `receipt` stands for (see [`Delivery::nack`]).
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn nack(&self, receipt: Receipt, nack: Nack) -> Result<(), BrokerError> {
        self.settle(receipt, Verb::Nack(nack))
    }

    /// Terminates the delivery `receipt` stands for (see [`Delivery::term`]).
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn term(&self, receipt: Receipt, reason: impl Into<String>) -> Result<(), BrokerError> {
        self.settle(receipt, Verb::Term(reason.into()))
    }

    /// Extends the lease of the delivery `receipt` stands for; returns the new deadline.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn in_progress(&self, receipt: Receipt) -> Result<u64, BrokerError> {
        self.check(&receipt)?;
        self.shared.extend(receipt.slot, receipt.token, receipt.seq)
    }
}
