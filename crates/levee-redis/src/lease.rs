//! Lease mode's local state for one hot key: leased cells in one atomic word.
//!
//! ```text
//!  63                          24 23                 0
//! +------------------------------+--------------------+
//! | expiry (40 bits, 2^20 ns)    | cells (24 bits)    |
//! +------------------------------+--------------------+
//! ```
//!
//! The expiry is a reading of the limiter's clock shifted right by 20 bits (units of about a
//! millisecond; 40 bits of them last 36 years from the clock's origin). Cells are usable
//! while `now >> 20 < expiry`. Taking cells is one CAS that lowers the count; a refill
//! swaps in a whole new word (leftovers of the old lease that no check could use are dropped:
//! that only ever admits less). Every access is `Relaxed`: the word publishes no other
//! memory, and each CAS acts on the latest value in the word's modification order, which is
//! all a count needs (no two takers can take the same cells).

use levee_core::sync::{AtomicU64, Ordering};

const CELL_BITS: u32 = 24;
const CELL_MASK: u64 = (1 << CELL_BITS) - 1;
const UNIT_SHIFT: u32 = 20;
const MAX_EXPIRY: u64 = (1 << (64 - CELL_BITS)) - 1;

/// What a taker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// The cells were taken.
    Taken,
    /// Not enough live cells: `left` usable cells remain (fewer than asked), `expired`
    /// cells of the last lease expired unspent.
    Short { left: u32, expired: u32 },
}

/// The leased cells of one key.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    word: AtomicU64,
}

impl Pool {
    /// Takes `n >= 1` cells at clock reading `now` if that many are live.
    pub(crate) fn take(&self, n: u32, now: u64) -> Take {
        let unit = now >> UNIT_SHIFT;
        // Relaxed: module docs; a stale value costs one failed CAS.
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let cells = (word & CELL_MASK) as u32;
            if unit >= word >> CELL_BITS {
                return Take::Short { left: 0, expired: cells };
            }
            if cells < n {
                return Take::Short { left: cells, expired: 0 };
            }
            let next = word - u64::from(n);
            match self.word.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Take::Taken,
                Err(actual) => word = actual,
            }
        }
    }

    /// Replaces the pool with `cells` cells usable until clock reading `expires` (rounded
    /// down to the word's unit).
    pub(crate) fn fill(&self, cells: u32, expires: u64) {
        debug_assert!(u64::from(cells) <= CELL_MASK, "batches are validated");
        let expiry = (expires >> UNIT_SHIFT).min(MAX_EXPIRY);
        // A swap where a store would do: loom 0.7 lets a taker's CAS decided on the value
        // before a plain store come out after it (the memory model forbids that; loom's
        // tests/loom_lease.rs found it), while it orders RMWs exactly. A refill is rare, so
        // the swap costs nothing that matters. Relaxed: module docs.
        self.word.swap(expiry << CELL_BITS | u64::from(cells), Ordering::Relaxed);
    }
}

/// The state of one hot key: its pool, what Redis last refused, and the refiller's lock.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) pool: Pool,
    /// Clock reading before which Redis is known to refuse even one cell (0: not known).
    /// Relaxed: a hint, written after a refusal and read by later checks.
    pub(crate) refused_until: AtomicU64,
    /// Held while one task asks Redis for a lease; holds the key's batch size (0 before
    /// its first lease, which [`next_batch`] turns into 1).
    pub(crate) refill: tokio::sync::Mutex<u32>,
}

#[cfg(not(loom))]
impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            pool: Pool::default(),
            refused_until: AtomicU64::new(0),
            refill: tokio::sync::Mutex::new(0),
        }
    }

    /// Whether Redis is known to refuse a cell at `now`, and until when.
    pub(crate) fn refused_at(&self, now: u64) -> Option<u64> {
        let until = self.refused_until.load(Ordering::Relaxed); // Relaxed: field docs.
        (until > now).then_some(until)
    }

    pub(crate) fn refuse_until(&self, until: u64) {
        self.refused_until.store(until, Ordering::Relaxed); // Relaxed: field docs.
    }
}

/// The next batch size after a lease ends: double when it was spent, half when cells
/// expired unspent, the same otherwise; within `1..=max`.
pub(crate) fn next_batch(batch: u32, found: Take, max: u32) -> u32 {
    match found {
        Take::Short { left: 0, expired: 0 } => batch.saturating_mul(2),
        Take::Short { expired, .. } if expired > 0 => batch / 2,
        _ => batch,
    }
    .clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1 << UNIT_SHIFT;

    #[test]
    fn takes_until_empty_or_expired() {
        let pool = Pool::default();
        assert_eq!(pool.take(1, 0), Take::Short { left: 0, expired: 0 }, "empty");
        pool.fill(3, 10 * MS);
        assert_eq!(pool.take(2, 0), Take::Taken);
        assert_eq!(pool.take(2, MS), Take::Short { left: 1, expired: 0 });
        assert_eq!(pool.take(1, 9 * MS + MS - 1), Take::Taken);
        assert_eq!(pool.take(1, 9 * MS), Take::Short { left: 0, expired: 0 });
        pool.fill(5, 10 * MS);
        assert_eq!(pool.take(1, 10 * MS), Take::Short { left: 0, expired: 5 }, "expired");
    }

    #[test]
    fn holds_the_largest_batch_and_far_expiries() {
        let pool = Pool::default();
        pool.fill(CELL_MASK as u32, u64::MAX);
        assert_eq!(
            pool.take(CELL_MASK as u32, u64::MAX - 1),
            Take::Short { left: 0, expired: CELL_MASK as u32 }
        );
        assert_eq!(pool.take(CELL_MASK as u32, (MAX_EXPIRY - 1) << UNIT_SHIFT), Take::Taken);
    }

    #[test]
    fn batch_adapts_to_demand() {
        assert_eq!(next_batch(1, Take::Short { left: 0, expired: 0 }, 16), 2);
        assert_eq!(next_batch(16, Take::Short { left: 0, expired: 0 }, 16), 16);
        assert_eq!(next_batch(8, Take::Short { left: 0, expired: 3 }, 16), 4);
        assert_eq!(next_batch(1, Take::Short { left: 0, expired: 1 }, 16), 1);
        assert_eq!(next_batch(4, Take::Short { left: 2, expired: 0 }, 16), 4);
    }

    #[test]
    fn refusals_are_remembered_until_their_time() {
        let slot = Slot::new();
        assert_eq!(slot.refused_at(5), None);
        slot.refuse_until(100);
        assert_eq!(slot.refused_at(99), Some(100));
        assert_eq!(slot.refused_at(100), None);
    }
}
