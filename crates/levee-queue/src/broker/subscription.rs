//! A subscription (one [`Core`] behind a mutex, plus waking) and its consumers.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use levee_core::sync::{CachePadded, Mutex, MutexGuard};
use levee_core::{Clock, Counter, EventHook, FastClock, LatencyRecorder, LatencySnapshot};
use tokio::sync::Notify;

use super::config::{Overflow, SubscriptionConfig};
use super::core::{Core, Settled, Verb};
use super::dead_letter::{DeadLetter, Select};
use super::delivery::{Delivery, Receipt};
use super::error::{BatchAckError, BrokerError};
use super::event::BrokerEvent;
use super::message::StoredMessage;
use super::nack::Nack;
use super::slots::{Ended, Stale};
use super::stats::SubscriptionStats;
use super::subject::SubjectFilter;

/// State shared by a subscription's handles, consumers and deliveries.
pub(crate) struct SubShared<T, C> {
    pub(crate) id: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) filter: Option<SubjectFilter>,
    pub(crate) overflow: Overflow,
    pub(crate) max_backlog: usize,
    /// On its own cache line: the refcount next to the other fields changes with every
    /// delivery, the lock with every operation.
    core: CachePadded<Mutex<Core<T>>>,
    /// Where publishes land: a short lock of its own, so a publisher never waits behind a
    /// consumer's receive or batch ack. Drained into the core by whoever locks the core next.
    ingress: CachePadded<Mutex<Ingress<T>>>,
    /// Publishes refused because the backlog was full (counted by publishers, outside the
    /// core).
    rejected: Counter,
    pub(crate) clock: C,
    hook: EventHook<BrokerEvent>,
    closed: Arc<AtomicBool>,
    /// Receivers wait here for messages (or room under their in-flight bound).
    ready: Notify,
    /// Read on every publish and ack, written only by waiters: its own line.
    receivers_waiting: CachePadded<AtomicUsize>,
    /// Publishers wait here for backlog room.
    space: Notify,
    publishers_waiting: CachePadded<AtomicUsize>,
    latency: LatencyRecorder,
}

/// Messages published to a subscription and not yet moved into its core.
pub(crate) struct Ingress<T> {
    pub(crate) queue: Vec<Arc<StoredMessage<T>>>,
    /// The core's `held()` as of its last unlock (plus anything drained since): with
    /// `queue.len()` it is exactly what the subscription holds, read without the core lock.
    core_held: usize,
}

/// The locked core; on unlock it publishes its `held()` to the ingress for publishers.
pub(crate) struct CoreGuard<'a, T, C> {
    sub: &'a SubShared<T, C>,
    core: MutexGuard<'a, Core<T>>,
}

impl<T, C> std::ops::Deref for CoreGuard<'_, T, C> {
    type Target = Core<T>;
    fn deref(&self) -> &Core<T> {
        &self.core
    }
}

impl<T, C> std::ops::DerefMut for CoreGuard<'_, T, C> {
    fn deref_mut(&mut self) -> &mut Core<T> {
        &mut self.core
    }
}

impl<T, C> Drop for CoreGuard<'_, T, C> {
    fn drop(&mut self) {
        // Lock order: core, then ingress (publishers never hold an ingress lock while taking
        // a core lock).
        let held = self.core.held();
        self.sub.ingress.lock().core_held = held;
    }
}

/// Counts a waiter in for as long as it lives (so a cancelled wait counts itself out).
struct WaitGuard<'a>(&'a AtomicUsize);

