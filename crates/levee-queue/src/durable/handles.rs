//! Handles of the durable broker: subscriptions, consumers, deliveries; and its
//! [`Broker`] implementation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use levee_core::{Clock, FastClock};

use super::broker::{DurableBroker, SubWake};
use super::codec::Codec;
use crate::broker::core::{Grant, Settled, Verb};
use crate::broker::message::StoredMessage;
use crate::broker::slots::Holder;
use crate::broker::subscription::stale_error;
use crate::broker::{
    Broker, BrokerDelivery, BrokerError, DeadLetter, Headers, Message, Nack, Publish, Select,
    SubscriptionConfig, SubscriptionStats,
};

fn gone(name: &str) -> BrokerError {
    BrokerError::NoSuchTopic { topic: format!("(subscription `{name}` was removed)") }
}

/// A subscription of a [`DurableBroker`]: every message published to its topic (matching
/// its filter) reaches it once; its consumers compete for them. Cheap to clone.
///
/// ```
/// use levee_queue::broker::{Message, Select, SubscriptionConfig};
/// use levee_queue::durable::{DurableBroker, DurableSettings};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).await.unwrap();
/// broker.publish("orders", Message::new("bad order".to_string())).await.unwrap();
///
/// let batch = sub.consumer().unwrap().receive(1).await.unwrap();
/// batch[0].term("no such customer").await.unwrap(); // dead-lettered, on disk
/// assert_eq!(sub.dead_letters()[0].last_reason(), Some("no such customer"));
/// assert_eq!(sub.replay(Select::All).await.unwrap(), 1); // back for delivery
/// assert_eq!(sub.stats().depth, 1);
/// broker.shutdown();
/// # });
/// ```
pub struct DurableSubscription<T, C: Clock = FastClock> {
    pub(crate) broker: DurableBroker<T, C>,
    pub(crate) id: u32,
    pub(crate) topic: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) wake: Arc<SubWake>,
}

impl<T, C: Clock> Clone for DurableSubscription<T, C> {
    fn clone(&self) -> Self {
        Self {
            broker: self.broker.clone(),
            id: self.id,
            topic: Arc::clone(&self.topic),
            name: Arc::clone(&self.name),
            wake: Arc::clone(&self.wake),
        }
    }
}

