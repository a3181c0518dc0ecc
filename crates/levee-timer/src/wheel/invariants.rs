//! The wheel's internal invariants, checked by the unit tests and the fuzzer.

use super::slab::{List, NIL};
use super::{LOOKAHEAD, NEAR_SLOTS, Precision, SLOT_MASK, SLOTS, TimingWheel};

impl<T> TimingWheel<T> {
    /// Walks every list and checks the wheel's invariants; panics on the first violation.
    /// O(len + levels): for tests and the fuzzer.
    pub(crate) fn check_invariants(&self) {
        let limit = self.slab.len() + 1;
        // Walks a list, checking links both ways; returns its members.
        let walk = |list: &List| -> Vec<u32> {
            let mut members = Vec::new();
            let (mut prev, mut at) = (NIL, list.head);
            while at != NIL {
                assert!(members.len() < limit, "list cycle");
                let e = self.slab.at(at);
                assert!(e.value.is_some(), "free entry {at} on a list");
                if prev != NIL {
                    // A head's `prev` is stale by design.
                    assert_eq!(e.prev, prev, "broken prev link at {at}");
                }
                members.push(at);
                prev = at;
                at = e.next;
            }
            assert_eq!(list.tail, prev, "tail is not the last entry");
            members
        };
        let mut seen = 0;
        for index in walk(&self.due) {
            let e = self.slab.at(index);
            let tick = self.deadline_tick(e.deadline);
            assert!(tick <= self.elapsed, "due entry {index} (tick {tick}) after {}", self.elapsed);
            seen += 1;
        }
        let mut nonempty = 0u32;
        let elapsed = self.elapsed;
        for (i, lv) in self.levels.iter().enumerate() {
            if lv.occupied != 0 {
                nonempty |= 1 << i;
            }
            for (slot, list) in lv.slots.iter().enumerate() {
                let members = walk(list);
                assert_eq!(lv.occupied & (1 << slot) != 0, !members.is_empty(), "bitmap");
                for index in members {
                    let e = self.slab.at(index);
                    assert_eq!(e.place as usize, i * SLOTS + slot, "entry {index} mislabelled");
                    let tick = self.deadline_tick(e.deadline);
                    if self.near_bits & (1 << i) != 0 {
                        // Near ring: 1..=127 ticks ahead, in slot `tick % 128`.
                        assert!(tick > elapsed, "entry {index} overdue on the near ring");
                        assert!(tick - elapsed < NEAR_SLOTS, "entry {index} beyond the near ring");
                        assert_eq!(tick % NEAR_SLOTS, (i * SLOTS + slot) as u64, "near slot");
                    } else {
                        // Far level: its slot (slack: its tick rounded up) is 1..=64 slots
                        // after that of `elapsed + lookahead`, so its event is ahead.
                        let shift = self.far_shift(i);
                        let k = match self.mode {
                            Precision::Exact => tick >> shift,
                            Precision::Slack => tick.div_ceil(1 << shift),
                        };
                        let q = (elapsed + self.lookahead) >> shift;
                        assert!(k > q && k - q <= SLOTS as u64, "entry {index} off the ring");
                        assert_eq!(
                            (k & SLOT_MASK) as usize,
                            slot,
                            "entry {index} in the wrong slot"
                        );
                        // Exact: nothing within the lookahead is on a coarse level.
                        let exact = self.mode == Precision::Exact;
                        assert!(!exact || tick > elapsed + LOOKAHEAD, "entry {index} too near");
                    }
                    seen += 1;
                }
            }
        }
        assert_eq!(nonempty, self.nonempty, "nonempty level bits");
        assert_eq!(self.near_ring_event(), self.near_event, "cached near event");
        assert_eq!(self.far_levels_event(), self.far_event, "cached far event");
        assert_eq!(seen, self.slab.len(), "entries on no list");
    }
}
