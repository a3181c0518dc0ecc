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

/// An event count that threads bump at once without sharing a cache line: one stripe per
/// [`thread_index`] (four per CPU, 8 to 256) and a shared stripe for threads beyond them.
///
/// A thread that owns its stripe adds with a load and a store, no read-modify-write (nobody
/// else writes that stripe); the shared stripe uses `fetch_add`. Reading sums the stripes,
/// so it costs a pass over them: count with this where counting is hot and reading is rare
/// (hits, calls refused under load), with [`Counter`] elsewhere. `Relaxed` throughout, as
/// for [`Counter`].
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
    /// One per thread index below `len() - 1`; the last is shared.
    stripes: Box<[CachePadded<AtomicU64>]>,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl StripedCounter {
    /// A counter at zero.
    #[must_use]
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, std::num::NonZeroUsize::get);
        let owned = if cfg!(loom) { 3 } else { (cpus * 4).clamp(8, 256) };
        Self { stripes: (0..=owned).map(|_| CachePadded::new(AtomicU64::new(0))).collect() }
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        let shared = self.stripes.len() - 1;
        let index = thread_index();
        if index < shared {
            // Only this thread writes its stripe (thread indices of live threads differ).
            let stripe = &self.stripes[index];
            stripe.store(stripe.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            self.stripes[shared].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The sum of all stripes.
    #[must_use]
    pub fn get(&self) -> u64 {
        self.stripes.iter().fold(0, |sum, s| sum.wrapping_add(s.load(Ordering::Relaxed)))
    }
}
