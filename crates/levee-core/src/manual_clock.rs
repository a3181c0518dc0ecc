//! [`ManualClock`]: time that moves only when a test moves it, and wakes the sleepers that
//! became due when it does.
//!
//! **Why no wake-up is lost.** A sleep registers under the registry lock after reading the
//! time under that lock; moving the clock updates the time (an atomic read-modify-write)
//! *before* taking the lock to wake what is due. If the sleep's critical section comes
//! first, the mover finds it registered and wakes it; if the mover's comes first, the
//! sleep's lock acquisition happens after the mover's release, which happens after the time
//! update, so the sleep reads the new time and completes at once. `now()` stays one atomic
//! load: readers never touch the lock.

use std::collections::BTreeMap;
use std::fmt;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::clock::{Clock, nanos};
use crate::sleep::Sleep;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};

/// A clock that moves only when told to; clones share the same time.
///
/// Many threads may read and advance it at once. It starts at zero unless built with
/// [`ManualClock::starting_at`]. [`sleep_until`](Clock::sleep_until) on it completes when the
/// clock is moved to the deadline, or, polled inside a tokio runtime, when tokio's time has
/// moved on by the remaining time (see [`Sleep`]): under `start_paused = true` the manual
/// clock then follows tokio's auto-advance.
///
/// ```
/// use std::time::Duration;
/// use levee_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(shared.now(), 5_000_000);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    shared: Arc<Shared>,
}

struct Shared {
    nanos: AtomicU64,
    sleepers: Mutex<Sleepers>,
}

/// Registered sleeps by `(deadline, id)`: the due ones are a prefix.
#[derive(Default)]
struct Sleepers {
    waiting: BTreeMap<(u64, u64), Waker>,
    next_id: u64,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now_nanos())
            .field("pending_sleeps", &self.pending_sleeps())
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock reading zero.
    #[must_use]
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// A clock reading `nanos`.
    #[must_use]
    pub fn starting_at(nanos: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                nanos: AtomicU64::new(nanos),
                sleepers: Mutex::new(Sleepers::default()),
            }),
        }
    }

    /// Moves time forward by `by` (saturating at `u64::MAX`), wakes the sleeps that became
    /// due, and returns the new reading.
    pub fn advance(&self, by: Duration) -> u64 {
        self.advance_nanos(nanos(by))
    }

    /// Moves time forward by `by` nanoseconds (saturating), wakes the sleeps that became due,
    /// and returns the new reading.
    pub fn advance_nanos(&self, by: u64) -> u64 {
        let mut current = self.shared.nanos.load(Ordering::Acquire);
        let next = loop {
            let next = current.saturating_add(by);
            match self.shared.nanos.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break next,
                Err(actual) => current = actual,
            }
        };
        self.wake_due(next, None);
        next
    }

    /// Sets the reading to `nanos` if that is later than now (time never goes backwards),
    /// wakes the sleeps that became due, and returns the reading after the call.
    pub fn set(&self, nanos: u64) -> u64 {
        self.set_leaving(nanos, None)
    }

    /// [`set`](Self::set), and takes the sleep registered as `leaving` out of the registry
    /// first (in the same lock), so that it is not woken.
    fn set_leaving(&self, nanos: u64, leaving: Option<(u64, u64)>) -> u64 {
        let now = self.shared.nanos.fetch_max(nanos, Ordering::AcqRel).max(nanos);
        self.wake_due(now, leaving);
        now
    }

    /// Sleeps registered and not yet due (a sleep registers when first polled before its
    /// deadline, and leaves when it completes or is dropped).
    #[must_use]
    pub fn pending_sleeps(&self) -> usize {
        self.shared.sleepers.lock().waiting.len()
    }

    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        // Acquire pairs with the AcqRel of `advance`/`set`: what a thread wrote before moving
        // time is visible to one that observes the new time.
        self.shared.nanos.load(Ordering::Acquire)
    }

    /// Wakes every sleep due at `now`, but for `leaving` (removed unwoken). Called after the
    /// time update (module docs).
    fn wake_due(&self, now: u64, leaving: Option<(u64, u64)>) {
        let due = {
            let mut sleepers = self.shared.sleepers.lock();
            if let Some(key) = leaving {
                sleepers.waiting.remove(&key);
            }
            if sleepers.waiting.first_key_value().is_none_or(|(&(at, _), _)| at > now) {
                return;
            }
            let later = match now.checked_add(1) {
                Some(after) => sleepers.waiting.split_off(&(after, 0)),
                None => BTreeMap::new(),
            };
            std::mem::replace(&mut sleepers.waiting, later)
        };
        // Wakers run outside the lock: a woken task may poll (and lock) at once.
        due.into_values().for_each(Waker::wake);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> u64 {
        self.now_nanos()
    }

    /// Completes when the clock is moved to `deadline` (see [`ManualClock`] and [`Sleep`]).
    fn sleep_until(&self, deadline: u64) -> Sleep {
        Sleep::manual(self, deadline)
    }
}

