//! Timers that cancel unpaid orders.
//!
//! One `levee_timer::TimingWheel` entry per unpaid order, keyed by order id so a payment or a
//! customer cancel disarms it in O(1). The wheel counts the shop clock's nanoseconds (wall time
//! since the epoch), so deadlines read back from the store after a restart go straight in,
//! and a deadline already past fires at the next tick.
//!
//! The driver below (a tick loop that hands due orders to a callback) is a STAND-IN for
//! levee-timer's tokio `TimerService`, which has not landed on main yet. Tests move a manual
//! clock and the next tick fires what became due.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee_core::Clock;
use levee_timer::{TimerKey, TimingWheel};
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

struct Wheel {
    wheel: TimingWheel<i64>,
    keys: HashMap<i64, TimerKey>,
}

fn to_nanos(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
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
        let wheel = TimingWheel::builder()
            .tick(Duration::from_millis(1))
            .start(clock.now())
            .build()
            .expect("1 ms is a valid tick and no limit is set");
        Self {
            clock,
            wheel: Mutex::new(Wheel { wheel, keys: HashMap::new() }),
            fired: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }

    /// Arms (or re-arms) the timer of `order_id` for `deadline_ms`.
    pub fn schedule(&self, order_id: i64, deadline_ms: i64) {
        let deadline = to_nanos(deadline_ms);
        let mut w = self.wheel.lock();
        if let Some(&key) = w.keys.get(&order_id)
            && w.wheel.reset(key, deadline).is_ok()
        {
            return;
        }
        // The wheel's only refusal is "full" (about 4 billion timers): then the order keeps
        // no timer, which the log says.
        match w.wheel.insert(deadline, order_id) {
            Ok(key) => {
                w.keys.insert(order_id, key);
            }
            Err(e) => tracing::error!(order_id, error = %e, "unpaid-order timer not armed"),
        }
    }

    /// Disarms the timer of `order_id`, if armed.
    pub fn cancel(&self, order_id: i64) {
        let mut w = self.wheel.lock();
        if let Some(key) = w.keys.remove(&order_id)
            && w.wheel.cancel(key).is_some()
        {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes and returns the orders whose deadline has passed.
    pub fn take_due(&self) -> Vec<i64> {
        let now = self.clock.now();
        let mut w = self.wheel.lock();
        let due: Vec<i64> = w.wheel.advance(now).map(|(_, order)| order).collect();
        for order in &due {
            w.keys.remove(order);
        }
        self.fired.fetch_add(due.len() as u64, Ordering::Relaxed);
        due
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> TimerStats {
        TimerStats {
            pending: self.wheel.lock().wheel.len() as u64,
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
