//! A statistics counter on its own cache line.

use crate::sync::{AtomicU64, CachePadded, Ordering};

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