impl<T, C: Clock> std::fmt::Debug for DurableSubscription<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableSubscription")
            .field("topic", &self.topic)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T: Codec, C: Clock> DurableSubscription<T, C> {
    /// The subscription's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic it subscribes to.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its settings (`None` once removed).
    #[must_use]
    pub fn config(&self) -> Option<SubscriptionConfig> {
        self.broker.inner.state.lock().subs.get(&self.id).map(|s| s.config.clone())
    }

    /// What it holds and has done since it was created, across restarts: the gauges
    /// (`depth`, `scheduled`, `in_flight`, `dead_letters`) are rebuilt from the log; the
    /// counters are recorded in it when the broker shuts down or is dropped, when
    /// compaction runs, and by the background thread at most once a second when they
    /// changed, so after a crash they are as of the last such record (they may lag, never
    /// run ahead).
    #[must_use]
    pub fn stats(&self) -> SubscriptionStats {
        let state = self.broker.inner.state.lock();
        state.subs.get(&self.id).map_or_else(SubscriptionStats::default, |s| {
            let mut stats = s.core.stats();
            stats.rejected = s.rejected;
            stats
        })
    }

    /// A new consumer.
    ///
    /// # Errors
    /// [`BrokerError::Closed`]; an error when the subscription was removed.
    pub fn consumer(&self) -> Result<DurableConsumer<T, C>, BrokerError> {
        if self.broker.is_closed() {
            return Err(BrokerError::Closed);
        }
        let mut state = self.broker.inner.state.lock();
        let sub = state.subs.get_mut(&self.id).ok_or_else(|| gone(&self.name))?;
        let index = sub.core.add_consumer();
        Ok(DurableConsumer { sub: self.clone(), index })
    }

    /// A copy of the dead-letter queue, oldest first.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter<T>> {
        let state = self.broker.inner.state.lock();
        state.subs.get(&self.id).map_or_else(Vec::new, |s| s.core.dead_letters())
    }

    /// Puts the selected dead letters back for delivery (durably), oldest first, as far as
    /// the backlog has room; returns how many.
    ///
    /// # Errors
    /// [`BrokerError::ReadOnly`], [`BrokerError::Storage`].
    pub async fn replay(&self, select: impl Into<Select>) -> Result<usize, BrokerError> {
        let select = select.into();
        self.operator(|sub, now| {
            let room = sub.config.max_backlog.saturating_sub(sub.core.held());
            sub.core.replay(&select, now, room)
        })
        .await
    }

    /// Deletes the selected dead letters (durably); returns how many.
    ///
    /// # Errors
    /// [`BrokerError::ReadOnly`], [`BrokerError::Storage`].
    pub async fn purge(&self, select: impl Into<Select>) -> Result<usize, BrokerError> {
        let select = select.into();
        self.operator(|sub, _| sub.core.purge(&select)).await
    }

    async fn operator(
        &self,
        f: impl FnOnce(&mut super::broker::SubState<T>, u64) -> usize,
    ) -> Result<usize, BrokerError> {
        let inner = &self.broker.inner;
        inner.writable()?;
        let now = inner.now();
        let (n, end, events) = {
            let mut state = inner.state.lock();
            let sub = state.subs.get_mut(&self.id).ok_or_else(|| gone(&self.name))?;
            let n = f(sub, now);
            let events = sub.core.take_events();
            (n, state.flush(&inner.log, self.id)?, events)
        };
        inner.emit(events);
        self.wake.ready.notify_waiters();
        inner.confirm(end).await?;
        Ok(n)
    }

    /// Settles a delivery: applies `verb` and records it; returns the position to wait for.
    fn settle(&self, slot: u32, token: u64, seq: u64, verb: Verb) -> Result<u64, BrokerError> {
        let inner = &self.broker.inner;
        inner.writable()?;
        let now = inner.now();
        let (end, events) = {
            let mut state = inner.state.lock();
            let sub = state.subs.get_mut(&self.id).ok_or_else(|| gone(&self.name))?;
            let settled = sub
                .core
                .settle(slot, token, verb, Holder::Handle, now)
                .map_err(|s| stale_error(s, seq))?;
            debug_assert!(matches!(settled, Settled::Acked { .. } | Settled::Done));
            let events = sub.core.take_events();
            (state.flush(&inner.log, self.id)?, events)
        };
        inner.emit(events);
        self.wake.ready.notify_waiters();
        self.wake.room.notify_waiters();
        Ok(end)
    }
}

/// One of a durable subscription's competing consumers.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{Message, SubscriptionConfig};
/// use levee_queue::durable::{DurableBroker, DurableSettings};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<u64>::open(dir.path(), DurableSettings::new()).unwrap();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).await.unwrap();
/// for n in 0..3 {
///     broker.publish("orders", Message::new(n)).await.unwrap();
/// }
/// let consumer = sub.consumer().unwrap(); // competes with the subscription's other consumers
/// let mut batch = consumer.receive(10).await.unwrap();
/// assert_eq!(batch.len(), 3);
/// assert_eq!(consumer.ack_all(&mut batch).await.unwrap(), 3); // one log record for all three
/// let none = consumer.receive_timeout(10, Some(Duration::from_millis(1))).await.unwrap();
/// assert!(none.is_empty());
/// broker.shutdown();
/// # });
/// ```
pub struct DurableConsumer<T: Codec, C: Clock = FastClock> {
    sub: DurableSubscription<T, C>,
    index: u32,
}

impl<T: Codec, C: Clock> std::fmt::Debug for DurableConsumer<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableConsumer")
            .field("subscription", &self.sub.name)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<T: Codec, C: Clock> Drop for DurableConsumer<T, C> {
    fn drop(&mut self) {
        let mut state = self.sub.broker.inner.state.lock();
        if let Some(s) = state.subs.get_mut(&self.sub.id) {
            s.core.remove_consumer(self.index);
        }
    }
}

/// Forgets deliveries whose receive was cancelled while waiting for the log: they stay
/// leased and come back when their lease expires, as for a consumer that vanished.
struct Forget<T: Codec, C: Clock>(Option<Vec<DurableDelivery<T, C>>>);

