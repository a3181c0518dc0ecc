//! How time moves: processing slot events in order, firing due slots onto the due list and
//! cascading coarse slots to finer levels.

use super::slab::List;
use super::{NEAR_SLOTS, Precision, SLOT_MASK, SLOTS, TimingWheel};

impl<T> TimingWheel<T> {
    /// Processes the next slot event if it is at or before `target`; otherwise moves time to
    /// `target`. Returns whether an event was processed.
    pub(super) fn step(&mut self, target: u64) -> bool {
        let (near, far) = (self.near_event, self.far_event);
        let event = near.min(far);
        if event > target {
            self.elapsed = self.elapsed.max(target);
            return false;
        }
        self.elapsed = event;
        if near == event {
            // The near ring's slot for tick `event`: its entries are due.
            let ring = (event % NEAR_SLOTS) as usize;
            self.fire_slot(ring / SLOTS, ring % SLOTS);
        }
        if far == event {
            // Every far slot whose event is `event`: on each far level where `v = event +
            // lookahead` is a slot boundary, the slot starting at `v` (entries lie at least
            // one slot after the old `elapsed + lookahead`, so that slot's event is exactly
            // `event`). Cascaded entries go to finer levels, which this loop has passed, and
            // lie after `v`, so none lands in a slot being fired.
            let v = event + self.lookahead;
            let mut bits = self.nonempty & !self.near_bits;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let shift = self.far_shift(i);
                if v & ((1 << shift) - 1) != 0 {
                    break; // not a boundary here, nor on any coarser level
                }
                let slot = ((v >> shift) & SLOT_MASK) as usize;
                if self.levels[i].occupied & (1 << slot) != 0 {
                    self.fire_slot(i, slot);
                }
            }
            self.far_event = self.far_levels_event();
        }
        // Cascading lowered `near_event` to any entry it placed there; firing the near slot
        // emptied the earliest one.
        if near == event {
            self.near_event = self.near_ring_event();
        }
        true
    }

    /// Empties `levels[i]`'s slot whose time has come: onto the due list, or (exact, a
    /// coarse level) cascaded to finer levels.
    fn fire_slot(&mut self, i: usize, slot: usize) {
        let lv = &mut self.levels[i];
        let mut list = std::mem::replace(&mut lv.slots[slot], List::EMPTY);
        lv.occupied &= !(1 << slot);
        if lv.occupied == 0 {
            self.nonempty &= !(1 << i);
        }
        if self.near_bits & (1 << i) != 0 || self.mode == Precision::Slack {
            self.slab.append(&mut self.due, &mut list);
        } else {
            while let Some(index) = self.slab.pop_front(&mut list) {
                let tick = self.deadline_tick(self.slab.at(index).deadline);
                self.place(index, tick);
            }
        }
    }
}
