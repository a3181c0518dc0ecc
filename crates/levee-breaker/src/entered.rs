//! When the current state was entered, beside the state word: whole milliseconds since the
//! breaker's origin, above the low bits of the generation that entered it.
//!
//! ```text
//!  63                                            19 18                    0
//! +------------------------------------------------+-----------------------+
//! |  entry time, ms since origin, rounded up (45)  | generation mod 2^19   |
//! +------------------------------------------------+-----------------------+
//! ```
//!
//! 45 bits of milliseconds hold any `u64` clock reading (2^64 ns is 2^44.07 ms), so an entry
//! time never wraps, however long the breaker lives. The state word keeps an open deadline
//! modulo 2^32 ms only (it has no room for more); the entry time gives the rest: the deadline is
//! the one value with those low bits in `[entry, entry + 2^32)`, since no wait is longer than
//! `MAX_OPEN_WAIT` (24 days, under 2^32 ms).
//!
//! The winner of every transition's compare-and-swap notes the new generation here, after the
//! swap. A reader that finds another generation than its state word's knows the note of its
//! state is not stored yet: that state was entered an instant ago. Notes only move forward (a
//! late writer never replaces a later generation's note), so the stored generation is never
//! more than the few transitions in flight behind the state word, and 19 bits tell them apart.

use levee_core::sync::{AtomicU64, Ordering};

const TAG_BITS: u32 = 19;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

#[inline]
const fn tag(generation: u32) -> u64 {
    generation as u64 & TAG_MASK
}

/// True when tag `a` is later than tag `b` (modular, as `state::gen_is_newer`).
#[inline]
const fn tag_is_newer(a: u64, b: u64) -> bool {
    let ahead = a.wrapping_sub(b) & TAG_MASK;
    ahead != 0 && ahead < 1 << (TAG_BITS - 1)
}

/// The entry time of the breaker's current state (see the module docs).
#[derive(Debug)]
pub(crate) struct Entered(AtomicU64);

impl Entered {
    /// Generation `generation` entered at `ms`.
    pub(crate) fn new(generation: u32, ms: u64) -> Self {
        Self(AtomicU64::new(ms << TAG_BITS | tag(generation)))
    }

    /// Notes that generation `generation` was entered at `ms` (whole milliseconds since the
    /// origin, rounded up), unless a later generation's note is already stored.
    pub(crate) fn note(&self, generation: u32, ms: u64) {
        let new = ms << TAG_BITS | tag(generation);
        let mut seen = self.0.load(Ordering::Relaxed);
        while tag_is_newer(tag(generation), seen & TAG_MASK) {
            // Release pairs with the Acquire in `of`: a reader that finds this note also finds
            // everything the transition's winner wrote before it.
            match self.0.compare_exchange_weak(seen, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => seen = actual,
            }
        }
    }

    /// When generation `generation` was entered, `None` while its note is not stored yet.
    #[inline]
    pub(crate) fn of(&self, generation: u32) -> Option<u64> {
        let word = self.0.load(Ordering::Acquire);
        (word & TAG_MASK == tag(generation)).then_some(word >> TAG_BITS)
    }
}

/// The open deadline whose low 32 bits are `low` and which lies in `[entered, entered + 2^32)`
/// (all in milliseconds since the origin).
#[inline]
pub(crate) const fn unwrap_deadline(entered: u64, low: u32) -> u64 {
    let ahead = (low as u64).wrapping_sub(entered) & 0xFFFF_FFFF;
    entered + ahead
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn notes_move_forward_only_and_name_their_generation() {
        let e = Entered::new(0, 0);
        assert_eq!(e.of(0), Some(0));
        e.note(2, 50);
        assert_eq!((e.of(0), e.of(2)), (None, Some(50)));
        e.note(1, 40);
        assert_eq!(e.of(2), Some(50), "a late note does not replace a later one");
        e.note(crate::state::GEN_MASK, 7);
        assert_eq!(e.of(2), Some(50), "a generation just before 0 is older than 2");
        let far = (1u64 << 45) - 1;
        e.note(3, far);
        assert_eq!(e.of(3), Some(far), "45 bits of milliseconds");
        let wrapped = Entered::new((1 << TAG_BITS) - 1, 9);
        wrapped.note(1 << TAG_BITS, 10);
        assert_eq!(wrapped.of(1 << TAG_BITS), Some(10), "tags wrap");
    }

    #[test]
    fn deadlines_unwrap_above_the_entry_time() {
        assert_eq!(unwrap_deadline(0, 5_000), 5_000);
        let era = 1u64 << 32;
        assert_eq!(unwrap_deadline(3 * era + 10, 20), 3 * era + 20);
        assert_eq!(unwrap_deadline(3 * era - 10, 20), 3 * era + 20, "across an era");
        assert_eq!(unwrap_deadline(7 * era + 5, 5), 7 * era + 5, "due at entry");
    }
}
