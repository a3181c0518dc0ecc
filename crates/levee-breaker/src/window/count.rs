//! The count-based window: the outcomes of the last N calls.
//!
//! How it works (lock-free, O(1) per record):
//!
//! - `head` = `generation | next position`. A recorder claims a position with one CAS; positions run
//!   `0..2N` and fold back from `2N` to `N`, so `position mod N` is the ring slot and
//!   `min(position + 1, N)` the number of calls held, without ever overflowing. A claim for a
//!   newer generation than `head`'s starts again at position 0: the window is reset by the
//!   first record of a new closed generation, never by clearing it.
//! - `slots[i]` = `generation | slow bit | failed bit` of the call last written there. A recorder
//!   swaps its outcome in with a CAS and learns the outcome it evicts (an older generation's
//!   slot counts as an evicted success). A slot already holding the same outcome of the same
//!   generation is left alone: the steady state, success replacing success, writes nothing
//!   but `head`.
//! - `totals` = `generation | slow count | failed count`, updated by the difference between the
//!   outcome written and the outcome evicted (subtract-on-evict). Two writers that lap each
//!   other on one slot may apply their differences in either order, so a count can be one
//!   below zero for an instant; each field wraps within its own bits and reads as zero then.
//!
//! Every word carries the generation, and every CAS refuses a newer generation than the
//! writer's: a late writer of an old generation changes nothing the new one sees.
//!
//! The healthy steady state costs no write at all: when the window is full and holds no
//! failure and no slow call, a plain success changes nothing observable (every slot holds a
//! success before and after, whichever slot it would have replaced), so
//! [`CountWindow::unchanged_by`] lets the caller skip the record with two loads. A success
//! skipped while a concurrent failure is between its slot write and its totals update only
//! means that failure stays in the window for one more call.

use levee_core::sync::{AtomicU32, AtomicU64, CachePadded, Ordering};

use super::tagged::{self, count, pack, tag};
use super::{Sample, Tally};
use crate::state::gen_is_newer;

const FIELD_BITS: u32 = 19;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
/// Field values from here up are transient negatives.
const FIELD_NEGATIVE: u64 = 1 << (FIELD_BITS - 1);

#[inline]
const fn slot_word(generation: u32, bits: u32) -> u32 {
    generation << 2 | bits
}

#[inline]
const fn sample_bits(s: Sample) -> u32 {
    s.failed as u32 | (s.slow as u32) << 1
}

#[inline]
const fn field(v: u64) -> u64 {
    if v >= FIELD_NEGATIVE { 0 } else { v }
}

