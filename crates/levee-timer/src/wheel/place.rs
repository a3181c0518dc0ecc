//! Where an entry goes: the due list, the near ring, or a slot of the level whose ring
//! reaches its tick; and how it leaves its list.

use super::slab::PLACE_DUE;
use super::{
    EXACT_SHIFT, LOOKAHEAD, NEAR_SLOTS, Precision, SLACK_SHIFT, SLOT_MASK, SLOTS, TimingWheel,
};

impl<T> TimingWheel<T> {
    /// Puts an entry that is on no list where its tick says: the due list, or a slot.
    #[inline]
    pub(super) fn place(&mut self, index: u32, tick: u64) {
        let elapsed = self.elapsed;
        if tick <= elapsed {
            self.slab.push_back(&mut self.due, index, PLACE_DUE);
            return;
        }
        let (i, slot) = match self.mode {
            Precision::Exact if tick - elapsed < NEAR_SLOTS => {
                // The near ring: slot `tick % 128`, in half `levels[slot / 64]`.
                let ring = (tick % NEAR_SLOTS) as usize;
                self.near_event = self.near_event.min(tick);
                (ring / SLOTS, ring % SLOTS)
            }
            Precision::Exact => {
                let level = self.exact_level(tick);
                let shift = level * EXACT_SHIFT;
                let k = tick >> shift;
                self.far_event = self.far_event.min((k << shift) - LOOKAHEAD);
                (level as usize + 1, (k & SLOT_MASK) as usize)
            }
            Precision::Slack => {
                let (level, k) = self.slack_level(tick);
                self.far_event = self.far_event.min(k << (level as u32 * SLACK_SHIFT));
                (level, (k & SLOT_MASK) as usize)
            }
        };
        let lv = &mut self.levels[i];
        self.slab.push_back(&mut lv.slots[slot], index, (i * SLOTS + slot) as u32);
        lv.occupied |= 1 << slot;
        self.nonempty |= 1 << i;
    }

    /// The coarse level (1 or more) for an exact entry at least [`NEAR_SLOTS`] ticks ahead:
    /// one whose ring, counted from the slot of `v = elapsed + LOOKAHEAD`, reaches its tick.
    ///
    /// With `d = tick - v` (at least 64) the level is `l = (bits(d) - 1) / 6`, so
    /// `64^l <= d < 64^(l+1)`: in slots of `64^l` ticks, `tick` lies `floor(d / 64^l)` or
    /// one more slots after `v`'s, that is 1 to 64. `d` is below the largest tick, which
    /// `from_builder` sized the levels for, so `l` is never beyond the top level. No branch:
    /// random deadlines would mispredict one.
    #[inline]
    pub(super) fn exact_level(&self, tick: u64) -> u32 {
        let v = self.elapsed + LOOKAHEAD;
        let level = (u64::BITS - 1 - (tick - v).leading_zeros()) / EXACT_SHIFT;
        debug_assert!(level >= 1 && (level as usize) < self.levels.len() - 1, "level {level}");
        debug_assert!(
            (1..=SLOTS as u64)
                .contains(&((tick >> (level * EXACT_SHIFT)) - (v >> (level * EXACT_SHIFT)))),
            "beyond the ring"
        );
        level
    }

    /// The finest slack level whose 64 slots reach `tick` (> elapsed) after rounding it up to
    /// the level's slot size, and the rounded tick in that level's slot units.
    #[inline]
    pub(super) fn slack_level(&self, tick: u64) -> (usize, u64) {
        let elapsed = self.elapsed;
        // `tick` rounded up to slots of `1 << shift` ticks (ticks stay below 2^55: no overflow).
        let rounded = |shift: u32| (tick + ((1 << shift) - 1)) >> shift;
        let delta = tick - elapsed;
        // With `delta <= 2^bits`: the level below `guess` cannot reach (64 slots of
        // 8^(guess-1) <= 2^(bits-3) ticks < delta), and the level above it always does
        // (slots of at least 2^(bits-5) ticks: delta spans at most 32 of them, plus 2 for
        // rounding). So the answer is `guess` or the next level. The top level reaches every
        // tick (`from_builder` sizes the levels so), so neither is beyond it. The level is
        // computed by arithmetic on the condition, not by choosing between two results: the
        // compiler may turn a choice into a branch, which random deadlines (split between two
        // levels) mispredict.
        let bits = u64::BITS - (delta - 1).leading_zeros();
        let guess = bits.saturating_sub(6) / SLACK_SHIFT;
        let shift = guess * SLACK_SHIFT;
        let fits = rounded(shift) - (elapsed >> shift) <= SLOTS as u64;
        let level = guess + u32::from(!fits);
        let k = rounded(level * SLACK_SHIFT);
        debug_assert!((level as usize) < self.levels.len(), "tick beyond the top level");
        debug_assert!(k - (elapsed >> (level * SLACK_SHIFT)) <= SLOTS as u64, "too few");
        (level as usize, k)
    }

    /// Removes an entry from whichever list holds it, keeping bitmaps and event caches right.
    ///
    /// An entry's `place` names the slot it was put in, but firing a slot splices the whole
    /// list onto the due list without relabelling, so an entry whose `place` is a slot may
    /// in fact be on the due list. That is harmless: unlinking only touches a list's
    /// head/tail when the entry is that list's first/last element, and an entry that is the
    /// due list's first or last is recognised by comparing with `due.head`/`due.tail`. An
    /// entry in the middle of the due list is unlinked through its neighbours alone, and the
    /// slot it names is merely re-checked for emptiness, which it already reflects.
    pub(super) fn detach(&mut self, index: u32) {
        let place = self.slab.at(index).place;
        if place == PLACE_DUE || self.due.head == index || self.due.tail == index {
            self.slab.unlink(&mut self.due, index);
            return;
        }
        let (i, slot) = (place as usize / SLOTS, place as usize % SLOTS);
        let lv = &mut self.levels[i];
        self.slab.unlink(&mut lv.slots[slot], index);
        if lv.slots[slot].is_empty() && lv.occupied & (1 << slot) != 0 {
            lv.occupied &= !(1 << slot);
            if lv.occupied == 0 {
                self.nonempty &= !(1 << i);
            }
            if self.near_bits & (1 << i) != 0 {
                self.near_event = self.near_ring_event();
            } else {
                self.far_event = self.far_levels_event();
            }
        }
    }
}
