//! A thread-safe wheel: several [`TimingWheel`]s behind their own locks, so threads that
//! schedule and cancel at the same time rarely meet.
//!
//! This is the synchronous core of [`TimerService`](crate::TimerService) (which adds a tokio
//! driver task), usable on its own by anything that runs its own poll loop. All its
//! concurrency goes through `levee_core::sync`, so the loom tests check it.
//!
//! # Waking the poller without losing a wake-up
//!
//! A poller sleeps until the earliest deadline it saw. A timer inserted meanwhile that is due
//! earlier must wake it. Each shard remembers, under its lock, the next deadline the poller
//! last saw in it (`reported`). An insert compares its deadline with that value *under the
//! same lock*: if it is earlier, the insert reports `true` ("wake the poller") and lowers
//! `reported`. Because the poller reads the shard and sets `reported` under that lock too,
//! either the poller's pass saw the new timer, or the insert saw the poller's `reported` and
//! asks for a wake-up: there is no window in between.
//!
//! # Skipping idle shards
//!
//! `reported` is never later than the shard's real next deadline (the poller sets it from the
//! wheel, inserts only lower it; a cancel leaves it early, which costs at most an early
//! look). So a shard whose `reported` is after `now` has nothing due, and the poller skips it
//! without its lock, taking `reported` as the shard's next deadline. `reported` is an atomic
//! written only under the shard's lock and read by the poller without it: a read that misses
//! an insert's lowering is the case above (the insert asks for a wake-up), and a read that
//! sees it takes the lock. A pass over many shards, most of them idle (one per thread that
//! ever scheduled), costs a load per idle shard instead of a lock.

use std::fmt;

use levee_core::ConfigError;
use levee_core::sync::{AtomicU64, CachePadded, Mutex, Ordering};

use crate::error::TimerError;
use crate::key::TimerKey;
use crate::wheel::{Expired, MAX_ENTRIES, TimingWheel, TimingWheelBuilder};

/// Names one timer of a [`ShardedWheel`]: its shard and its key there. `Copy`, 16 bytes.
///
/// ```
/// use levee_timer::{ShardedWheel, TimingWheel};
///
/// let wheel = ShardedWheel::<&str>::new(4, TimingWheel::builder())?;
/// let (handle, _earliest) = wheel.insert(1_000_000, "ping").unwrap();
/// assert!(wheel.contains(handle));
/// assert_eq!(wheel.cancel(handle), Some("ping"));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerHandle {
    pub(crate) shard: u32,
    pub(crate) key: TimerKey,
}

impl TimerHandle {
    /// The key within its shard's wheel.
    #[must_use]
    pub fn key(&self) -> TimerKey {
        self.key
    }
}

struct Shard<T> {
    wheel: TimingWheel<T>,
    cancelled: u64,
}

struct Slot<T> {
    shard: Mutex<Shard<T>>,
    /// The shard's next deadline as the poller last saw it (`u64::MAX`: nothing), lowered by
    /// inserts that are due earlier. Written under `shard`'s lock only; the poller reads it
    /// without (module docs), so Relaxed: what it orders is the lock's and the wake-up's job.
    reported: AtomicU64,
}

impl<T> Slot<T> {
    /// Lowers `reported` to `deadline` if that is earlier; true when it was (wake the poller).
    /// Called under `shard`'s lock.
    fn lower(&self, deadline: u64) -> bool {
        let wake = deadline < self.reported.load(Ordering::Relaxed);
        if wake {
            self.reported.store(deadline, Ordering::Relaxed);
        }
        wake
    }
}

/// What one [`ShardedWheel::poll_expired`] pass found.
///
/// ```
/// use levee_timer::{ShardedWheel, TimingWheel};
///
/// let wheel = ShardedWheel::<u32>::new(2, TimingWheel::builder())?;
/// wheel.insert(1_000_000, 1).unwrap();
/// wheel.insert(9_000_000, 2).unwrap();
/// let mut due = Vec::new();
/// let polled = wheel.poll_expired(5_000_000, &mut due, usize::MAX);
/// assert_eq!((polled.fired, polled.more), (1, false));
/// assert!(polled.next.is_some()); // come back for the second timer
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// How many due timers were appended to the output.
    pub fired: usize,
    /// The earliest time a shard needs attention again (`None`: no timer pending). The
    /// poller may sleep until then unless an insert asks it to wake earlier.
    pub next: Option<u64>,
    /// True when the pass stopped at its limit with due timers left: poll again at once.
    pub more: bool,
}