impl<'a> WaitGuard<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        // SeqCst pairs with the load in `wake_*`: either the waker sees this waiter, or the
        // waiter's following check under the lock sees the waker's change.
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T, C: Clock> SubShared<T, C> {
    pub(crate) fn new(
        id: u64,
        topic: Arc<str>,
        config: SubscriptionConfig,
        filter: Option<SubjectFilter>,
        clock: C,
        hook: EventHook<BrokerEvent>,
        closed: Arc<AtomicBool>,
    ) -> Self {
        let core = Core::new(Arc::clone(&topic), config, !hook.is_empty());
        Self {
            id,
            topic,
            name: Arc::clone(core.name()),
            filter,
            overflow: core.config().overflow,
            max_backlog: core.config().max_backlog,
            core: CachePadded::new(Mutex::new(core)),
            ingress: CachePadded::new(Mutex::new(Ingress { queue: Vec::new(), core_held: 0 })),
            rejected: Counter::new(),
            clock,
            hook,
            closed,
            ready: Notify::new(),
            receivers_waiting: CachePadded::new(AtomicUsize::new(0)),
            space: Notify::new(),
            publishers_waiting: CachePadded::new(AtomicUsize::new(0)),
            latency: LatencyRecorder::with_stripes(4),
        }
    }

    /// Locks the core, first moving everything published since into it, so every core
    /// operation sees every accepted message in publish order.
    pub(crate) fn lock(&self) -> CoreGuard<'_, T, C> {
        let mut core = self.core.lock();
        let mut batch = core.take_scratch();
        {
            let mut ingress = self.ingress.lock();
            if !ingress.queue.is_empty() {
                std::mem::swap(&mut ingress.queue, &mut batch);
                // Counted as held from this moment, so publishers never overshoot the bound
                // while the batch is being placed.
                ingress.core_held += batch.len();
            }
        }
        if !batch.is_empty() {
            let now = self.clock.now();
            for msg in batch.drain(..) {
                core.accept(msg, now);
            }
        }
        core.put_scratch(batch);
        CoreGuard { sub: self, core }
    }

    /// Appends a publish to the ingress if the backlog has room; `false` when full.
    /// `ingress` must be this subscription's, locked.
    pub(crate) fn has_room(&self, ingress: &Ingress<T>) -> bool {
        ingress.core_held + ingress.queue.len() < self.max_backlog
    }

    pub(crate) fn lock_ingress(&self) -> MutexGuard<'_, Ingress<T>> {
        self.ingress.lock()
    }

    /// A publish was refused for want of room.
    pub(crate) fn count_rejected(&self) {
        self.rejected.incr();
        let name = &self.name;
        self.hook.emit(|| BrokerEvent::Rejected { subscription: Arc::clone(name) });
    }

    /// Makes room under [`Overflow::DeadLetterOldest`] by dead-lettering the oldest ready
    /// message; `false` when there is none (everything held is scheduled or in flight).
    pub(crate) fn make_room(&self) -> bool {
        let now = self.clock.now();
        let (made, events) = {
            let mut core = self.lock();
            core.sweep(now);
            let made = core.held() < self.max_backlog || core.dead_letter_oldest(now);
            (made, core.take_events())
        };
        self.emit(events);
        made
    }

    pub(crate) fn config(&self) -> SubscriptionConfig {
        self.lock().config().clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Emits events taken from the core after its lock was released.
    pub(crate) fn emit(&self, events: Vec<BrokerEvent>) {
        for event in events {
            self.hook.emit(|| event);
        }
    }

    pub(crate) fn wake_receivers(&self) {
        if self.receivers_waiting.load(Ordering::SeqCst) > 0 {
            self.ready.notify_waiters();
        }
    }

    pub(crate) fn wake_publishers(&self) {
        if self.publishers_waiting.load(Ordering::SeqCst) > 0 {
            self.space.notify_waiters();
        }
    }

    pub(crate) fn wake_all(&self) {
        self.ready.notify_waiters();
        self.space.notify_waiters();
    }

    /// Runs due timers and expired leases now.
    pub(crate) fn tick(&self) {
        let now = self.clock.now();
        let (events, ready) = {
            let mut core = self.lock();
            core.sweep(now);
            (core.take_events(), core.has_ready())
        };
        self.emit(events);
        if ready {
            self.wake_receivers();
        }
        self.wake_publishers();
    }

    /// The next time something is due, as a wait from now on the broker's clock.
    fn next_wake(&self) -> Option<Duration> {
        let next = self.lock().next_deadline()?;
        Some(Duration::from_nanos(next.saturating_sub(self.clock.now())))
    }

    pub(crate) fn try_receive_into(
        &self,
        owner: &Arc<Owner<T, C>>,
        max: usize,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        if max == 0 {
            return Err(levee_core::ConfigError::new("max", "must be greater than zero").into());
        }
        let now = self.clock.now();
        let (n, events) = {
            let mut core = self.lock();
            core.sweep(now);
            let n = core.receive(owner.index, max, now, |grant| {
                out.push(Delivery::new(Arc::clone(owner), grant));
            });
            (n, core.take_events())
        };
        self.emit(events);
        // The sweep may have dead-lettered expired leases and so made room.
        self.wake_publishers();
        Ok(n)
    }

    /// Waits until at least one message is received, the broker closes, or `wait` passes
    /// (`None`: no limit).
    pub(crate) async fn receive_into(
        &self,
        owner: &Arc<Owner<T, C>>,
        max: usize,
        wait: Option<Duration>,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        let n = self.try_receive_into(owner, max, out)?;
        if n > 0 {
            return Ok(n);
        }
        let give_up = wait.map(|w| tokio::time::Instant::now() + w);
        let _waiting = WaitGuard::new(&self.receivers_waiting);
        loop {
            let mut notified = pin!(self.ready.notified());
            notified.as_mut().enable();
            let n = self.try_receive_into(owner, max, out)?;
            if n > 0 {
                return Ok(n);
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
            if give_up.is_some_and(|g| tokio::time::Instant::now() >= g) {
                return self.try_receive_into(owner, max, out);
            }
        }
    }

    /// Waits until the backlog has room or the broker closes.
    pub(crate) async fn wait_for_space(&self) {
        let _waiting = WaitGuard::new(&self.publishers_waiting);
        let mut notified = pin!(self.space.notified());
        notified.as_mut().enable();
        let full = {
            let mut core = self.lock();
            core.sweep(self.clock.now());
            core.held() >= self.max_backlog
        };
        if full && !self.is_closed() {
            notified.await;
        }
    }

    pub(crate) fn settle(
        &self,
        slot: u32,
        token: u64,
        seq: u64,
        verb: Verb,
    ) -> Result<(), BrokerError> {
        let now = self.clock.now();
        let (result, events) = {
            let mut core = self.lock();
            let r = core.settle(slot, token, verb, now);
            (r, core.take_events())
        };
        self.emit(events);
        match result {
            Ok(Settled::Acked { ready_at }) => {
                self.latency.record_nanos(now.saturating_sub(ready_at))
            }
            Ok(Settled::Done) => {}
            Err(stale) => return Err(stale_error(stale, seq)),
        }
        self.wake_receivers();
        self.wake_publishers();
        Ok(())
    }

    /// Acks a batch under one lock acquisition. Deliveries of other subscriptions are acked
    /// through their own.
    pub(crate) fn ack_all(&self, batch: &mut Vec<Delivery<T, C>>) -> Result<usize, BatchAckError> {
        let now = self.clock.now();
        let mut failed = Vec::new();
        let events = {
            let mut core = self.lock();
            for d in batch.iter_mut() {
                if d.owner.sub.id != self.id {
                    continue;
                }
                let seq = d.msg.seq();
                if std::mem::replace(d.settled.get_mut(), true) {
                    failed.push((seq, BrokerError::AlreadySettled { seq }));
                    continue;
                }
                match core.settle(d.slot, d.token, Verb::Ack, now) {
                    Ok(_) => d.acked = true,
                    Err(stale) => failed.push((seq, stale_error(stale, seq))),
                }
            }
            core.take_events()
        };
        self.emit(events);
        let mut acked = 0;
        for d in batch.drain(..) {
            if d.acked {
                acked += 1;
                self.latency.record_nanos(now.saturating_sub(d.msg.ready_at));
            } else if d.owner.sub.id != self.id {
                match d.ack() {
                    Ok(()) => acked += 1,
                    Err(e) => failed.push((d.seq(), e)),
                }
            }
        }
        self.wake_receivers();
        self.wake_publishers();
        if failed.is_empty() { Ok(acked) } else { Err(BatchAckError { acked, failed }) }
    }

    pub(crate) fn settle_dropped(&self, slot: u32, token: u64) -> Result<(), BrokerError> {
        self.settle(slot, token, 0, Verb::Drop)
    }

    pub(crate) fn extend(&self, slot: u32, token: u64, seq: u64) -> Result<u64, BrokerError> {
        let now = self.clock.now();
        self.lock().extend(slot, token, now).map_err(|s| stale_error(s, seq))
    }

    pub(crate) fn stats(&self) -> SubscriptionStats {
        let mut stats = self.lock().stats();
        stats.rejected = self.rejected.get();
        stats
    }
}

pub(crate) fn stale_error(stale: Stale, seq: u64) -> BrokerError {
    match stale {
        Stale::Ended(Ended::Settled) => BrokerError::AlreadySettled { seq },
        Stale::Ended(Ended::Expired) => BrokerError::LeaseExpired { seq },
        Stale::Unknown => BrokerError::NotInFlight { seq },
    }
}

/// A subscription to a topic: every message published to the topic (matching its filter)
/// reaches it once; its [`Consumer`]s compete for those messages.
///
/// Cheap to clone (all clones are the same subscription). Also where an operator lists,
/// replays and purges dead letters.
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
        let now = self.shared.clock.now();
        let (n, events) = {
            let mut core = self.shared.lock();
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
    /// [`AlreadySettled`](BrokerError::AlreadySettled),
    /// [`LeaseExpired`](BrokerError::LeaseExpired) or
    /// [`NotInFlight`](BrokerError::NotInFlight) when the delivery is no longer out.
    pub fn ack(&self, receipt: Receipt) -> Result<(), BrokerError> {
        self.check(&receipt)?;
        self.shared.settle(receipt.slot, receipt.token, receipt.seq, Verb::Ack)
    }

    /// Nacks the delivery `receipt` stands for (see [`Delivery::nack`]).
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn nack(&self, receipt: Receipt, nack: Nack) -> Result<(), BrokerError> {
        self.check(&receipt)?;
        self.shared.settle(receipt.slot, receipt.token, receipt.seq, Verb::Nack(nack))
    }

    /// Terminates the delivery `receipt` stands for (see [`Delivery::term`]).
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub fn term(&self, receipt: Receipt, reason: impl Into<String>) -> Result<(), BrokerError> {
        self.check(&receipt)?;
        self.shared.settle(receipt.slot, receipt.token, receipt.seq, Verb::Term(reason.into()))
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

/// One of a subscription's competing consumers.
///
/// Dropping it leaves its deliveries valid: they are settled (or, dropped, nacked) as usual.
pub struct Consumer<T, C: Clock = FastClock> {
    owner: Arc<Owner<T, C>>,
}

/// What a delivery points back to: its consumer's own `Arc`, so that consumers on different
/// threads never contend on one reference count.
pub(crate) struct Owner<T, C> {
    pub(crate) sub: Arc<SubShared<T, C>>,
    pub(crate) index: u32,
}

impl<T, C: Clock> std::fmt::Debug for Consumer<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("subscription", &self.owner.sub.name)
            .field("index", &self.owner.index)
            .finish_non_exhaustive()
    }
}

impl<T, C: Clock> Drop for Consumer<T, C> {
    fn drop(&mut self) {
        self.owner.sub.lock().remove_consumer(self.owner.index);
    }
}

impl<T, C: Clock> Consumer<T, C> {
    /// The subscription this consumer belongs to.
    #[must_use]
    pub fn subscription(&self) -> Subscription<T, C> {
        Subscription { shared: Arc::clone(&self.owner.sub) }
    }

    /// Acks every delivery in `batch` (draining it) under one lock acquisition; see
    /// [`Subscription::ack_all`].
    ///
    /// # Errors
    /// As [`Subscription::ack_all`].
    pub fn ack_all(&self, batch: &mut Vec<Delivery<T, C>>) -> Result<usize, BatchAckError> {
        self.owner.sub.ack_all(batch)
    }

    /// Takes up to `max` deliverable messages without waiting (possibly none).
    ///
    /// # Errors
    /// [`BrokerError::Closed`] once the broker is closed; [`BrokerError::Config`] for a zero
    /// `max`.
    pub fn try_receive(&self, max: usize) -> Result<Vec<Delivery<T, C>>, BrokerError> {
        let mut out = Vec::new();
        self.owner.sub.try_receive_into(&self.owner, max, &mut out)?;
        Ok(out)
    }

    /// Like [`try_receive`](Self::try_receive), appending to `out` (reuse one `Vec` across
    /// calls to receive without allocating); returns how many were appended.
    ///
    /// # Errors
    /// As [`try_receive`](Self::try_receive).
    pub fn try_receive_into(
        &self,
        max: usize,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        self.owner.sub.try_receive_into(&self.owner, max, out)
    }

    /// Waits for at least one message and takes up to `max`.
    ///
    /// Cancel-safe: dropping the future before it completes receives nothing. While it waits
    /// it sleeps until the subscription's next timer (a delayed message, a backoff, a lease),
    /// so it needs a tokio runtime with time enabled when such a timer is pending.
    ///
    /// # Errors
    /// As [`try_receive`](Self::try_receive); a waiting receive returns `Closed` when the
    /// broker closes.
    ///
    /// # Panics
    /// When it must sleep outside a tokio runtime with time enabled (as `tokio::time` does).
    pub async fn receive(&self, max: usize) -> Result<Vec<Delivery<T, C>>, BrokerError> {
        let mut out = Vec::new();
        self.owner.sub.receive_into(&self.owner, max, None, &mut out).await?;
        Ok(out)
    }

    /// Like [`receive`](Self::receive), appending to `out`.
    ///
    /// # Errors
    /// As [`receive`](Self::receive).
    pub async fn receive_into(
        &self,
        max: usize,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        self.owner.sub.receive_into(&self.owner, max, None, out).await
    }

    /// Waits at most `wait` (tokio time) for messages; the result may be empty.
    ///
    /// # Errors
    /// As [`receive`](Self::receive).
    ///
    /// # Panics
    /// Outside a tokio runtime with time enabled.
    pub async fn receive_timeout(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery<T, C>>, BrokerError> {
        let mut out = Vec::new();
        self.owner.sub.receive_into(&self.owner, max, Some(wait), &mut out).await?;
        Ok(out)
    }
}
