//! One level of the wheel: a ring of 64 slots and the bitmap of the occupied ones, and how
//! the wheel finds the next occupied slot (the near ring's and the other levels').

use super::slab::List;
use super::{
    EXACT_SHIFT, NEAR_SLOTS, NO_EVENT, Precision, SLACK_SHIFT, SLOT_MASK, SLOTS, TimingWheel,
};

/// The 64 slots of one level and the bitmap of the occupied ones.
#[derive(Debug, Clone)]
pub(super) struct Level {
    pub(super) occupied: u64,
    pub(super) slots: [List; SLOTS],
}

impl<T> TimingWheel<T> {
    /// The tick of the near ring's earliest occupied slot ([`NO_EVENT`] when it is empty or
    /// the wheel has none).
    #[inline]
    pub(super) fn near_ring_event(&self) -> u64 {
        if self.nonempty & self.near_bits == 0 {
            return NO_EVENT;
        }
        let occupied =
            u128::from(self.levels[0].occupied) | u128::from(self.levels[1].occupied) << 64;
        let current = (self.elapsed % NEAR_SLOTS) as u32;
        // Occupied slots lie 1..=127 ticks after the current one.
        let distance = occupied.rotate_right((current + 1) % 128).trailing_zeros() + 1;
        self.elapsed + u64::from(distance)
    }

    /// The shift of `levels[i]`, a level other than the near ring: its slots span
    /// `2^shift` ticks.
    #[inline]
    pub(super) fn far_shift(&self, i: usize) -> u32 {
        match self.mode {
            Precision::Exact => (i as u32 - 1) * EXACT_SHIFT,
            Precision::Slack => i as u32 * SLACK_SHIFT,
        }
    }

    /// The tick at which far level `levels[i]`'s earliest occupied slot fires (slack) or is
    /// cascaded (exact: `lookahead` ticks before it starts).
    #[inline]
    pub(super) fn far_level_event(&self, i: usize) -> u64 {
        let occupied = self.levels[i].occupied;
        debug_assert_ne!(occupied, 0);
        let shift = self.far_shift(i);
        let q = (self.elapsed + self.lookahead) >> shift;
        let current = (q & SLOT_MASK) as u32;
        // Occupied slots lie 1..=64 slots after the current one.
        let distance = u64::from(occupied.rotate_right((current + 1) % 64).trailing_zeros()) + 1;
        ((q + distance) << shift) - self.lookahead
    }

    /// The earliest [`far_level_event`](Self::far_level_event) ([`NO_EVENT`] when none).
    pub(super) fn far_levels_event(&self) -> u64 {
        let mut next = NO_EVENT;
        let mut bits = self.nonempty & !self.near_bits;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            next = next.min(self.far_level_event(i));
        }
        next
    }
}