impl<T: Codec, C: Clock> Drop for Forget<T, C> {
    fn drop(&mut self) {
        for d in self.0.iter_mut().flatten() {
            *d.settled.get_mut() = true;
        }
    }
}

impl<T: Codec, C: Clock> DurableConsumer<T, C> {
    /// The subscription this consumer belongs to.
    #[must_use]
    pub fn subscription(&self) -> &DurableSubscription<T, C> {
        &self.sub
    }

    fn try_take(
        &self,
        max: usize,
        out: &mut Vec<DurableDelivery<T, C>>,
    ) -> Result<u64, BrokerError> {
        let inner = &self.sub.broker.inner;
        if self.sub.broker.is_closed() {
            return Err(BrokerError::Closed);
        }
        if max == 0 {
            return Err(levee_core::ConfigError::new("max", "must be greater than zero").into());
        }
        inner.writable()?;
        let now = inner.now();
        let (end, events) = {
            let mut state = inner.state.lock();
            let sub = state.subs.get_mut(&self.sub.id).ok_or_else(|| gone(&self.sub.name))?;
            sub.core.sweep(now);
            sub.core.receive(self.index, max, now, |grant| {
                out.push(DurableDelivery::new(self.sub.clone(), grant));
            });
            let events = sub.core.take_events();
            (state.flush(&inner.log, self.sub.id)?, events)
        };
        inner.emit(events);
        // The sweep may have dead-lettered expired leases and so made room.
        self.sub.wake.room.notify_waiters();
        Ok(end)
    }

    fn next_wake(&self) -> Option<Duration> {
        let inner = &self.sub.broker.inner;
        let next = inner.state.lock().subs.get(&self.sub.id)?.core.next_deadline()?;
        Some(Duration::from_nanos(next.saturating_sub(inner.now())))
    }

