//! Timers that cancel unpaid orders and expire cart reservations: levee-timer's
//! `TimerService` on the shop clock.
//!
//! One timer per unpaid order and one per cart that holds stock, keyed by [`Deadline`] so a
//! payment, a customer cancel or a cart change disarms or moves it in O(1) from any thread.
//! Deadlines are shop-clock readings (wall time since the epoch), so deadlines read back from
//! the store after a restart go straight in, and a deadline already past fires at once.
//!
//! The service's driver sleeps on the shop clock ([`ShopClock`]) until the next deadline:
//! tests move a `ManualClock` 31 minutes ahead and what became due fires at once, with the
//! HTTP server and the database running in real time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use levee::timer::{TimerHandle, TimerService};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use crate::clock::ShopClock;

/// Counters of the timers.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct TimerStats {
    /// Timers waiting.
    pub pending: u64,
    /// Timers that fired.
    pub fired: u64,
    /// Timers cancelled before they fired.
    pub cancelled: u64,
}

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
    service: TimerService<Deadline, ShopClock>,
    handles: Mutex<HashMap<Deadline, TimerHandle>>,
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
    /// Timers on `clock`, firing at most `resolution` late (the wheel's tick), four shards.
    /// Needs a tokio runtime (the service's driver runs there).
    ///
    /// # Errors
    /// A resolution the wheel cannot use, or no runtime: levee's [`levee::core::ConfigError`].
    pub fn new(clock: ShopClock, resolution: Duration) -> Result<Self, levee::core::ConfigError> {
        let service = TimerService::builder().tick(resolution).shards(4).clock(clock).build()?;
        Ok(Self { service, handles: Mutex::new(HashMap::new()) })
    }

    /// Arms (or re-arms) the timer of `what` for `deadline_ms` (shop-clock milliseconds).
    pub fn schedule(&self, what: Deadline, deadline_ms: i64) {
        let deadline = to_nanos(deadline_ms);
        let mut handles = self.handles.lock();
        if let Some(&handle) = handles.get(&what)
            && self.service.reset(handle, deadline).is_ok()
        {
            return;
        }
        // The service's only refusal is "full" (it is unbounded here): the log says so.
        match self.service.schedule(deadline, what) {
            Ok(handle) => {
                handles.insert(what, handle);
            }
            Err(e) => tracing::error!(?what, error = %e, "timer not armed"),
        }
    }

    /// Disarms the timer of `what`, if armed.
    pub fn cancel(&self, what: Deadline) {
        if let Some(handle) = self.handles.lock().remove(&what) {
            self.service.cancel(handle);
        }
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> TimerStats {
        let stats = self.service.stats();
        TimerStats { pending: stats.pending as u64, fired: stats.fired, cancelled: stats.cancelled }
    }

    /// Hands each timer that fires to `fire` (on a task of its own) until `stop` turns true.
    /// Runs once: the service's stream of due timers is taken by the first call.
    pub async fn run<F, Fut>(self: Arc<Self>, mut stop: watch::Receiver<bool>, fire: F)
    where
        F: Fn(Deadline) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(mut due) = self.service.expirations() else {
            tracing::error!("the timers already run");
            return;
        };
        loop {
            let (handle, what) = tokio::select! {
                fired = due.recv() => match fired {
                    Some(fired) => fired,
                    None => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            {
                // Forget the handle unless the timer was re-armed meanwhile.
                let mut handles = self.handles.lock();
                if handles.get(&what) == Some(&handle) {
                    handles.remove(&what);
                }
            }
            tokio::spawn(fire(what));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee::core::ManualClock;

    /// Collects what fires, through `run`.
    fn collect(t: &Arc<ShopTimers>) -> (Arc<Mutex<Vec<Deadline>>>, watch::Sender<bool>) {
        let fired = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let sink = Arc::clone(&fired);
        tokio::spawn(Arc::clone(t).run(stopped, move |d| {
            sink.lock().push(d);
            async {}
        }));
        (fired, stop)
    }

    /// Lets the driver and the collector run (no time passes: the clock is manual).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn fires_in_time_and_skips_cancelled() {
        use Deadline::{Cart, Order};
        let manual = ManualClock::new();
        let clock = ShopClock::manual(manual.clone());
        let t = Arc::new(ShopTimers::new(clock.clone(), Duration::from_millis(1)).unwrap());
        let (fired, _stop) = collect(&t);
        let now = clock.now_ms();
        t.schedule(Order(1), now + 300);
        t.schedule(Order(2), now + 100);
        t.schedule(Order(3), now + 200);
        t.schedule(Cart(1), now + 150);
        t.cancel(Order(3));
        t.schedule(Order(1), now + 250); // re-armed earlier
        t.schedule(Cart(1), now + 400); // a cart change moves its expiry later
        settle().await;
        assert!(fired.lock().is_empty());
        manual.advance(Duration::from_millis(250));
        settle().await;
        let mut due = fired.lock().clone();
        due.sort_unstable_by_key(|d| format!("{d:?}"));
        assert_eq!(due, vec![Order(1), Order(2)]);
        let stats = t.stats();
        assert_eq!((stats.pending, stats.fired, stats.cancelled), (1, 2, 1));
        manual.advance(Duration::from_millis(150));
        settle().await;
        assert_eq!(fired.lock().last(), Some(&Cart(1)));
        // A deadline already past fires at once.
        t.schedule(Order(4), now - 1_000);
        settle().await;
        assert_eq!(fired.lock().last(), Some(&Order(4)));
        assert_eq!(t.stats().pending, 0);
    }
}
