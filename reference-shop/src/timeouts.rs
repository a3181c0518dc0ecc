//! Timers that cancel unpaid orders.
//!
//! STAND-IN until `levee-timer` lands on main: an ordered set of (deadline, order) and a
//! driver task that looks for due entries every tick. Deadlines are the shop clock's wall
//! milliseconds, so tests move a manual clock and the next tick fires what became due.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use crate::clock::ShopClock;

/// Counters of the timers.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TimerStats {
    /// Timers waiting.
    pub pending: u64,
    /// Timers that fired.
    pub fired: u64,
    /// Timers cancelled before they fired.
    pub cancelled: u64,
}

#[derive(Default)]
struct Wheel {
    by_deadline: BTreeSet<(i64, i64)>,
    by_order: HashMap<i64, i64>,
}

/// One timer per unpaid order.
pub struct OrderTimeouts {
    clock: ShopClock,
    wheel: Mutex<Wheel>,
    fired: AtomicU64,
    cancelled: AtomicU64,
}

impl std::fmt::Debug for OrderTimeouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderTimeouts").field("stats", &self.stats()).finish()
    }
}

impl OrderTimeouts {
    /// Timers read from `clock`.
    #[must_use]
    pub fn new(clock: ShopClock) -> Self {
        Self {
            clock,
            wheel: Mutex::new(Wheel::default()),
            fired: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }

    /// Arms (or re-arms) the timer of `order_id` for `deadline_ms`.
    pub fn schedule(&self, order_id: i64, deadline_ms: i64) {
        let mut w = self.wheel.lock();
        if let Some(old) = w.by_order.insert(order_id, deadline_ms) {
            w.by_deadline.remove(&(old, order_id));
        }
        w.by_deadline.insert((deadline_ms, order_id));
    }

    /// Disarms the timer of `order_id`, if armed.
    pub fn cancel(&self, order_id: i64) {
        let mut w = self.wheel.lock();
        if let Some(deadline) = w.by_order.remove(&order_id) {
            w.by_deadline.remove(&(deadline, order_id));
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes and returns the orders whose deadline has passed.
    pub fn take_due(&self) -> Vec<i64> {
        let now = self.clock.now_ms();
        let mut w = self.wheel.lock();
        let mut due = Vec::new();
        while let Some(&(deadline, order)) = w.by_deadline.first() {
            if deadline > now {
                break;
            }
            w.by_deadline.pop_first();
            w.by_order.remove(&order);
            due.push(order);
        }
        self.fired.fetch_add(due.len() as u64, Ordering::Relaxed);
        due
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> TimerStats {
        TimerStats {
            pending: self.wheel.lock().by_order.len() as u64,
            fired: self.fired.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
        }
    }

    /// Runs the driver until `stop` turns true: every `tick`, hands due orders to `fire`.
    pub async fn run<F, Fut>(
        self: Arc<Self>,
        tick: Duration,
        mut stop: watch::Receiver<bool>,
        fire: F,
    ) where
        F: Fn(i64) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for order in self.take_due() {
                tokio::spawn(fire(order));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee_core::ManualClock;

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let manual = ManualClock::new();
        let clock = ShopClock::manual(manual.clone());
        let t = OrderTimeouts::new(clock.clone());
        let now = clock.now_ms();
        t.schedule(1, now + 300);
        t.schedule(2, now + 100);
        t.schedule(3, now + 200);
        t.cancel(3);
        assert!(t.take_due().is_empty());
        manual.advance(Duration::from_millis(300));
        assert_eq!(t.take_due(), vec![2, 1]);
        assert_eq!(t.stats().pending, 0);
        assert_eq!(t.stats().cancelled, 1);
    }
}
