//! The publishers' side of a subscription: the ingress publishes land in, the backlog bound
//! checked against it, and making room when the overflow policy says to.

use std::sync::Arc;

use levee_core::Clock;
use levee_core::sync::MutexGuard;

use super::super::event::BrokerEvent;
use super::super::message::StoredMessage;
use super::shared::SubShared;

/// Messages published to a subscription and not yet moved into its core.
pub(crate) struct Ingress<T> {
    pub(crate) queue: Vec<Arc<StoredMessage<T>>>,
    /// The core's `held()` as of its last unlock (plus anything drained since): with
    /// `queue.len()` it is exactly what the subscription holds, read without the core lock.
    pub(super) core_held: usize,
}

impl<T, C: Clock> SubShared<T, C> {
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

    /// Makes room under [`Overflow::DeadLetterOldest`](crate::broker::Overflow::DeadLetterOldest)
    /// by dead-lettering the oldest ready message; `false` when there is none (everything held
    /// is scheduled or in flight).
    pub(crate) fn make_room(&self) -> bool {
        let (made, events) = {
            let mut core = self.lock();
            let now = core.now();
            core.sweep(now);
            let made = core.held() < self.max_backlog || core.dead_letter_oldest(now);
            (made, core.take_events())
        };
        self.emit(events);
        made
    }
}
