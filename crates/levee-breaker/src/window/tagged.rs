//! Counters that carry the generation that wrote them: `generation (25 bits) | count (39 bits)`.
//!
//! Adding for generation `g` to a counter tagged with an older generation starts it over at
//! zero (the window of the old generation is gone); adding to one tagged with a newer
//! generation is refused (the writer is late). Reading for `g` sees zero unless the tag is `g`.
//! Because tag and count change in one compare-and-swap, a late writer can never add to the
//! new generation's count. All orderings are `Relaxed`: counters order no other memory, and
//! each counter's own modification order is all the consistency they need.

use levee_core::sync::{AtomicU64, Ordering};

use crate::state::{GEN_MASK, gen_is_newer};

const COUNT_BITS: u32 = 39;
pub(super) const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

#[inline]
pub(super) const fn pack(generation: u32, count: u64) -> u64 {
    ((generation & GEN_MASK) as u64) << COUNT_BITS | (count & COUNT_MASK)
}

#[inline]
pub(super) const fn tag(word: u64) -> u32 {
    (word >> COUNT_BITS) as u32
}

#[inline]
pub(super) const fn count(word: u64) -> u64 {
    word & COUNT_MASK
}

/// Adds `n` for generation `generation`. Returns the new count, or `None` when `generation` is stale.
#[inline]
pub(super) fn add(counter: &AtomicU64, generation: u32, n: u64) -> Option<u64> {
    update(counter, generation, |count| count + n)
}

/// Replaces generation `generation`'s count with `f(count)`, where an older generation's count
/// reads as zero (the counter starts over). Returns the new count, or `None` when `generation`
/// is stale (the counter already belongs to a newer one).
#[inline]
pub(super) fn update(counter: &AtomicU64, generation: u32, f: impl Fn(u64) -> u64) -> Option<u64> {
    let mut word = counter.load(Ordering::Relaxed);
    loop {
        let base = if tag(word) == generation {
            count(word)
        } else if gen_is_newer(tag(word), generation) {
            return None;
        } else {
            0
        };
        let next = f(base);
        match counter.compare_exchange_weak(
            word,
            pack(generation, next),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(next),
            Err(actual) => word = actual,
        }
    }
}

/// Subtracts `n` from the count if it still belongs to generation `generation` (otherwise that
/// generation's total is gone and there is nothing to correct).
#[inline]
pub(super) fn sub(counter: &AtomicU64, generation: u32, n: u64) {
    let mut word = counter.load(Ordering::Relaxed);
    while tag(word) == generation {
        // Writers add to the total before the bucket and evictors subtract only what they took
        // out of a bucket, so a total is never below the sum of its buckets: no underflow.
        let next = pack(generation, count(word).saturating_sub(n));
        match counter.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => word = actual,
        }
    }
}

/// Empties the counter, keeping its tag; returns what it held.
#[inline]
pub(super) fn take(counter: &AtomicU64) -> (u32, u64) {
    let mut word = counter.load(Ordering::Relaxed);
    loop {
        if count(word) == 0 {
            return (tag(word), 0);
        }
        match counter.compare_exchange_weak(
            word,
            pack(tag(word), 0),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return (tag(word), count(word)),
            Err(actual) => word = actual,
        }
    }
}

/// Brings an older generation's counter up to `generation`, empty: what it held belongs to a
/// finished generation, which nobody reads again. A counter already tagged `generation` or
/// later is left alone. Called for every transition (see `Window::refresh`), this keeps every
/// tag within reach of the modular comparison.
#[inline]
pub(super) fn retag(counter: &AtomicU64, generation: u32) {
    let mut word = counter.load(Ordering::Relaxed);
    while gen_is_newer(generation, tag(word)) {
        match counter.compare_exchange_weak(
            word,
            pack(generation, 0),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return,
            Err(actual) => word = actual,
        }
    }
}

/// The count generation `generation` sees.
#[inline]
pub(super) fn read(counter: &AtomicU64, generation: u32) -> u64 {
    let word = counter.load(Ordering::Relaxed);
    if tag(word) == generation { count(word) } else { 0 }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn generations_reset_and_refuse() {
        let c = AtomicU64::new(0);
        assert_eq!(add(&c, 0, 2), Some(2));
        assert_eq!(add(&c, 3, 1), Some(1), "an older tag starts over");
        assert_eq!(add(&c, 2, 1), None, "a late writer is refused");
        assert_eq!(read(&c, 2), 0);
        sub(&c, 2, 1);
        assert_eq!(read(&c, 3), 1, "subtracting for another generation changes nothing");
        assert_eq!(take(&c), (3, 1));
        assert_eq!(read(&c, 3), 0);
        assert_eq!(add(&c, GEN_MASK, 5), None, "the last generation is just before 0..3");
        let c = AtomicU64::new(pack(GEN_MASK - 1, 9));
        assert_eq!(add(&c, GEN_MASK, 5), Some(5));
        assert_eq!(add(&c, 0, 1), Some(1), "wraps: 0 is after the last generation");
    }

    #[test]
    fn retagging_empties_older_generations_only() {
        let c = AtomicU64::new(pack(4, 9));
        retag(&c, 3);
        assert_eq!(read(&c, 4), 9, "a later tag stays");
        retag(&c, 4);
        assert_eq!(read(&c, 4), 9, "the same tag stays");
        retag(&c, 5);
        assert_eq!((tag(c.load(Ordering::Relaxed)), read(&c, 5)), (5, 0));
        assert_eq!(add(&c, 4, 1), None, "the old generation is refused from now on");
    }
}
