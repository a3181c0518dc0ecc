//! Timers that cancel unpaid orders and expire cart reservations, on levee-timer's
//! `ShardedWheel`.
//!
//! One timer per unpaid order and one per cart that holds stock, keyed by [`Deadline`] so a
//! payment, a customer cancel or a cart change disarms or moves it in O(1) from any thread.
//! The wheel counts the shop clock's nanoseconds (wall time since the epoch), so deadlines
//! read back from the store after a restart go straight in, and a deadline already past fires
//! at the next pass.
//!
//! The shop drives the wheel with its own poll loop ([`ShopTimers::run`]) rather than
//! levee-timer's `TimerService`, because the service runs on tokio's clock while the shop's
//! time is injected ([`ShopClock`]): tests move a `ManualClock` 31 minutes ahead and the next
//! pass fires what became due, with the HTTP server and the database running in real time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee::core::Clock;
use levee::timer::{Expired, ShardedWheel, TimerHandle, TimingWheel};
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

/// Due timers handed out per shard per pass.
const BATCH: usize = 1024;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// The unpaid order with this id is cancelled.
    Order(i64),
    /// The cart of the customer with this id releases its reservations.
    Cart(i64),
}

/// One timer per unpaid order and per cart holding stock.
pub struct ShopTimers {
    clock: ShopClock,
    wheel: ShardedWheel<Deadline>,
    handles: Mutex<HashMap<Deadline, TimerHandle>>,
    fired: AtomicU64,
}

impl std::fmt::Debug for ShopTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopTimers").field("stats", &self.stats()).finish()
    }
}

fn to_nanos(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

impl ShopTimers {
    /// Timers read from `clock`: exact, 1 ms ticks, four shards.
    ///
    /// # Errors
    /// Never with these settings; the wheel's [`levee::core::ConfigError`] otherwise.
    pub fn new(clock: ShopClock) -> Result<Self, levee::core::ConfigError> {
        let wheel = ShardedWheel::new(
            4,
            TimingWheel::builder().tick(Duration::from_millis(1)).start(clock.now()),
        )?;
        Ok(Self { clock, wheel, handles: Mutex::new(HashMap::new()), fired: AtomicU64::new(0) })
    }

    /// Arms (or re-arms) the timer of `what` for `deadline_ms` (shop-clock milliseconds).
    pub fn schedule(&self, what: Deadline, deadline_ms: i64) {
        let deadline = to_nanos(deadline_ms);
        let mut handles = self.handles.lock();
        if let Some(&handle) = handles.get(&what)
            && self.wheel.reset(handle, deadline).is_ok()
        {
            return;
        }
        // The wheel's only refusal is "full" (billions of timers): the log says so.
        match self.wheel.insert(deadline, what) {
            Ok((handle, _)) => {
                handles.insert(what, handle);
            }
            Err(e) => tracing::error!(?what, error = %e, "timer not armed"),
        }
    }

    /// Disarms the timer of `what`, if armed.
    pub fn cancel(&self, what: Deadline) {
        if let Some(handle) = self.handles.lock().remove(&what) {
            self.wheel.cancel(handle);
        }
    }

    /// Removes and returns the timers whose deadline has passed.
    pub fn take_due(&self) -> Vec<Deadline> {
        let now = self.clock.now();
        let mut out: Vec<Expired<Deadline, TimerHandle>> = Vec::new();
        while self.wheel.poll_expired(now, &mut out, BATCH).more {}
        let mut handles = self.handles.lock();
        let due: Vec<Deadline> = out
            .into_iter()
            .map(|e| {
                // Forget the handle unless the timer was re-armed meanwhile.
                if handles.get(&e.value) == Some(&e.key) {
                    handles.remove(&e.value);
                }
                e.value
            })
            .collect();
        self.fired.fetch_add(due.len() as u64, Ordering::Relaxed);
        due
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> TimerStats {
        TimerStats {
            pending: self.wheel.len() as u64,
            fired: self.fired.load(Ordering::Relaxed),
            cancelled: self.wheel.cancelled(),
        }
    }

    /// Runs the poll loop until `stop` turns true: every `tick`, hands due timers to `fire`.
    pub async fn run<F, Fut>(
        self: Arc<Self>,
        tick: Duration,
        mut stop: watch::Receiver<bool>,
        fire: F,
    ) where
        F: Fn(Deadline) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for due in self.take_due() {
                tokio::spawn(fire(due));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee::core::ManualClock;

    #[test]
    fn fires_in_time_and_skips_cancelled() {
        use Deadline::{Cart, Order};
        let manual = ManualClock::new();
        let clock = ShopClock::manual(manual.clone());
        let t = ShopTimers::new(clock.clone()).unwrap();
        let now = clock.now_ms();
        t.schedule(Order(1), now + 300);
        t.schedule(Order(2), now + 100);
        t.schedule(Order(3), now + 200);
        t.schedule(Cart(1), now + 150);
        t.cancel(Order(3));
        t.schedule(Order(1), now + 250); // re-armed earlier
        t.schedule(Cart(1), now + 400); // a cart change moves its expiry later
        assert!(t.take_due().is_empty());
        manual.advance(Duration::from_millis(250));
        let mut due = t.take_due();
        due.sort_unstable_by_key(|d| format!("{d:?}"));
        assert_eq!(due, vec![Order(1), Order(2)]);
        let stats = t.stats();
        assert_eq!((stats.pending, stats.fired, stats.cancelled), (1, 2, 1));
        manual.advance(Duration::from_millis(150));
        assert_eq!(t.take_due(), vec![Cart(1)]);
        // A deadline already past fires at the next pass.
        t.schedule(Order(4), now - 1_000);
        assert_eq!(t.take_due(), vec![Order(4)]);
    }
}