#[derive(Debug)]
pub(crate) struct CountWindow {
    size: u64,
    head: CachePadded<AtomicU64>,
    totals: CachePadded<AtomicU64>,
    slots: Box<[AtomicU32]>,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        Self {
            size: u64::from(size),
            head: CachePadded::new(AtomicU64::new(0)),
            totals: CachePadded::new(AtomicU64::new(0)),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// True when recording `sample` for `generation` would change nothing: a plain success in
    /// a full window of successes.
    #[inline]
    pub(crate) fn unchanged_by(&self, generation: u32, sample: Sample) -> bool {
        if sample.failed || sample.slow {
            return false;
        }
        // Head first: once full, a generation's window stays full, so "full, then no failure
        // or slow call" holds at the moment the totals are read.
        let h = self.head.load(Ordering::Relaxed);
        if tag(h) != generation || count(h) < self.size {
            return false;
        }
        let t = self.totals.load(Ordering::Relaxed);
        tag(t) != generation || count(t) == 0
    }

    /// Records one call of generation `generation`; see [`super::Window::record`].
    ///
    /// Inline: claiming a position and finding the same outcome of the same generation in its
    /// slot, the common case of a window that holds a failure (every success must then move
    /// the window on). Anything else goes on in [`Self::write_slot`].
    #[inline]
    pub(crate) fn record(&self, generation: u32, sample: Sample, min_calls: u64) -> Option<Tally> {
        let pos = self.claim(generation)?;
        let n = self.size;
        let slot = &self.slots[(if pos >= n { pos - n } else { pos }) as usize];
        let bits = sample_bits(sample);
        let seen = slot.load(Ordering::Relaxed);
        if seen == slot_word(generation, bits) && bits == 0 && pos + 1 != min_calls {
            return None; // a success replaced a success: no count moved, no verdict to judge
        }
        self.write_slot(generation, pos, slot, seen, sample, min_calls)
    }

    /// Claims the next position of generation `generation`'s window (the first claim of a new
    /// generation starts it over at 0); `None` when `generation` is stale.
    #[inline]
    fn claim(&self, generation: u32) -> Option<u64> {
        let n = self.size;
        let mut h = self.head.load(Ordering::Relaxed);
        loop {
            let (pos, next) = if tag(h) == generation {
                let pos = count(h);
                (pos, if pos + 1 == 2 * n { n } else { pos + 1 })
            } else if gen_is_newer(tag(h), generation) {
                return None;
            } else {
                (0, 1)
            };
            match self.head.compare_exchange_weak(
                h,
                pack(generation, next),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(pos),
                Err(actual) => h = actual,
            }
        }
    }

    /// The rest of [`Self::record`] once position `pos` is claimed: writes the outcome into
    /// `slot` (last read as `seen`), learning the one it evicts, updates the totals by the
    /// difference and says whether the verdict must be judged.
    #[cold]
    #[inline(never)]
    fn write_slot(
        &self,
        generation: u32,
        pos: u64,
        slot: &AtomicU32,
        mut seen: u32,
        sample: Sample,
        min_calls: u64,
    ) -> Option<Tally> {
        let calls = (pos + 1).min(self.size);
        let reached = pos + 1 == min_calls;
        let bits = sample_bits(sample);
        let want = slot_word(generation, bits);
        let evicted = loop {
            if seen == want {
                break bits;
            }
            let slot_gen = seen >> 2;
            if gen_is_newer(slot_gen, generation) {
                return None;
            }
            match slot.compare_exchange_weak(seen, want, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break if slot_gen == generation { seen & 0b11 } else { 0 },
                Err(actual) => seen = actual,
            }
        };

        let d_failed = i64::from(bits & 1) - i64::from(evicted & 1);
        let d_slow = i64::from(bits >> 1) - i64::from(evicted >> 1);
        if d_failed == 0 && d_slow == 0 {
            // Nothing moved, but a failure or slow call is still judged: the thresholds may
            // have been lowered (`reconfigure`) under a window that was already over them.
            return (reached || bits != 0).then(|| self.tally_at(generation, calls));
        }
        let totals = self.add_totals(generation, d_failed, d_slow)?;
        (reached || d_failed > 0 || d_slow > 0).then(|| Tally {
            calls,
            failed: field(totals & FIELD_MASK).min(calls),
            slow: field(totals >> FIELD_BITS).min(calls),
        })
    }

    /// Applies a change to the failure and slow counts of generation `generation`; returns the new
    /// packed fields, `None` if `generation` is stale.
    fn add_totals(&self, generation: u32, d_failed: i64, d_slow: i64) -> Option<u64> {
        tagged::update(&self.totals, generation, |base| {
            let failed = (base & FIELD_MASK).wrapping_add_signed(d_failed) & FIELD_MASK;
            let slow = (base >> FIELD_BITS).wrapping_add_signed(d_slow) & FIELD_MASK;
            failed | slow << FIELD_BITS
        })
    }

    fn tally_at(&self, generation: u32, calls: u64) -> Tally {
        let fields = tagged::read(&self.totals, generation);
        Tally {
            calls,
            failed: field(fields & FIELD_MASK).min(calls),
            slow: field(fields >> FIELD_BITS).min(calls),
        }
    }

    /// Keeps the tags fresh at a transition to `generation`: the head and totals, and one slot
    /// (a different one each generation, so every slot is visited within `2 * size`
    /// consecutive generations, the wrap of the generation counter included). No slot's tag is
    /// therefore ever more than that many generations old, far inside the modular comparison's
    /// reach. A retagged word reads exactly as its older self did to every later generation:
    /// an empty window, a slot holding nothing to evict.
    pub(crate) fn refresh(&self, generation: u32) {
        tagged::retag(&self.head, generation);
        tagged::retag(&self.totals, generation);
        let slot = &self.slots[(u64::from(generation) % self.size) as usize];
        let mut seen = slot.load(Ordering::Relaxed);
        while gen_is_newer(generation, seen >> 2) {
            match slot.compare_exchange_weak(
                seen,
                slot_word(generation, 0),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => seen = actual,
            }
        }
    }

    /// What generation `generation`'s window holds.
    pub(crate) fn tally(&self, generation: u32) -> Tally {
        let h = self.head.load(Ordering::Relaxed);
        let calls = if tag(h) == generation { count(h).min(self.size) } else { 0 };
        self.tally_at(generation, calls)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const OK: Sample = Sample { failed: false, slow: false };
    const FAIL: Sample = Sample { failed: true, slow: false };
    const SLOW: Sample = Sample { failed: false, slow: true };

    #[test]
    fn keeps_the_last_n_calls() {
        let w = CountWindow::new(3);
        assert_eq!(w.record(0, FAIL, 100), Some(Tally { calls: 1, failed: 1, slow: 0 }));
        assert_eq!(w.record(0, OK, 100), None, "a success cannot trip");
        assert_eq!(w.record(0, SLOW, 100), Some(Tally { calls: 3, failed: 1, slow: 1 }));
        assert_eq!(w.record(0, OK, 100), None, "evicts the failure");
        assert_eq!(w.tally(0), Tally { calls: 3, failed: 0, slow: 1 });
        for _ in 0..10 {
            w.record(0, FAIL, 100);
        }
        assert_eq!(w.tally(0), Tally { calls: 3, failed: 3, slow: 0 });
    }

    #[test]
    fn reports_reaching_the_minimum() {
        let w = CountWindow::new(4);
        assert_eq!(w.record(0, FAIL, 2), Some(Tally { calls: 1, failed: 1, slow: 0 }));
        assert_eq!(w.record(0, OK, 2), Some(Tally { calls: 2, failed: 1, slow: 0 }));
        assert_eq!(w.record(0, OK, 2), None);
    }

    #[test]
    fn a_new_generation_starts_empty_and_refuses_the_old_one() {
        let w = CountWindow::new(2);
        w.record(0, FAIL, 1);
        w.record(0, FAIL, 1);
        assert_eq!(w.tally(3), Tally::default());
        assert_eq!(w.record(3, OK, 1), Some(Tally { calls: 1, failed: 0, slow: 0 }));
        assert_eq!(w.record(0, FAIL, 1), None, "late writer");
        assert_eq!(w.record(3, OK, 1), None);
        assert_eq!(w.tally(3), Tally { calls: 2, failed: 0, slow: 0 });
    }

    #[test]
    fn positions_fold_without_overflow() {
        let w = CountWindow::new(2);
        for i in 0..1000 {
            w.record(0, if i % 2 == 0 { FAIL } else { OK }, 1);
        }
        assert_eq!(w.tally(0), Tally { calls: 2, failed: 1, slow: 0 });
        assert!(count(w.head.load(Ordering::Relaxed)) < 4);
    }
}
