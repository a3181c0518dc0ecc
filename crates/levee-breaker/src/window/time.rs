//! The time-based window: the calls of the last `length`, in `B` buckets of `length / B`.
//!
//! How it works (lock-free, O(1) amortised per record):
//!
//! - Time is cut into bucket periods `idx = (now - origin) / width`. Period `idx` lives in
//!   bucket `idx mod B`, whose `stamp` says which period it currently holds.
//! - The window's totals (calls, failures, slow calls) and each bucket's counts are
//!   generation-tagged counters (`tagged.rs`): a new closed generation starts from zero and a
//!   late writer of an old one is refused.
//! - A recorder first makes sure no expired period is still counted: `head` is the latest
//!   period seen; whoever moves it forward evicts the periods in between (at most B). To evict,
//!   a thread wins the CAS of a bucket's `stamp` to the new period, then empties the bucket's
//!   counters and subtracts what it took from the totals of the generation that wrote it.
//! - It then adds its call to the totals first and to its bucket second, counter by counter
//!   (calls, failures, slow calls). So a total is never below the sum of its buckets and an
//!   eviction never drives it negative. A call recorded in the very instant its bucket turns
//!   over may stay with the old period (and leave with it), land in the new one, or, since
//!   its counters are separate words, be split between the two (its call kept, its failure
//!   gone, say). It is never counted twice, totals and buckets always agree, and
//!   single-threaded use is exact.
//! - A call whose period has already left the window (a thread that read the clock long
//!   before recording) is not counted.
//!
//! # The success path: per-thread stripes
//!
//! Most records are successes that cannot change the verdict, and writing each one into the
//! shared totals makes every thread of a busy service fight over one cache line. So a success
//! that provably changes no verdict is only counted, in the recording thread's own stripe
//! (`stripe.rs`: one writer, plain stores). A stripe holds one period of one thread's
//! successes; its owner folds them into the shared bucket and totals when it starts counting
//! a later period. Judgements and tallies add the stripes' counts whose period is still in
//! the window, reading each stripe before the totals, so they never miss a counted success
//! (an instant of double counting while its owner folds is possible: more calls, which can
//! only delay an opening by a record).
//!
//! A success may take its stripe when its period is the head's or earlier (no call has to
//! leave the window first; it counts in the head period) and either
//!
//! - the window holds no failure and no slow call: then no verdict can open the circuit,
//!   whatever the number of calls; or
//! - the shared totals alone already hold `min_calls` calls and the window was judged since
//!   the head last moved (`judged`): one more success only lowers both rates, so the last
//!   verdict stands.
//!
//! Any other record takes the shared path and is judged, as Resilience4j judges every record;
//! single-threaded use gives exactly its decisions.

use levee_core::sync::{AtomicU64, CachePadded, Ordering};

use super::stripe::{Held, Stripe};
use super::{Sample, Tally, tagged};
use crate::slot;

#[derive(Debug)]
struct Bucket {
    stamp: AtomicU64,
    calls: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
}

/// The latest period seen, and the latest period whose tally a caller judged (both move
/// once per period, and both are read on the success path).
#[derive(Debug)]
struct Head {
    period: AtomicU64,
    judged: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct TimeWindow {
    origin: u64,
    width: u64,
    buckets: u64,
    head: CachePadded<Head>,
    calls: CachePadded<AtomicU64>,
    failed: AtomicU64,
    slow: AtomicU64,
    ring: Box<[Bucket]>,
    /// One per slot number (`slot.rs`).
    stripes: Box<[CachePadded<Stripe>]>,
}

impl TimeWindow {
    /// A window of `length` nanoseconds in `buckets` buckets, periods counted from `origin`.
    pub(crate) fn new(length: u64, buckets: u32, origin: u64) -> Self {
        let ring = (0..buckets)
            .map(|_| Bucket {
                stamp: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                slow: AtomicU64::new(0),
            })
            .collect();
        Self {
            origin,
            width: (length / u64::from(buckets)).max(1),
            buckets: u64::from(buckets),
            head: CachePadded::new(Head { period: AtomicU64::new(0), judged: AtomicU64::new(0) }),
            calls: CachePadded::new(AtomicU64::new(0)),
            failed: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            ring,
            stripes: (0..slot::size()).map(|_| CachePadded::new(Stripe::default())).collect(),
        }
    }

