//! A per-thread stripe of a time window: the successes one thread counted in one bucket
//! period and has not yet moved into the shared totals.
//!
//! ```text
//! count:  generation (25) | successes (39)    written by the owner only
//! period: the bucket period they were counted in   written by the owner only
//! ```
//!
//! Only the thread that holds the stripe's slot number (`slot.rs`) writes it, with plain
//! stores: counting a success costs what a private counter costs, and no other thread ever
//! takes from it, so nothing is claimed twice or lost in a race. When the owner counts in a
//! new period (or generation), it first *folds* what it holds into the shared bucket of that
//! period and the totals (`TimeWindow::fold_into_shared`), then starts over. Every other thread
//! only reads: a judgement or a tally adds the stripes' counts of its generation whose period
//! is still in the window ([`Stripe::pending`]).
//!
//! Ordering, the one rule: a reader loads a stripe *before* it reads the shared totals, and the
//! owner folds into the totals *before* it stores the emptied stripe (Release; the reader's
//! load is Acquire). So a reader that sees the emptied stripe also sees the fold in the
//! totals, and one that sees the full stripe may count its calls twice for an instant (in the
//! stripe and in the totals): a transient overcount of calls, which can only delay an opening
//! by a record, never cause one. A reader never counts fewer calls than every completed store.
//! The period is stored before the count, and loaded after it: a count and the period it is
//! read with belong together, or the period is the later one (an overcount again).

use levee_core::sync::{AtomicU64, Ordering};

use super::tagged::{self, count, pack, tag};
use crate::state::gen_is_newer;

#[derive(Debug, Default)]
pub(super) struct Stripe {
    count: AtomicU64,
    period: AtomicU64,
}

/// What a stripe holds, to its owner about to count `generation` in another period.
pub(super) enum Held {
    /// `n` calls of `generation` counted in `period`: fold them into the shared window, then
    /// [`Stripe::restart`].
    Calls { period: u64, n: u64 },
    /// Nothing of `generation`'s (or only of a finished generation): [`Stripe::restart`].
    Nothing,
    /// Calls of a later generation: the owner is a late writer and drops its success.
    Late,
}

impl Stripe {
    /// Counts one success of `generation` in `period` if the stripe is counting that period
    /// and generation; false if the owner must look at what it [`held`](Self::held) first.
    /// Only the stripe's owner may call this.
    #[inline]
    pub(super) fn add(&self, generation: u32, period: u64) -> bool {
        let c = self.count.load(Ordering::Relaxed);
        if tag(c) == generation && self.period.load(Ordering::Relaxed) == period {
            self.publish(pack(generation, count(c) + 1));
            return true;
        }
        false
    }

    /// What the stripe holds, seen by its owner about to count `generation`.
    pub(super) fn held(&self, generation: u32) -> Held {
        let c = self.count.load(Ordering::Relaxed);
        if gen_is_newer(tag(c), generation) {
            Held::Late
        } else if tag(c) == generation && count(c) > 0 {
            Held::Calls { period: self.period.load(Ordering::Relaxed), n: count(c) }
        } else {
            Held::Nothing
        }
    }

    /// Starts counting `period` for `generation` with one success, after the owner folded
    /// what the stripe held. Only the stripe's owner may call this.
    pub(super) fn restart(&self, generation: u32, period: u64) {
        self.period.store(period, Ordering::Release);
        self.publish(pack(generation, 1));
    }

    /// The owner's store of its count. Release: see the module docs (a reader's Acquire load).
    ///
    /// Natively a plain store: a refresher's compare-and-swap that raced it either came first
    /// in the count's modification order (the store then lands after it: an RMW is always
    /// right after the value it read, and the owner's store is after the value its own load
    /// read) or failed. Loom keeps modification order as a partial order and does not derive
    /// that, so it would let the owner read the refresher's older value back after its own
    /// store; under `cfg(loom)` the store is a swap, which loom orders after the latest value,
    /// as the hardware does with the plain store.
    #[inline]
    fn publish(&self, word: u64) {
        #[cfg(not(loom))]
        self.count.store(word, Ordering::Release);
        #[cfg(loom)]
        self.count.swap(word, Ordering::AcqRel);
    }

    /// The calls of `generation` the stripe holds, with the period they were counted in.
    /// Read it before the shared totals (see the module docs).
    #[inline]
    pub(super) fn pending(&self, generation: u32) -> Option<(u64, u64)> {
        let c = self.count.load(Ordering::Acquire);
        if tag(c) != generation || count(c) == 0 {
            return None;
        }
        Some((self.period.load(Ordering::Acquire), count(c)))
    }

    /// Brings the count's tag up to `generation` if it is older (see `Window::refresh`). The
    /// owner may store over it at the same moment; it only ever stores a generation it has
    /// just seen current, so the tag stays fresh either way.
    pub(super) fn refresh(&self, generation: u32) {
        tagged::retag(&self.count, generation);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// What the owner does (`TimeWindow::add_success`): the calls it had to fold, if any.
    fn add(s: &Stripe, generation: u32, period: u64) -> Option<(u32, u64, u64)> {
        if s.add(generation, period) {
            return None;
        }
        match s.held(generation) {
            Held::Calls { period: p, n } => {
                s.restart(generation, period);
                Some((generation, p, n))
            }
            Held::Nothing => {
                s.restart(generation, period);
                None
            }
            Held::Late => Some((u32::MAX, 0, 0)),
        }
    }

    #[test]
    fn a_stripe_counts_one_period_and_hands_it_over_for_the_next() {
        let s = Stripe::default();
        assert_eq!(s.pending(3), None);
        assert_eq!(add(&s, 3, 7), None);
        assert_eq!(add(&s, 3, 7), None);
        assert_eq!(s.pending(3), Some((7, 2)));
        assert_eq!(s.pending(2), None, "another generation's calls");
        assert_eq!(add(&s, 3, 8), Some((3, 7, 2)), "a new period: fold the old one first");
        assert_eq!(s.pending(3), Some((8, 1)));
        assert_eq!(add(&s, 5, 8), None, "a new generation starts over; the old one is over");
        assert_eq!(s.pending(5), Some((8, 1)));
        assert_eq!(add(&s, 4, 8), Some((u32::MAX, 0, 0)), "a late writer is dropped");
        s.refresh(6);
        assert_eq!(s.pending(6), None);
        assert_eq!(add(&s, 6, 9), None);
        assert_eq!(s.pending(6), Some((9, 1)));
    }
}