/// Several [`TimingWheel`]s, each behind its own lock, shared by `&self`.
///
/// Inserts go to the calling thread's shard (or one chosen with
/// [`insert_on`](Self::insert_on)), so threads do not contend on one lock; a handle names its
/// shard, so cancel and reset go straight there. One poller (for example
/// [`TimerService`](crate::TimerService)'s driver task) calls
/// [`poll_expired`](Self::poll_expired) and sleeps until the returned `next`, unless an
/// insert returns `true`, meaning the new timer is due before anything the poller saw.
///
/// ```
/// use levee_timer::{ShardedWheel, TimingWheel};
///
/// let wheel = ShardedWheel::new(4, TimingWheel::builder()).unwrap();
/// let (a, wake) = wheel.insert(5_000_000, "a").unwrap();
/// assert!(wake, "earlier than anything the poller saw: wake it");
/// let (b, _) = wheel.insert(9_000_000, "b").unwrap();
/// assert_eq!(wheel.cancel(b), Some("b"));
///
/// let mut due = Vec::new();
/// let polled = wheel.poll_expired(5_000_000, &mut due, usize::MAX);
/// assert_eq!(due[0].value, "a");
/// assert_eq!((polled.fired, polled.next), (1, None));
/// assert_eq!(wheel.cancel(a), None, "fired");
/// ```
pub struct ShardedWheel<T> {
    shards: Box<[CachePadded<Slot<T>>]>,
    max_pending: usize,
}

impl<T> fmt::Debug for ShardedWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedWheel")
            .field("shards", &self.shards.len())
            .field("max_pending", &self.max_pending)
            .finish_non_exhaustive()
    }
}

impl<T> ShardedWheel<T> {
    /// `shards` wheels built from `wheel`'s settings; its `max_pending` (if set) bounds the
    /// total and is split between the shards.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `shards` when it is zero or above 1024, or the wheel
    /// builder's error, or `max_pending` when it is below the number of shards.
    pub fn new(shards: usize, wheel: TimingWheelBuilder) -> Result<Self, ConfigError> {
        if !(1..=1024).contains(&shards) {
            return Err(ConfigError::new("shards", format!("must be in 1..=1024, got {shards}")));
        }
        let total = wheel.max_pending_setting();
        if let Some(total) = total {
            if total < shards {
                return Err(ConfigError::new(
                    "max_pending",
                    format!("must be at least the number of shards ({shards}), got {total}"),
                ));
            }
        }
        // Validate the settings once, with the total bound.
        wheel.clone().build::<()>()?;
        let mut built = Vec::with_capacity(shards);
        for i in 0..shards {
            let share = match total {
                Some(total) => total / shards + usize::from(i < total % shards),
                None => MAX_ENTRIES,
            };
            let wheel = wheel.clone().max_pending(share).build()?;
            built.push(CachePadded::new(Slot {
                shard: Mutex::new(Shard { wheel, cancelled: 0 }),
                reported: AtomicU64::new(u64::MAX),
            }));
        }
        Ok(Self { shards: built.into_boxed_slice(), max_pending: total.unwrap_or(usize::MAX) })
    }

    /// Number of shards.
    #[must_use]
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Schedules `value` for `deadline` on the calling thread's shard. Returns the handle and
    /// whether the poller must be woken (the timer is due before anything it saw).
    ///
    /// # Errors
    /// [`TimerError::Full`] with the value when `max_pending` timers are pending in all shards.
    pub fn insert(&self, deadline: u64, value: T) -> Result<(TimerHandle, bool), TimerError<T>> {
        self.insert_on(levee_core::sync::thread_index(), deadline, value)
    }