    #[inline]
    fn period(&self, now: u64) -> u64 {
        now.saturating_sub(self.origin) / self.width
    }

    #[inline]
    fn slot(&self, period: u64) -> usize {
        (period % self.buckets) as usize
    }

    /// True when generation `generation`'s window holds no failure and no slow call: no
    /// success can open the circuit then.
    #[inline]
    pub(crate) fn is_clean(&self, generation: u32) -> bool {
        tagged::read(&self.failed, generation) == 0 && tagged::read(&self.slow, generation) == 0
    }

    /// Counts a plain success of `generation` made at `now` in this thread's stripe, if that
    /// provably changes no verdict (see the module docs; `clean` is what
    /// [`is_clean`](Self::is_clean) said). False when the caller must take [`record`] and judge.
    ///
    /// [`record`]: Self::record
    #[inline]
    pub(crate) fn add_success(
        &self,
        generation: u32,
        now: u64,
        min_calls: u64,
        clean: bool,
    ) -> bool {
        let head = self.head.period.load(Ordering::Relaxed);
        // Is `now`'s period the head's (or earlier, read by a clock that lags)? No division.
        let head_end = head.saturating_add(1).saturating_mul(self.width);
        if now.saturating_sub(self.origin) >= head_end {
            return false; // a new period: calls may have to leave the window first
        }
        if !clean
            && (self.head.judged.load(Ordering::Relaxed) != head
                || tagged::read(&self.calls, generation) < min_calls)
        {
            return false;
        }
        let Some(mine) = slot::mine() else {
            return false; // more threads than stripes: the shared path for this one
        };
        let stripe = &self.stripes[mine];
        if !stripe.add(generation, head) {
            self.restart_stripe(stripe, generation, head);
        }
        true
    }

    /// A stripe's owner starts counting `period` for `generation` (see `stripe.rs`).
    #[cold]
    #[inline(never)]
    fn restart_stripe(&self, stripe: &Stripe, generation: u32, period: u64) {
        match stripe.held(generation) {
            Held::Late => {}
            Held::Calls { period: counted_in, n } => {
                self.fold_into_shared(generation, counted_in, n);
                stripe.restart(generation, period);
            }
            Held::Nothing => stripe.restart(generation, period),
        }
    }

    /// Adds `n` calls of `generation` made in `period` to its bucket and the totals (a
    /// stripe's owner handing over a finished period), unless the period has left the window.
    fn fold_into_shared(&self, generation: u32, period: u64, n: u64) {
        let slot = self.slot(period);
        if self.evict_for(period, slot) && tagged::add(&self.calls, generation, n).is_some() {
            tagged::add(&self.ring[slot].calls, generation, n);
        }
    }

    /// The calls of `generation` the stripes hold in periods still in the window at
    /// `period`. Read before the shared totals (see `stripe.rs`).
    fn pending(&self, generation: u32, period: u64) -> u64 {
        self.stripes
            .iter()
            .filter_map(|stripe| stripe.pending(generation))
            .filter(|&(counted_in, _)| counted_in + self.buckets > period)
            .map(|(_, n)| n)
            .sum()
    }

    /// Moves the window to `period`, evicting every period that left it.
    fn advance(&self, period: u64) {
        let mut head = self.head.period.load(Ordering::Relaxed);
        while period > head {
            match self.head.period.compare_exchange_weak(
                head,
                period,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let first = (head + 1).max((period + 1).saturating_sub(self.buckets));
                    for p in first..=period {
                        self.evict_for(p, self.slot(p));
                    }
                    return;
                }
                Err(actual) => head = actual,
            }
        }
    }

    /// Makes `period`'s bucket (at `slot`) hold `period`, emptying what it held before.
    /// Returns false if the bucket already holds a later period.
    fn evict_for(&self, period: u64, slot: usize) -> bool {
        let bucket = &self.ring[slot];
        let mut stamp = bucket.stamp.load(Ordering::Relaxed);
        loop {
            if stamp == period {
                return true;
            }
            if stamp > period {
                return false;
            }
            match bucket.stamp.compare_exchange_weak(
                stamp,
                period,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => stamp = actual,
            }
        }
        for (counter, total) in [
            (&bucket.calls, &*self.calls),
            (&bucket.failed, &self.failed),
            (&bucket.slow, &self.slow),
        ] {
            let (generation, n) = tagged::take(counter);
            if n > 0 {
                tagged::sub(total, generation, n);
            }
        }
        true
    }

