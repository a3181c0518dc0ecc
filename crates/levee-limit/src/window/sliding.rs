//! The sliding-window counter: a ring of time buckets (Sentinel's `LeapArray`), lock-free.
//!
//! The window is split into `buckets` buckets of `bucket = window / buckets` (rounded up).
//! Bucket number `b` (the clock divided by the bucket length) lives in slot `b % buckets`,
//! whose word packs `b` (mod 2^40) with the bucket's count. The count over "the window" at
//! bucket `b` is the sum of the slots whose bucket number is in `b - buckets + 1 ..= b`.
//!
//! **Stale buckets.** A slot whose number is older than the current bucket is from a previous
//! lap of the ring; the first writer of the new bucket replaces number and count in one
//! compare-and-swap, so a reset can never erase a count made in the new bucket (the CAS
//! fails and is retried on the new value), which Sentinel needs a lock for.
//!
//! **Admission without a lock.** Summing the slots and adding to the current one cannot be
//! one atomic step, so a check *reserves then validates*: it adds its cells to the current
//! bucket, sums the window (its own cells included), and takes them back if the sum exceeds
//! the limit. Among checks that count in the same bucket, the one that validates last sees
//! every admitted check's cells (each added before validating), so the admitted total never
//! exceeds the limit; racing checks can only refuse more. A read-only sum first refuses the
//! common over-limit case without writing at all.

use std::fmt;
use std::time::Duration;

use levee_core::sync::{AtomicU64, Ordering};
use levee_core::{Clock, ConfigError, FastClock};

use super::{MAX_WINDOW_LIMIT, Slot, WindowQuota, classify, count_of, distance, index_of, pack};
use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::meter::{LimiterBuilder, Meter};
use crate::state::LimitState;
use crate::stats::RateStats;
use crate::wait::Jitter;

/// The most buckets a sliding window may have.
pub const MAX_BUCKETS: u32 = 1024;

/// At most `limit` cells in any `buckets` consecutive buckets of a ring that spans the window.
///
/// With 10 buckets of a one-second window, the limit holds over every 1 s span that starts
/// on a 100 ms boundary. Each bucket is one atomic word; see the module docs for how stale
/// buckets are reset and how admission stays exact without a lock.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{SlidingWindowLimiter, WindowQuota};
///
/// let clock = ManualClock::new();
/// let limiter = SlidingWindowLimiter::builder(WindowQuota::per_second(3))
///     .buckets(10)
///     .clock(clock.clone())
///     .build()?;
/// assert!(limiter.check_n(2).is_ok()); // bucket 0
/// clock.advance(Duration::from_millis(500));
/// assert!(limiter.check().is_ok()); // bucket 5: three in the last second
/// let refusal = limiter.check().unwrap_err();
/// assert_eq!(refusal.retry_after(), Duration::from_millis(500)); // bucket 0 leaves at 1 s
/// assert_eq!(limiter.count(), 3);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct SlidingWindowLimiter<C = FastClock> {
    slots: Box<[AtomicU64]>,
    bucket: u64,
    limit: u32,
    meter: Meter<C>,
    quota: WindowQuota,
}

/// What a [`SlidingWindowBuilder`] collects besides the shared settings.
///
/// ```
/// use levee_limit::{SlidingWindowLimiter, WindowQuota};
///
/// // The settings a `SlidingWindowBuilder` carries: set through its methods.
/// let limiter = SlidingWindowLimiter::builder(WindowQuota::per_minute(600)).buckets(12).build()?;
/// assert!(limiter.check().is_ok());
/// assert_eq!(limiter.count(), 1);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindowSettings {
    quota: WindowQuota,
    buckets: u32,
}

/// Builds a [`SlidingWindowLimiter`] (see [`LimiterBuilder`] for the shared settings).
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{SlidingWindowLimiter, WindowQuota};
///
/// let limiter = SlidingWindowLimiter::builder(WindowQuota::per_second(1))
///     .buckets(10)
///     .clock(ManualClock::new())
///     .build()?;
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_err());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub type SlidingWindowBuilder<C = FastClock> = LimiterBuilder<SlidingWindowSettings, C>;

