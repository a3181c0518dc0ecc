//! Statistics counters: [`Counter`] on its own cache line, [`StripedCounter`] on one line per
//! thread.

use crate::sync::{AtomicU64, CachePadded, Ordering, thread_index};

/// A monotonically increasing event count, padded so that counting one thing never slows down
/// a neighbouring hot word.
///
/// Counts use `Relaxed` ordering: they are statistics, read in snapshots, and order nothing.
///
/// ```
/// use levee_core::Counter;
///
/// let rejected = Counter::new();
/// rejected.incr();
/// rejected.add(2);
/// assert_eq!(rejected.get(), 3);
/// ```
#[derive(Debug, Default)]
pub struct Counter(CachePadded<AtomicU64>);

impl Counter {
    /// A counter at zero.
    #[must_use]
    pub fn new() -> Self {
        Self(CachePadded::new(AtomicU64::new(0)))
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    #[inline]
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An event count that threads bump at once without sharing a cache line.
///
/// The stripes (a power of two, each on its own cache line) come in two halves. A thread
/// whose [`thread_index`] is below the half owns stripe `index` and adds with a load and a
/// store, no read-modify-write (no other live thread has its number); any other thread adds
/// with `fetch_add` to a stripe of the second half picked by its number. Reading sums the
/// stripes, so count with this where counting is hot and reading is rare (hits, calls refused
/// under load), with [`Counter`] elsewhere. `Relaxed` throughout, as for [`Counter`].
///
/// ```
/// use levee_core::StripedCounter;
///
/// let hits = StripedCounter::new();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| (0..1000).for_each(|_| hits.incr()));
///     }
/// });
/// hits.add(2);
/// assert_eq!(hits.get(), 4002);
/// ```
#[derive(Debug)]
pub struct StripedCounter {
    stripes: Box<[CachePadded<AtomicU64>]>,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl StripedCounter {
    /// A counter at zero with [`owned_slots`](crate::sync::owned_slots) stripes: four per
    /// CPU, 8 to 256 (8 under loom).
    #[must_use]
    pub fn new() -> Self {
        Self::with_stripes(if cfg!(loom) { 8 } else { crate::sync::owned_slots() })
    }

    /// A counter at zero with `stripes` stripes (rounded up to a power of two, at least 2),
    /// for counters of which there are many (128 bytes each).
    #[must_use]
    pub fn with_stripes(stripes: usize) -> Self {
        let n = stripes.clamp(2, 1 << 16).next_power_of_two();
        Self { stripes: (0..n).map(|_| CachePadded::new(AtomicU64::new(0))).collect() }
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        let half = self.stripes.len() / 2;
        let index = thread_index();
        if index < half {
            // Only this thread writes stripe `index` (numbers of live threads differ, and
            // everyone else uses the second half).
            let stripe = &self.stripes[index];
            stripe.store(stripe.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            self.stripes[half + index % half].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The sum of all stripes.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.stripes.iter().fold(0, |sum, s| sum.wrapping_add(s.load(Ordering::Relaxed)))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn threads_beyond_the_owned_stripes_count_too() {
        let counter = StripedCounter::with_stripes(3);
        assert_eq!(counter.stripes.len(), 4, "rounded up to a power of two");
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| (0..1000).for_each(|_| counter.incr()));
            }
        });
        assert_eq!(counter.get(), 16_000);
    }
}