    /// Records one call of generation `generation` made at `now` on the shared path, and
    /// returns the tally the caller must judge (`None` for a late or stale record); see
    /// [`super::Window::record`].
    pub(crate) fn record(&self, generation: u32, sample: Sample, now: u64) -> Option<Tally> {
        let period = self.period(now);
        self.advance(period);
        let head = self.head.period.load(Ordering::Relaxed);
        let slot = self.slot(period);
        if !self.evict_for(period, slot) {
            return None;
        }
        tagged::add(&self.calls, generation, 1)?;
        if sample.failed {
            tagged::add(&self.failed, generation, 1)?;
        }
        if sample.slow {
            tagged::add(&self.slow, generation, 1)?;
        }
        let bucket = &self.ring[slot];
        tagged::add(&bucket.calls, generation, 1)?;
        if sample.failed {
            tagged::add(&bucket.failed, generation, 1)?;
        }
        if sample.slow {
            tagged::add(&bucket.slow, generation, 1)?;
        }
        // The stripes first, then the totals (see `stripe.rs`).
        let pending = self.pending(generation, head.max(period));
        let tally = Tally {
            calls: tagged::read(&self.calls, generation) + pending,
            failed: tagged::read(&self.failed, generation),
            slow: tagged::read(&self.slow, generation),
        };
        // The caller judges this tally, which has every call up to `head` left: successes may
        // skip judgement until the head moves again. (Written once per period.)
        if self.head.judged.load(Ordering::Relaxed) < head {
            self.head.judged.fetch_max(head, Ordering::Relaxed);
        }
        // Calls leave the window as time passes, so a success can find the remaining calls
        // over a threshold: judge every record, as Resilience4j does.
        Some(tally)
    }

    /// What generation `generation`'s window holds at `now`. Moves nothing: periods that
    /// have left the window by `now` but are still counted are left out here and evicted by
    /// the next record, which judges what remains. (A tally that evicted would let successes
    /// skip the judgement their new window needs.)
    pub(crate) fn tally(&self, generation: u32, now: u64) -> Tally {
        let period = self.period(now);
        let pending = self.pending(generation, period);
        let mut t = Tally {
            calls: tagged::read(&self.calls, generation) + pending,
            failed: tagged::read(&self.failed, generation),
            slow: tagged::read(&self.slow, generation),
        };
        for bucket in self.ring.iter() {
            if bucket.stamp.load(Ordering::Relaxed) + self.buckets <= period {
                t.calls = t.calls.saturating_sub(tagged::read(&bucket.calls, generation));
                t.failed = t.failed.saturating_sub(tagged::read(&bucket.failed, generation));
                t.slow = t.slow.saturating_sub(tagged::read(&bucket.slow, generation));
            }
        }
        t
    }

    /// Keeps the tags fresh at a transition to `generation`: the totals, and one bucket and
    /// one stripe (a different one each generation, so each is visited within twice their
    /// number of consecutive generations); see `CountWindow::refresh`.
    pub(crate) fn refresh(&self, generation: u32) {
        tagged::retag(&self.calls, generation);
        tagged::retag(&self.failed, generation);
        tagged::retag(&self.slow, generation);
        let bucket = &self.ring[(u64::from(generation) % self.buckets) as usize];
        for counter in [&bucket.calls, &bucket.failed, &bucket.slow] {
            tagged::retag(counter, generation);
        }
        self.stripes[generation as usize % self.stripes.len()].refresh(generation);
    }