impl<C> fmt::Debug for SlidingWindowLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlidingWindowLimiter")
            .field("quota", &self.quota)
            .field("buckets", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl SlidingWindowLimiter<FastClock> {
    /// A limiter for `quota` with 10 buckets on the default clock.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `limit` or `window` when one is zero or too large.
    pub fn new(quota: WindowQuota) -> Result<Self, ConfigError> {
        Self::builder(quota).build()
    }

    /// A builder for `quota` (10 buckets unless set).
    pub fn builder(quota: WindowQuota) -> SlidingWindowBuilder<FastClock> {
        LimiterBuilder::new(SlidingWindowSettings { quota, buckets: 10 }, true)
    }
}

impl<C: Clock> SlidingWindowLimiter<C> {
    /// Admits one cell.
    ///
    /// # Errors
    /// [`Throttled`] when the window is full, until its oldest bucket that makes room leaves.
    #[inline]
    pub fn check(&self) -> Result<(), Throttled> {
        let now = self.meter.now();
        self.meter.settle(self.admit(now, 1).map_err(CheckNError::expect_throttled))
    }

    /// Admits `n` cells at once (all or none; `n == 0` succeeds).
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit in the window now;
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the limit.
    pub fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        self.meter.settle_n(n, self.admit(self.meter.now(), n))
    }

    /// Admits `n` cells at clock reading `now` or says why not, without counting (the meter
    /// counts; waiting retries through here).
    fn admit(&self, now: u64, n: u32) -> Result<(), CheckNError> {
        if n > self.limit {
            return Err(InsufficientCapacity { requested: n, burst: self.limit }.into());
        }
        if n == 0 {
            return Ok(());
        }
        let mut now = now;
        let bucket = now / self.bucket;
        // Read-only first: a full window refuses without writing.
        if self.sum(bucket) + u64::from(n) > u64::from(self.limit) {
            return Err(self.refuse(now, bucket, n).into());
        }
        let (bucket, added) = self.add_to(&mut now, n);
        if !added {
            return Err(self.refuse(now, bucket, n).into());
        }
        if self.sum(bucket) > u64::from(self.limit) {
            self.take_back(bucket, n);
            return Err(self.refuse(now, bucket, n).into());
        }
        Ok(())
    }

    /// Counts `n` cells in the current bucket without checking the limit (for using the
    /// window as a rate meter, or recording work admitted elsewhere).
    pub fn record(&self, n: u32) {
        let mut now = self.meter.now();
        // Saturates at MAX_WINDOW_LIMIT per bucket; only a meter far beyond any limit gets
        // there.
        let _ = self.add_to(&mut now, n.min(MAX_WINDOW_LIMIT));
    }

    /// Adds `n` to the current bucket's slot, resetting the slot if it is stale. If the slot
    /// already holds a later bucket, `now` was read before another thread's reading and is
    /// read again (see [`Slot::Later`]). Returns the bucket counted in and whether the cells
    /// were added (not when the bucket's count would overflow).
    fn add_to(&self, now: &mut u64, n: u32) -> (u64, bool) {
        let mut bucket = *now / self.bucket;
        let mut reread = false;
        'slot: loop {
            let slot = &self.slots[self.slot_of(bucket)];
            // Relaxed loads and CAS: the slot words publish no other memory, and each CAS
            // acts on the latest value (see the module docs for why the limit still holds).
            let mut word = slot.load(Ordering::Relaxed);
            loop {
                let count = match classify(word, bucket) {
                    Slot::Current(count) => count,
                    Slot::Later if !reread => {
                        reread = true;
                        *now = self.meter.now();
                        bucket = *now / self.bucket;
                        continue 'slot;
                    }
                    Slot::Later | Slot::Stale => 0,
                };
                let Some(total) = count.checked_add(n).filter(|&t| t <= MAX_WINDOW_LIMIT) else {
                    return (bucket, false);
                };
                match slot.compare_exchange_weak(
                    word,
                    pack(bucket, total),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return (bucket, true),
                    Err(actual) => word = actual,
                }
            }
        }
    }

    /// Removes a reservation of `n` from `bucket`'s slot, unless the slot has moved on to a
    /// later bucket (then the reservation left the window with it).
    fn take_back(&self, bucket: u64, n: u32) {
        let slot = &self.slots[self.slot_of(bucket)];
        let mut word = slot.load(Ordering::Relaxed); // Relaxed: as in `add_to`.
        while distance(index_of(word), bucket) == 0 {
            let next = word - u64::from(n); // the count holds our n
            match slot.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    #[inline]
    fn slot_of(&self, bucket: u64) -> usize {
        (bucket % self.slots.len() as u64) as usize
    }

    /// Cells in the window ending with `bucket`.
    fn sum(&self, bucket: u64) -> u64 {
        self.in_window(bucket).map(|(_, count)| u64::from(count)).sum()
    }

    /// The buckets of the window ending with `bucket`, as (age in buckets, count).
    fn in_window(&self, bucket: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        let buckets = self.slots.len() as u64;
        self.slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed)) // Relaxed: module docs.
            .map(move |word| (distance(bucket, index_of(word)), count_of(word)))
            .filter(move |&(age, _)| age < buckets)
    }

    /// Builds the refusal: the earliest time at which enough of the oldest buckets have
    /// left the window for `n` more cells to fit.
    #[cold]
    fn refuse(&self, now: u64, bucket: u64, n: u32) -> Throttled {
        let buckets = self.slots.len() as u64;
        let mut total = self.sum(bucket);
        let mut earliest = bucket.saturating_add(1).saturating_mul(self.bucket);
        // Oldest first: bucket `bucket - buckets + 1 + age` leaves the window when bucket
        // `bucket + 1 + age` starts.
        for age in 0..buckets {
            if total + u64::from(n) <= u64::from(self.limit) {
                break;
            }
            let Some(oldest) = (bucket + 1 + age).checked_sub(buckets) else { continue };
            let word = self.slots[self.slot_of(oldest)].load(Ordering::Relaxed);
            if distance(index_of(word), oldest) == 0 {
                total = total.saturating_sub(u64::from(count_of(word)));
            }
            earliest = (bucket + 1 + age).saturating_mul(self.bucket);
        }
        Throttled::new(now, earliest.max(now))
    }

    /// Cells counted in the window ending now.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.sum(self.meter.now() / self.bucket)
    }

    /// Cells still admissible now.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        u64::from(self.limit).saturating_sub(self.count())
    }

    /// The limiter's state now: the cells still admissible, and the time until the newest
    /// bucket that counts a cell leaves the window (zero when none does: the limiter is
    /// full). See [`LimitState`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_core::ManualClock;
    /// use levee_limit::{SlidingWindowLimiter, WindowQuota};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = SlidingWindowLimiter::builder(WindowQuota::per_second(10))
    ///     .buckets(10)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// limiter.check_n(2)?; // bucket 0
    /// clock.advance(Duration::from_millis(450));
    /// limiter.check()?; // bucket 4, which leaves the window at 1.4 s
    /// let state = limiter.state();
    /// assert_eq!((state.remaining, state.reset), (7, Duration::from_millis(950)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn state(&self) -> LimitState {
        let now = self.meter.now();
        let bucket = now / self.bucket;
        let (count, newest) = self.in_window(bucket).filter(|&(_, count)| count > 0).fold(
            (0u64, None::<u64>),
            |(total, newest), (age, count)| {
                (total + u64::from(count), Some(newest.map_or(age, |n| n.min(age))))
            },
        );
        // The bucket `age` buckets old leaves when bucket `bucket - age + buckets` starts.
        let buckets = self.slots.len() as u64;
        let reset = newest.map_or(0, |age| {
            (bucket.saturating_sub(age) + buckets).saturating_mul(self.bucket).saturating_sub(now)
        });
        LimitState {
            remaining: u64::from(self.limit).saturating_sub(count) as u32,
            reset: Duration::from_nanos(reset),
        }
    }

    /// The current rate in cells per second over the window.
    #[must_use]
    pub fn rate(&self) -> f64 {
        self.count() as f64 / self.window().as_secs_f64()
    }

    /// The effective window: `buckets * bucket length` (the configured window rounded up to
    /// a whole number of nanoseconds per bucket).
    #[must_use]
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.bucket * self.slots.len() as u64)
    }

    /// The quota as configured.
    #[must_use]
    pub fn quota(&self) -> WindowQuota {
        self.quota
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> RateStats {
        self.meter.stats()
    }

    /// Waits until one cell is admitted, sleeping on the limiter's clock.
    /// Cancellation-safe: dropping the future consumes nothing.
    pub async fn until_ready(&self) {
        // One cell always fits a limit of at least one.
        let _ = self.until_n_ready(1).await;
    }

    /// Waits until `n` cells are admitted at once. Cancellation-safe.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the limit.
    pub async fn until_n_ready(&self, n: u32) -> Result<(), InsufficientCapacity> {
        self.meter.wait(n, self.limit, Jitter::NONE, |now, n| self.admit(now, n)).await
    }
}

