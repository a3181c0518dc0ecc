//! The state shared by a subscription's handles, consumers and deliveries, and its lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use levee_core::sync::{CachePadded, Mutex, MutexGuard};
use levee_core::{Clock, Counter, EventHook, LatencyRecorder};
use tokio::sync::Notify;

use super::super::config::{Overflow, SubscriptionConfig};
use super::super::core::Core;
use super::super::event::BrokerEvent;
use super::super::stats::SubscriptionStats;
use super::super::subject::SubjectFilter;
use super::ingress::Ingress;

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
    pub(super) core: CachePadded<Mutex<Core<T>>>,
    /// Where publishes land: a short lock of its own, so a publisher never waits behind a
    /// consumer's receive or batch ack. Drained into the core by whoever locks the core next.
    pub(super) ingress: CachePadded<Mutex<Ingress<T>>>,
    /// Publishes refused because the backlog was full (counted by publishers, outside the
    /// core).
    pub(super) rejected: Counter,
    pub(crate) clock: C,
    pub(super) hook: EventHook<BrokerEvent>,
    pub(super) closed: Arc<AtomicBool>,
    /// Receivers wait here for messages (or room under their in-flight bound).
    pub(super) ready: Notify,
    /// Read on every publish and ack, written only by waiters: its own line.
    pub(super) receivers_waiting: CachePadded<AtomicUsize>,
    /// Publishers wait here for backlog room.
    pub(super) space: Notify,
    pub(super) publishers_waiting: CachePadded<AtomicUsize>,
    pub(super) latency: LatencyRecorder,
}

/// The locked core, with the time read under the lock; on unlock it publishes its `held()`
/// to the ingress for publishers.
pub(crate) struct CoreGuard<'a, T, C> {
    sub: &'a SubShared<T, C>,
    core: MutexGuard<'a, Core<T>>,
    now: u64,
}

impl<T, C> CoreGuard<'_, T, C> {
    /// The clock as read after the lock was taken. Every reading passed to the core comes
    /// from here, so readings reach the core in the order of the lock, and leases granted one
    /// after another have non-decreasing deadlines (the core's lease FIFO relies on it for
    /// expiring on time; it copes with an older reading, but never needs to).
    pub(crate) fn now(&self) -> u64 {
        self.now
    }
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

    /// Locks the core and reads the clock, first moving everything published since into the
    /// core, so every core operation sees every accepted message in publish order.
    pub(crate) fn lock(&self) -> CoreGuard<'_, T, C> {
        let mut core = self.core.lock();
        let now = self.clock.now();
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
        for msg in batch.drain(..) {
            core.accept(msg, now);
        }
        core.put_scratch(batch);
        CoreGuard { sub: self, core, now }
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

    /// Runs due timers and expired leases now.
    pub(crate) fn tick(&self) {
        let (events, ready) = {
            let mut core = self.lock();
            let now = core.now();
            core.sweep(now);
            (core.take_events(), core.has_ready())
        };
        self.emit(events);
        if ready {
            self.wake_receivers();
        }
        self.wake_publishers();
    }

    pub(crate) fn stats(&self) -> SubscriptionStats {
        let mut stats = self.lock().stats();
        stats.rejected = self.rejected.get();
        stats
    }
}