    /// [`refresh`](Self::refresh) with every stripe at once, so a loom model of one refresh
    /// reaches the stripe of whichever slot its threads were given.
    #[cfg(loom)]
    pub(crate) fn refresh_all_stripes(&self, generation: u32) {
        self.refresh(generation);
        for stripe in self.stripes.iter() {
            stripe.refresh(generation);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const OK: Sample = Sample { failed: false, slow: false };
    const FAIL: Sample = Sample { failed: true, slow: false };

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn calls_leave_with_their_bucket() {
        // 10 s in 10 buckets.
        let w = TimeWindow::new(10 * SEC, 10, 0);
        assert_eq!(w.record(0, FAIL, 0), Some(Tally { calls: 1, failed: 1, slow: 0 }));
        w.record(0, OK, SEC / 2);
        w.record(0, FAIL, 5 * SEC);
        assert_eq!(w.tally(0, 9 * SEC + SEC / 2), Tally { calls: 3, failed: 2, slow: 0 });
        assert_eq!(w.tally(0, 10 * SEC), Tally { calls: 1, failed: 1, slow: 0 }, "period 0 left");
        assert_eq!(w.tally(0, 15 * SEC), Tally::default());
        w.record(0, OK, 1000 * SEC);
        assert_eq!(w.tally(0, 1000 * SEC), Tally { calls: 1, failed: 0, slow: 0 }, "long gap");
    }

    #[test]
    fn late_and_stale_records_are_dropped() {
        let w = TimeWindow::new(10 * SEC, 10, 0);
        w.record(0, OK, 20 * SEC);
        assert_eq!(w.record(0, FAIL, 5 * SEC), None, "period already left the window");
        assert_eq!(w.record(2, FAIL, 20 * SEC), Some(Tally { calls: 1, failed: 1, slow: 0 }));
        assert_eq!(w.record(0, FAIL, 20 * SEC), None, "old generation");
        assert_eq!(w.tally(2, 20 * SEC), Tally { calls: 1, failed: 1, slow: 0 });
        assert_eq!(w.tally(0, 20 * SEC), Tally::default());
    }

    #[test]
    fn stripe_successes_count_and_leave_with_their_bucket() {
        let w = TimeWindow::new(10 * SEC, 10, 0);
        assert!(w.is_clean(0));
        assert!(w.add_success(0, 0, 5, true));
        assert!(w.add_success(0, SEC / 2, 5, true));
        assert_eq!(w.tally(0, SEC / 2), Tally { calls: 2, failed: 0, slow: 0 });
        assert!(!w.add_success(0, SEC, 5, true), "a new period takes the shared path");
        w.record(0, OK, SEC);
        assert!(w.add_success(0, SEC, 5, true));
        assert_eq!(w.tally(0, 9 * SEC), Tally { calls: 4, failed: 0, slow: 0 });
        assert_eq!(w.tally(0, 10 * SEC), Tally { calls: 2, failed: 0, slow: 0 }, "period 0 left");
        assert_eq!(w.tally(1, 10 * SEC), Tally::default(), "another generation sees nothing");
    }

    #[test]
    fn a_success_that_could_change_the_verdict_is_judged() {
        let w = TimeWindow::new(10 * SEC, 10, 0);
        w.record(0, FAIL, 0);
        assert!(!w.is_clean(0));
        assert!(!w.add_success(0, 0, 3, false), "below the minimum number of calls");
        w.record(0, OK, 0);
        w.record(0, OK, 0);
        assert!(w.add_success(0, 0, 3, false), "judged since the head last moved, minimum met");
        assert!(!w.add_success(0, SEC, 3, false), "a new period: calls may leave first");
        w.record(0, OK, SEC);
        assert!(w.add_success(0, SEC, 3, false), "judged in the new period");
        // A late writer of a finished generation moves the head and is refused: calls left
        // the window and nobody judged what remains, so the next success must be judged.
        let w = TimeWindow::new(10 * SEC, 10, 0);
        w.record(1, FAIL, 0);
        w.record(1, OK, 0);
        w.record(0, OK, 5 * SEC); // late: refused, after moving the head
        assert!(!w.add_success(1, 5 * SEC, 1, false), "the head moved without a judgement");
    }

    #[test]
    fn every_record_is_judged() {
        let w = TimeWindow::new(10 * SEC, 10, 0);
        w.record(0, OK, 0);
        w.record(0, FAIL, 5 * SEC);
        // The early success has left: the new success sees one failure in two calls.
        assert_eq!(w.record(0, OK, 11 * SEC), Some(Tally { calls: 2, failed: 1, slow: 0 }));
    }
}
