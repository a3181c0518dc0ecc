//! A statistics counter split over cache lines, so threads refusing calls at the same time do
//! not fight over one line.

use levee_core::sync::{AtomicU64, CachePadded, Ordering};

const STRIPES: usize = 8;

/// Hands each thread a stripe, round robin (plain std atomics: not part of any modelled
/// protocol, and a `static` cannot hold a loom atomic).
static NEXT_STRIPE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES;
}

/// A counter whose increments rarely share a cache line across threads.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

impl StripedCounter {
    /// Adds one. Relaxed: a statistic that orders nothing.
    #[inline]
    pub(crate) fn incr(&self) {
        let stripe = STRIPE.with(|s| *s);
        self.stripes[stripe].fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of all stripes.
    pub(crate) fn get(&self) -> u64 {
        self.stripes.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_across_threads() {
        let c = StripedCounter::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| c.incr()));
            }
        });
        assert_eq!(c.get(), 4000);
    }
}