/// A sleep's registration with its manual clock; leaves the registry when dropped.
pub(crate) struct Waiter {
    clock: ManualClock,
    deadline: u64,
    key: Option<(u64, u64)>,
}

impl Waiter {
    pub(crate) fn new(clock: ManualClock, deadline: u64) -> Self {
        Self { clock, deadline, key: None }
    }

    /// Ready once the clock reads the deadline; otherwise registers (or refreshes) `cx`'s
    /// waker, to be woken by the move that makes it due.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleepers = self.clock.shared.sleepers.lock();
        if let Some(key) = self.key {
            return match sleepers.waiting.get_mut(&key) {
                Some(waker) => {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                    Poll::Pending
                }
                // Removed by the move that made it due.
                None => {
                    self.key = None;
                    Poll::Ready(())
                }
            };
        }
        // Read under the lock (module docs).
        if self.clock.now_nanos() >= self.deadline {
            return Poll::Ready(());
        }
        let key = (self.deadline, sleepers.next_id);
        sleepers.next_id += 1;
        sleepers.waiting.insert(key, cx.waker().clone());
        self.key = Some(key);
        Poll::Pending
    }

    /// Nanoseconds until the deadline on the clock.
    pub(crate) fn remaining(&self) -> u64 {
        self.deadline.saturating_sub(self.clock.now_nanos())
    }

    /// Moves the clock to the deadline (never backwards), waking every other sleep due by
    /// then. This one completes now: its own task, which is running it, is not woken for a
    /// second poll (a timer service's driver, sleeping once a tick on paused tokio time, was
    /// polled twice a tick for it).
    pub(crate) fn fire(&mut self) {
        let leaving = self.key.take();
        self.clock.set_leaving(self.deadline, leaving);
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.clock.shared.sleepers.lock().waiting.remove(&key);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
    use std::task::Wake;

    use super::*;
    use crate::block_on;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, StdOrdering::SeqCst);
        }
    }

    fn poll(sleep: &mut std::pin::Pin<Box<Sleep>>, wakes: &std::sync::Arc<Wakes>) -> Poll<()> {
        let waker = Waker::from(wakes.clone());
        sleep.as_mut().poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn only_moves_forward() {
        let clock = ManualClock::starting_at(100);
        assert_eq!(clock.now(), 100);
        assert_eq!(clock.advance_nanos(50), 150);
        assert_eq!(clock.set(120), 150, "set to the past is ignored");
        assert_eq!(clock.set(400), 400);
        assert_eq!(clock.advance(Duration::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn is_shared_across_threads() {
        let clock = ManualClock::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let clock = clock.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        clock.advance_nanos(1);
                    }
                });
            }
        });
        assert_eq!(clock.now(), 4000);
    }

    #[test]
    fn moving_the_clock_wakes_exactly_the_due_sleeps() {
        let clock = ManualClock::new();
        let (early, late) = (std::sync::Arc::new(Wakes::default()), std::sync::Arc::default());
        let mut a = Box::pin(clock.sleep_until(100));
        let mut b = Box::pin(clock.sleep(Duration::from_nanos(300)));
        assert!(poll(&mut a, &early).is_pending());
        assert!(poll(&mut b, &late).is_pending());
        assert_eq!(clock.pending_sleeps(), 2);
        clock.advance_nanos(99);
        assert_eq!(early.0.load(StdOrdering::SeqCst), 0, "not due yet");
        clock.advance_nanos(1);
        assert_eq!(early.0.load(StdOrdering::SeqCst), 1, "woken by the move");
        assert_eq!(late.0.load(StdOrdering::SeqCst), 0);
        assert!(poll(&mut a, &early).is_ready());
        assert!(a.is_elapsed());
        assert_eq!(clock.pending_sleeps(), 1);
        clock.set(u64::MAX);
        assert_eq!(late.0.load(StdOrdering::SeqCst), 1);
        assert!(poll(&mut b, &late).is_ready());
        assert_eq!(clock.pending_sleeps(), 0);
        // A deadline already reached needs no registration.
        assert!(clock.sleep_until(5).is_elapsed());
    }

    #[test]
    fn a_dropped_sleep_leaves_the_registry_and_is_never_woken() {
        let clock = ManualClock::new();
        let wakes = std::sync::Arc::new(Wakes::default());
        let mut sleep = Box::pin(clock.sleep_until(10));
        assert!(poll(&mut sleep, &wakes).is_pending());
        // Polling again with the same waker keeps one registration.
        assert!(poll(&mut sleep, &wakes).is_pending());
        assert_eq!(clock.pending_sleeps(), 1);
        drop(sleep);
        assert_eq!(clock.pending_sleeps(), 0);
        clock.advance_nanos(10);
        assert_eq!(wakes.0.load(StdOrdering::SeqCst), 0);
    }

    #[test]
    fn a_move_on_another_thread_wakes_block_on() {
        let clock = ManualClock::new();
        let mover = clock.clone();
        let t = std::thread::spawn(move || {
            while mover.pending_sleeps() == 0 {
                std::thread::yield_now();
            }
            mover.advance(Duration::from_secs(3600));
        });
        block_on(clock.sleep(Duration::from_secs(60)));
        assert_eq!(clock.now(), 3_600_000_000_000);
        t.join().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn paused_tokio_time_moves_the_manual_clock_to_each_deadline() {
        let clock = ManualClock::new();
        let start = tokio::time::Instant::now();
        clock.sleep_until(5_000_000).await;
        assert_eq!(clock.now(), 5_000_000);
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        // A deadline already passed returns at once and never moves the clock back.
        clock.sleep_until(1_000).await;
        assert_eq!(clock.now(), 5_000_000);
        // Two sleepers: tokio advances to the earlier first, and the clock with it.
        let (a, b) =
            (clock.sleep(Duration::from_millis(20)), clock.sleep(Duration::from_millis(10)));
        let first = tokio::select! { () = a => 20, () = b => 10 };
        assert_eq!((first, clock.now()), (10, 15_000_000));
        assert_eq!(clock.pending_sleeps(), 0, "the loser was dropped and deregistered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hand_move_wakes_a_sleep_before_tokio_time_gets_there() {
        let clock = ManualClock::new();
        let mover = clock.clone();
        let start = tokio::time::Instant::now();
        let moved = tokio::spawn(async move {
            tokio::task::yield_now().await;
            mover.advance(Duration::from_secs(10));
        });
        clock.sleep(Duration::from_secs(10)).await;
        assert!(start.elapsed() < Duration::from_secs(10), "woken by the move, not by tokio");
        moved.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_fired_by_tokio_time_does_not_wake_its_own_task() {
        let clock = ManualClock::new();
        let wakes = std::sync::Arc::new(Wakes::default());
        let mut sleep = Box::pin(clock.sleep(Duration::from_millis(5)));
        assert!(poll(&mut sleep, &wakes).is_pending());
        assert_eq!(clock.pending_sleeps(), 1);
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(wakes.0.load(StdOrdering::SeqCst), 1, "woken once, by tokio's sleep");
        assert!(poll(&mut sleep, &wakes).is_ready());
        assert_eq!(clock.now(), 5_000_000, "the clock moved to the deadline");
        assert_eq!(wakes.0.load(StdOrdering::SeqCst), 1, "and not woken again by that move");
        assert_eq!(clock.pending_sleeps(), 0);
    }

    #[test]
    fn works_behind_a_dyn_clock() {
        let manual = ManualClock::new();
        let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(manual.clone());
        let wakes = std::sync::Arc::new(Wakes::default());
        let mut sleep = Box::pin(clock.sleep(Duration::from_nanos(7)));
        assert!(poll(&mut sleep, &wakes).is_pending());
        manual.advance_nanos(7);
        assert!(poll(&mut sleep, &wakes).is_ready());
    }
}