impl<C: Clock> SlidingWindowBuilder<C> {
    /// Splits the window into `buckets` buckets (1 to [`MAX_BUCKETS`]; default 10). More
    /// buckets follow the window more closely and cost more per check.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.settings.buckets = buckets;
        self
    }

    /// Builds the limiter.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `limit`, `window` or `buckets` when one is zero or too large.
    pub fn build(self) -> Result<SlidingWindowLimiter<C>, ConfigError> {
        let (limit, window) = self.settings.quota.validate()?;
        let buckets = ConfigError::require_nonzero("buckets", self.settings.buckets)?;
        if buckets > MAX_BUCKETS {
            return Err(ConfigError::new(
                "buckets",
                format!("must be at most {MAX_BUCKETS}, got {buckets}"),
            ));
        }
        let bucket = window.div_ceil(u64::from(buckets));
        // Every slot starts "stale" (bucket number far behind any clock reading's).
        let start = (self.now() / bucket).wrapping_sub(1 << 39);
        let (SlidingWindowSettings { quota, .. }, meter) = self.into_parts();
        Ok(SlidingWindowLimiter {
            slots: (0..buckets).map(|_| AtomicU64::new(pack(start, 0))).collect(),
            bucket,
            limit,
            meter,
            quota,
        })
    }
}