    /// [`insert`](Self::insert) on shard `hint % shards` (or, when that one is full, the next
    /// one with room).
    ///
    /// # Errors
    /// [`TimerError::Full`] with the value when every shard is full.
    pub fn insert_on(
        &self,
        hint: usize,
        deadline: u64,
        value: T,
    ) -> Result<(TimerHandle, bool), TimerError<T>> {
        let n = self.shards.len();
        let first = hint % n;
        let mut value = value;
        for i in 0..n {
            let shard = (first + i) % n;
            let slot = &self.shards[shard];
            let mut guard = slot.shard.lock();
            match guard.wheel.insert(deadline, value) {
                Ok(key) => {
                    let wake = slot.lower(deadline);
                    return Ok((TimerHandle { shard: shard as u32, key }, wake));
                }
                Err(TimerError::Full { value: v, .. }) => value = v,
                Err(TimerError::StaleKey | TimerError::ForeignKey) => {
                    unreachable!("insert only fails with Full")
                }
            }
        }
        Err(TimerError::Full { value, max_pending: self.max_pending })
    }

    fn shard(&self, handle: TimerHandle) -> Option<&Mutex<Shard<T>>> {
        self.shards.get(handle.shard as usize).map(|s| &s.shard)
    }

    /// Cancels a pending timer and returns its value; `None` when it already fired (was
    /// handed to the poller), was cancelled, or the handle is from another wheel.
    pub fn cancel(&self, handle: TimerHandle) -> Option<T> {
        let mut guard = self.shard(handle)?.lock();
        let value = guard.wheel.cancel(handle.key)?;
        guard.cancelled += 1;
        Some(value)
    }

    /// Moves a pending timer to a new deadline. Returns whether the poller must be woken.
    ///
    /// # Errors
    /// [`TimerError::StaleKey`] when the timer fired or was cancelled,
    /// [`TimerError::ForeignKey`] when the handle is from another wheel.
    pub fn reset(&self, handle: TimerHandle, deadline: u64) -> Result<bool, TimerError> {
        let slot = self.shards.get(handle.shard as usize).ok_or(TimerError::ForeignKey)?;
        let mut guard = slot.shard.lock();
        guard.wheel.reset(handle.key, deadline)?;
        Ok(slot.lower(deadline))
    }

    /// Runs `f` on a pending timer's value under its shard's lock; `None` when the timer is
    /// no longer pending.
    pub fn with_value<R>(&self, handle: TimerHandle, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut guard = self.shard(handle)?.lock();
        guard.wheel.get_mut(handle.key).map(f)
    }

    /// True while the handle names a pending timer.
    #[must_use]
    pub fn contains(&self, handle: TimerHandle) -> bool {
        self.shard(handle).is_some_and(|s| s.lock().wheel.contains(handle.key))
    }