    /// Waits up to `wait` (tokio time; `None`: no limit) for messages and takes up to
    /// `max`; the result may be empty only when `wait` passed. Returns once the deliveries
    /// are recorded in the log (so a message that crashes its consumer every time is counted
    /// and dead-lettered after `max_lease_expiries`, not redelivered forever).
    ///
    /// Cancel-safe in the sense that matters: a receive cancelled while waiting for the log
    /// leaves its messages leased, and they come back when the lease expires.
    ///
    /// # Errors
    /// [`BrokerError::Closed`], [`BrokerError::Config`] for a zero `max`,
    /// [`BrokerError::ReadOnly`], [`BrokerError::Storage`].
    pub async fn receive_timeout(
        &self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<DurableDelivery<T, C>>, BrokerError> {
        let give_up = wait.map(|w| tokio::time::Instant::now() + w);
        let mut out = Vec::new();
        loop {
            let mut notified = std::pin::pin!(self.sub.wake.ready.notified());
            notified.as_mut().enable();
            let end = self.try_take(max, &mut out)?;
            if !out.is_empty() {
                let mut guard = Forget(Some(out));
                self.sub.broker.inner.confirm(end).await?;
                return Ok(guard.0.take().unwrap_or_default());
            }
            if give_up.is_some_and(|g| tokio::time::Instant::now() >= g) {
                return Ok(out);
            }
            let timer = self.next_wake().map(|d| tokio::time::Instant::now() + d);
            let wake = match (timer, give_up) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// Waits for at least one message and takes up to `max`.
    ///
    /// # Errors
    /// As [`receive_timeout`](Self::receive_timeout).
    pub async fn receive(&self, max: usize) -> Result<Vec<DurableDelivery<T, C>>, BrokerError> {
        self.receive_timeout(max, None).await
    }

    /// Acks every delivery of `batch` (draining it) with one log record and one wait.
    ///
    /// # Errors
    /// The first error; deliveries before it were acked.
    pub async fn ack_all(
        &self,
        batch: &mut Vec<DurableDelivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        let inner = &self.sub.broker.inner;
        inner.writable()?;
        let now = inner.now();
        let mut acked = 0;
        let mut first_error = None;
        let mut ends = Vec::new();
        {
            let mut state = inner.state.lock();
            let mut touched = Vec::new();
            for d in batch.iter_mut() {
                if std::mem::replace(d.settled.get_mut(), true) {
                    first_error.get_or_insert(BrokerError::AlreadySettled { seq: d.seq() });
                    continue;
                }
                let Some(sub) = state.subs.get_mut(&d.sub.id) else { continue };
                match sub.core.settle(d.slot, d.token, Verb::Ack, Holder::Handle, now) {
                    Ok(_) => acked += 1,
                    Err(s) => {
                        first_error.get_or_insert(stale_error(s, d.seq()));
                    }
                }
                if !touched.contains(&d.sub.id) {
                    touched.push(d.sub.id);
                }
            }
            for id in touched {
                ends.push(state.flush(&inner.log, id)?);
            }
        }
        batch.clear();
        self.sub.wake.room.notify_waiters();
        self.sub.wake.ready.notify_waiters();
        inner.confirm(ends.into_iter().max().unwrap_or(0)).await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(acked),
        }
    }
}

/// A message leased to one consumer of a durable subscription. Settle it with
/// [`ack`](Self::ack), [`nack`](Self::nack) or [`term`](Self::term) (each returns once
/// recorded); dropped without a verb it is nacked (a handler failure), never lost.
///
/// ```
/// use levee_queue::broker::{Message, Nack, SubscriptionConfig};
/// use levee_queue::durable::{DurableBroker, DurableSettings};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).await.unwrap();
/// broker.publish("orders", Message::new("order 1".to_string())).await.unwrap();
/// let consumer = sub.consumer().unwrap();
///
/// let first = consumer.receive(1).await.unwrap().remove(0);
/// assert_eq!((first.payload().as_str(), first.attempt()), ("order 1", 1));
/// first.nack(Nack::new().delay(std::time::Duration::ZERO)).await.unwrap(); // redeliver now
/// let second = consumer.receive(1).await.unwrap().remove(0);
/// assert_eq!(second.attempt(), 2);
/// second.ack().await.unwrap();
/// broker.shutdown();
/// # });
/// ```
pub struct DurableDelivery<T: Codec, C: Clock = FastClock> {
    sub: DurableSubscription<T, C>,
    msg: Arc<StoredMessage<T>>,
    slot: u32,
    token: u64,
    attempt: u32,
    first_delivered: u64,
    settled: AtomicBool,
}

impl<T: Codec, C: Clock> std::fmt::Debug for DurableDelivery<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableDelivery")
            .field("subscription", &self.sub.name)
            .field("seq", &self.msg.seq())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl<T: Codec, C: Clock> DurableDelivery<T, C> {
    fn new(sub: DurableSubscription<T, C>, grant: Grant<T>) -> Self {
        Self {
            sub,
            msg: grant.msg,
            slot: grant.slot,
            token: grant.token,
            attempt: grant.attempt,
            first_delivered: grant.first_delivered,
            settled: AtomicBool::new(false),
        }
    }

    async fn settle(&self, verb: Verb) -> Result<(), BrokerError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(BrokerError::AlreadySettled { seq: self.msg.seq() });
        }
        let end = self.sub.settle(self.slot, self.token, self.msg.seq(), verb)?;
        self.sub.broker.inner.confirm(end).await
    }

    /// The message was handled: it will not be delivered again. Returns once recorded.
    ///
    /// # Errors
    /// [`BrokerError::AlreadySettled`], [`BrokerError::LeaseExpired`],
    /// [`BrokerError::ReadOnly`], [`BrokerError::Storage`] (the ack may not survive a
    /// restart: the message may come again).
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.settle(Verb::Ack).await
    }

    /// The handler failed: redeliver after `nack.delay` (`None`: the subscription's
    /// backoff); `nack.reason` is kept in the attempt history.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub async fn nack(&self, nack: Nack) -> Result<(), BrokerError> {
        self.settle(Verb::Nack(nack)).await
    }

    /// The message can never be handled: dead-letter it now with `reason`.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub async fn term(&self, reason: impl Into<String>) -> Result<(), BrokerError> {
        self.settle(Verb::Term(reason.into())).await
    }

    /// Still working: extends the lease to a full `ack_wait` from now; returns the new
    /// deadline. (Not recorded: after a crash the message is redelivered anyway.)
    ///
    /// # Errors
    /// [`BrokerError::AlreadySettled`], [`BrokerError::LeaseExpired`].
    pub fn in_progress(&self) -> Result<u64, BrokerError> {
        if self.settled.load(Ordering::Acquire) {
            return Err(BrokerError::AlreadySettled { seq: self.msg.seq() });
        }
        let inner = &self.sub.broker.inner;
        let now = inner.now();
        let mut state = inner.state.lock();
        let sub = state.subs.get_mut(&self.sub.id).ok_or_else(|| gone(&self.sub.name))?;
        sub.core.extend(self.slot, self.token, now).map_err(|s| stale_error(s, self.msg.seq()))
    }

    /// The message's sequence number in its topic.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.msg.seq()
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &T {
        self.msg.payload()
    }

    /// The whole stored message.
    #[must_use]
    pub fn message(&self) -> &Arc<StoredMessage<T>> {
        &self.msg
    }

    /// Which delivery of this message this is: 1 the first time (deliveries before a
    /// restart count).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the message was first delivered to this subscription (broker clock).
    #[must_use]
    pub fn first_delivered(&self) -> u64 {
        self.first_delivered
    }

    /// The subject.
    #[must_use]
    pub fn subject(&self) -> &str {
        self.msg.subject().unwrap_or(&self.sub.topic)
    }
}