    /// The poller's pass: appends the timers due by `now` to `out` (at most `limit` per
    /// shard) and says when to come back. Each shard with something due by `now` is locked
    /// once; the others are skipped without their lock (module docs).
    pub fn poll_expired(
        &self,
        now: u64,
        out: &mut Vec<Expired<T, TimerHandle>>,
        limit: usize,
    ) -> Polled {
        let mut polled = Polled { fired: 0, next: None, more: false };
        for (index, slot) in self.shards.iter().enumerate() {
            let reported = slot.reported.load(Ordering::Relaxed);
            if reported > now {
                // Nothing due here; come back by `reported` (or when an insert says so).
                if reported != u64::MAX {
                    polled.next = Some(polled.next.map_or(reported, |n| n.min(reported)));
                }
                continue;
            }
            let mut guard = slot.shard.lock();
            let mut taken = 0;
            while taken < limit {
                match guard.wheel.poll_expired_entry(now) {
                    Some(e) => out.push(Expired {
                        key: TimerHandle { shard: index as u32, key: e.key },
                        deadline: e.deadline,
                        value: e.value,
                    }),
                    None => break,
                }
                taken += 1;
            }
            polled.fired += taken;
            let next = guard.wheel.next_deadline();
            if taken == limit && next.is_some_and(|n| n <= now) {
                polled.more = true;
            }
            slot.reported.store(next.unwrap_or(u64::MAX), Ordering::Relaxed);
            polled.next = match (polled.next, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        polled
    }

    /// Pending timers over all shards (locks each shard in turn, so concurrent changes may
    /// or may not be counted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.shard.lock().wheel.len()).sum()
    }

    /// True when no timer is pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Timers cancelled so far (through [`cancel`](Self::cancel)).
    #[must_use]
    pub fn cancelled(&self) -> u64 {
        self.shards.iter().map(|s| s.shard.lock().cancelled).sum()
    }

    /// The total bound on pending timers (`usize::MAX` when unbounded).
    #[must_use]
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// [`TimingWheel::compact`] on every shard.
    pub fn compact(&self) {
        for s in self.shards.iter() {
            s.shard.lock().wheel.compact();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn max_pending_is_a_total_spread_over_shards() {
        let wheel = ShardedWheel::new(4, TimingWheel::builder().max_pending(10)).unwrap();
        // One thread fills every shard before it is refused.
        for i in 0..10 {
            wheel.insert_on(0, 1_000 + i, i).unwrap();
        }
        let err = wheel.insert_on(0, 5, 99).unwrap_err();
        assert_eq!(err.into_value(), Some(99));
        assert_eq!(wheel.len(), 10);
    }

    #[test]
    fn bad_settings() {
        assert_eq!(
            ShardedWheel::<()>::new(0, TimingWheel::builder()).unwrap_err().setting,
            "shards"
        );
        let e = ShardedWheel::<()>::new(4, TimingWheel::builder().max_pending(3)).unwrap_err();
        assert_eq!(e.setting, "max_pending");
    }

    #[test]
    fn wake_flag_only_for_earlier_timers() {
        let wheel = ShardedWheel::new(1, TimingWheel::builder()).unwrap();
        assert!(wheel.insert(10_000_000, ()).unwrap().1);
        assert!(!wheel.insert(20_000_000, ()).unwrap().1, "later than one already reported");
        let mut out = Vec::new();
        let polled = wheel.poll_expired(0, &mut out, usize::MAX);
        assert_eq!(polled.next, Some(10_000_000));
        assert!(!wheel.insert(10_000_000, ()).unwrap().1);
        let (h, wake) = wheel.insert(9_000_000, ()).unwrap();
        assert!(wake);
        assert!(!wheel.reset(h, 9_500_000).unwrap());
        assert!(wheel.reset(h, 1).unwrap());
    }

    #[test]
    fn idle_shards_are_skipped_and_still_report_their_next_deadline() {
        let wheel = ShardedWheel::new(4, TimingWheel::builder()).unwrap();
        let (a, _) = wheel.insert_on(0, 10_000_000, 0).unwrap();
        wheel.insert_on(1, 20_000_000, 1).unwrap();
        let mut out = Vec::new();
        assert_eq!(wheel.poll_expired(0, &mut out, usize::MAX).next, Some(10_000_000));
        // Nothing due by 5 ms: every shard skipped, their deadlines still counted.
        assert_eq!(wheel.poll_expired(5_000_000, &mut out, usize::MAX).next, Some(10_000_000));
        // A cancel leaves the shard's reported deadline early: one early look, then the truth.
        assert_eq!(wheel.cancel(a), Some(0));
        assert_eq!(wheel.poll_expired(5_000_000, &mut out, usize::MAX).next, Some(10_000_000));
        assert_eq!(wheel.poll_expired(10_000_000, &mut out, usize::MAX).next, Some(20_000_000));
        assert!(out.is_empty());
        let polled = wheel.poll_expired(20_000_000, &mut out, usize::MAX);
        assert_eq!((polled.fired, polled.next, out[0].value), (1, None, 1));
    }

    #[test]
    fn limit_reports_more() {
        let wheel = ShardedWheel::new(2, TimingWheel::builder()).unwrap();
        for i in 0..10 {
            wheel.insert_on(i, 0, i).unwrap();
        }
        let mut out = Vec::new();
        let polled = wheel.poll_expired(0, &mut out, 3);
        assert_eq!((polled.fired, polled.more), (6, true));
        let polled = wheel.poll_expired(0, &mut out, 3);
        assert_eq!((polled.fired, polled.more, polled.next), (4, false, None));
    }

    #[test]
    fn foreign_handles_are_refused() {
        let a: ShardedWheel<i32> = ShardedWheel::new(2, TimingWheel::builder()).unwrap();
        let b = ShardedWheel::new(8, TimingWheel::builder()).unwrap();
        let (h, _) = b.insert_on(7, 5, 1).unwrap();
        assert_eq!(a.cancel(h), None);
        assert_eq!(a.reset(h, 1), Err(TimerError::ForeignKey));
        let (h, _) = b.insert_on(0, 5, 1).unwrap();
        assert_eq!(a.reset(h, 1), Err(TimerError::ForeignKey));
        assert_eq!(a.with_value(h, |v| *v), None);
    }
}