impl<T: Codec, C: Clock> Drop for DurableDelivery<T, C> {
    fn drop(&mut self) {
        if !*self.settled.get_mut() {
            // A delivery dropped without a verb is a handler failure, not a loss.
            let verb = Verb::Drop;
            let _ = self.sub.settle(self.slot, self.token, self.msg.seq(), verb);
        }
    }
}

impl<T: Codec, C: Clock> BrokerDelivery for DurableDelivery<T, C> {
    type Payload = T;

    fn seq(&self) -> u64 {
        self.msg.seq()
    }
    fn message_id(&self) -> Option<&str> {
        self.msg.message_id()
    }
    fn payload(&self) -> &T {
        self.msg.payload()
    }
    fn headers(&self) -> &Headers {
        self.msg.headers()
    }
    fn subject(&self) -> &str {
        DurableDelivery::subject(self)
    }
    fn key(&self) -> Option<&str> {
        self.msg.key()
    }
    fn attempt(&self) -> u32 {
        self.attempt
    }
}

impl<T: Codec, C: Clock + Clone> Broker for DurableBroker<T, C> {
    type Payload = T;
    type Subscription = DurableSubscription<T, C>;
    type Consumer = DurableConsumer<T, C>;
    type Delivery = DurableDelivery<T, C>;

    async fn publish(&self, topic: &str, message: Message<T>) -> Result<Publish, BrokerError> {
        DurableBroker::publish(self, topic, message).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<Self::Subscription, BrokerError> {
        DurableBroker::subscribe(self, topic, config).await
    }

    async fn consumer(
        &self,
        subscription: &Self::Subscription,
    ) -> Result<Self::Consumer, BrokerError> {
        subscription.consumer()
    }

    async fn receive(
        &self,
        consumer: &Self::Consumer,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Self::Delivery>, BrokerError> {
        consumer.receive_timeout(max, Some(wait)).await
    }

    async fn ack(&self, delivery: &Self::Delivery) -> Result<(), BrokerError> {
        delivery.ack().await
    }

    async fn nack(&self, delivery: &Self::Delivery, nack: Nack) -> Result<(), BrokerError> {
        delivery.nack(nack).await
    }

    async fn in_progress(&self, delivery: &Self::Delivery) -> Result<(), BrokerError> {
        delivery.in_progress().map(drop)
    }

    async fn term(&self, delivery: &Self::Delivery, reason: &str) -> Result<(), BrokerError> {
        delivery.term(reason).await
    }

    async fn dead_letters(
        &self,
        subscription: &Self::Subscription,
    ) -> Result<Vec<DeadLetter<T>>, BrokerError> {
        Ok(subscription.dead_letters())
    }

    async fn replay(
        &self,
        subscription: &Self::Subscription,
        select: Select,
    ) -> Result<usize, BrokerError> {
        subscription.replay(select).await
    }

    async fn purge(
        &self,
        subscription: &Self::Subscription,
        select: Select,
    ) -> Result<usize, BrokerError> {
        subscription.purge(select).await
    }

    async fn close(&self) {
        DurableBroker::close(self);
    }
}
