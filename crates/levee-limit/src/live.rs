//! A GCRA state whose quota can change at run time, keeping the debt its callers built up.
//!
//! **Layout.** Each quota is an *epoch*: the validated parameters, the clock reading at which
//! they took over, and a theoretical-arrival-time word of its own. The epochs live in a
//! [`Retained`] (levee-core): a check loads the current epoch (one acquire load) and runs the
//! plain GCRA on that epoch's word, exactly as the fixed limiter does on its own word.
//!
//! **A change** (writers take a mutex; readers never do):
//!
//! ```text
//!   W1: publish epoch e' {quota', since = now, tat = PENDING}
//!   W2: seal the old word: fetch_or(SEALED) returns its final tat
//!   W3: CAS e'.tat: PENDING -> translate(final tat)
//! ```
//!
//! A sealed or pending word reads as `>= 2^63`, far beyond any `now + tau` (clock readings
//! stay below 2^62 and `tau <= 2^62`), so GCRA refuses on it and never admits: a check that
//! raced with W2 fails its CAS, and a check on a pending epoch cannot consume anything. On a
//! refusal (the cold path) the check looks again: if a newer epoch is current it reloads.
//! Before it runs, a check reads the epoch's `settled` flag (acquire; on the parameters'
//! cache line): an epoch whose W2-W3 are unfinished is settled by the check itself (helping:
//! both steps are idempotent and every helper computes the same value, since a sealed word
//! never changes again). No reader ever waits for a writer. A refusal on the current,
//! settled epoch is a real one.
//!
//! **The rule.** The cells owed are kept: with `now` the change's clock reading, `T`/`T'` the
//! old and new emission intervals and `tau'` the new tolerance,
//! `TAT' = now + ceil((TAT - now) * T' / T)`, at most `now + tau' + T'` (a limiter drained
//! under the new quota); a state at or behind the clock (nothing owed) stays full. Rounding
//! is up, so a change never admits a cell early.
//!
//! The checks' accesses to the words are `Relaxed`, as in `gcra.rs`: the epoch's immutable
//! fields are published by the `Retained`. The one ordering that matters: the seal (W2) is a
//! release, and a check that refused re-reads its word with acquire before it looks for a
//! newer epoch, so it cannot miss the epoch whose writer sealed its own.

use levee_core::sync::{AtomicBool, AtomicU64, CachePadded, Mutex, Ordering, Retained, Version};

use crate::quota::{Gcra, Quota};

/// Set on an epoch's word once a newer epoch has taken over (the low bits keep its last tat).
const SEALED: u64 = 1 << 63;
/// An epoch's word until its tat has been translated from the previous epoch's.
const PENDING: u64 = u64::MAX;

/// One quota's span of a limiter's life.
pub(crate) struct Epoch {
    pub(crate) gcra: Gcra,
    pub(crate) quota: Quota,
    /// The clock reading at which this quota took over (the translation's `now`).
    since: u64,
    /// The GCRA state under this quota; its own cache line (see `rate.rs`'s `Hot`).
    pub(crate) tat: CachePadded<AtomicU64>,
    /// Whether `tat` has been translated from the previous epoch's (W3 done).
    settled: AtomicBool,
}

/// The GCRA parameters and state of a reconfigurable limiter.
pub(crate) struct LiveGcra {
    epochs: Retained<Epoch>,
    /// Serialises changes (W1-W3 above); never taken by a check.
    change: Mutex<()>,
}

impl LiveGcra {
    pub(crate) fn new(gcra: Gcra, quota: Quota) -> Self {
        let epoch = Epoch {
            gcra,
            quota,
            since: 0,
            tat: CachePadded::new(AtomicU64::new(0)),
            settled: AtomicBool::new(true),
        };
        Self { epochs: Retained::new(epoch), change: Mutex::new(()) }
    }

    /// The current epoch.
    #[inline(always)]
    pub(crate) fn current(&self) -> Version<'_, Epoch> {
        self.epochs.load()
    }

    /// Runs `op` on the current epoch; when it refuses on a word a change has sealed or not
    /// yet settled, finishes the change if needed and runs it again on the current epoch.
    #[inline(always)]
    pub(crate) fn run<T, E>(&self, mut op: impl FnMut(&Epoch) -> Result<T, E>) -> Result<T, E> {
        loop {
            let epoch = self.current();
            // Acquire: pairs with settle's Release, so the word `op` reads is the translated
            // state or later, never PENDING (the flag shares a cache line with `gcra`).
            if !epoch.settled.load(Ordering::Acquire) {
                settle(epoch);
                continue;
            }
            let result = op(&epoch);
            if result.is_ok() || !self.retry_after_refusal(epoch) {
                return result;
            }
        }
    }

    /// The cold path of [`run`](Self::run): whether the refusal came from a change.
    #[cold]
    #[inline(never)]
    fn retry_after_refusal(&self, epoch: Version<'_, Epoch>) -> bool {
        // Acquire: pairs with the sealing fetch_or (AcqRel). A refusal read the sealed word
        // (or an older one); reading it here synchronises with whoever sealed it, who had
        // already seen the newer epoch, so the load of `current` below cannot return this
        // stale epoch again (and the retry loop cannot spin on it).
        let _ = epoch.tat.load(Ordering::Acquire);
        // A newer quota took over; otherwise the refusal is real (`op` ran on a settled
        // epoch, so it did not read PENDING).
        !epoch.same(self.current())
    }

    /// The current epoch, settled, and its tat (for snapshots).
    pub(crate) fn tat(&self) -> (Version<'_, Epoch>, u64) {
        let epoch = self.current();
        // Acquire: as in `run`.
        if !epoch.settled.load(Ordering::Acquire) {
            settle(epoch);
        }
        // Acquire: as in `retry_after_refusal`, so that `reset`, finding this word sealed,
        // finds the newer epoch on its next look.
        (epoch, epoch.tat.load(Ordering::Acquire))
    }

    /// Refills the current epoch (a reset racing a change resets whichever epoch is current
    /// after it).
    pub(crate) fn reset(&self) {
        loop {
            let (epoch, word) = self.tat();
            // A sealed word is left alone: the CAS below must never unseal one.
            if word & SEALED != 0 && !epoch.same(self.current()) {
                continue;
            }
            // Relaxed: as every transition of the word (module docs).
            if epoch.tat.compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Switches to `gcra`/`quota` at clock reading `now`, translating the state (module
    /// docs). Returns the previous quota.
    pub(crate) fn reconfigure(&self, gcra: Gcra, quota: Quota, now: u64) -> Quota {
        let _change = self.change.lock();
        let previous = self.current().quota;
        let epoch = Epoch {
            gcra,
            quota,
            since: now,
            tat: CachePadded::new(AtomicU64::new(PENDING)),
            settled: AtomicBool::new(false),
        };
        settle(self.epochs.publish(epoch));
        previous
    }

    /// How many quotas this limiter has had (each is kept until it is dropped).
    pub(crate) fn epochs(&self) -> usize {
        self.epochs.versions()
    }
}

/// W2 and W3 for `epoch` (idempotent; any thread may run them).
fn settle(epoch: Version<'_, Epoch>) {
    let Some(previous) = epoch.previous() else { return };
    // A read-modify-write sees the latest tat; once sealed, the word never changes. Release
    // (AcqRel): a check that finds the seal also finds `epoch` current (`retry_after_refusal`).
    let last = previous.tat.fetch_or(SEALED, Ordering::AcqRel) & !SEALED;
    let tat = translate(last, epoch.since, &previous.gcra, &epoch.gcra);
    // Relaxed: every helper stores the same value; only the first CAS succeeds.
    let _ = epoch.tat.compare_exchange(PENDING, tat, Ordering::Relaxed, Ordering::Relaxed);
    // Release: a reader that sees `settled` sees the translated word (or a later state).
    epoch.settled.store(true, Ordering::Release);
}

/// The state under `new` that owes as many cells as `tat` did under `old` at `now`, at most
/// a drained limiter's (module docs, "The rule").
pub(crate) fn translate(tat: u64, now: u64, old: &Gcra, new: &Gcra) -> u64 {
    if tat <= now {
        return 0;
    }
    let owed = u128::from(tat - now) * u128::from(new.t);
    let scaled = owed.div_ceil(u128::from(old.t));
    // tau' + T' <= 2^62 (Quota::gcra), so the sum and the cast cannot overflow.
    let cap = new.tau + new.t;
    now.saturating_add(scaled.min(u128::from(cap)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gcra(q: Quota) -> Gcra {
        q.gcra().unwrap()
    }

    #[test]
    fn translation_keeps_the_cells_owed() {
        let old = gcra(Quota::per_second(10)); // T = 100 ms, burst 10
        let new = gcra(Quota::per_second(20)); // T = 50 ms, burst 20
        // 3 cells owed at t = 1 s: 300 ms of debt becomes 150 ms.
        assert_eq!(translate(1_300_000_000, 1_000_000_000, &old, &new), 1_150_000_000);
        // Nothing owed stays full.
        assert_eq!(translate(900, 1_000, &old, &new), 0);
        // Capped by the new burst: 10 cells owed, a burst of 2 can owe at most 2.
        let small = gcra(Quota::per_second(10).with_burst(2));
        assert_eq!(translate(1_000_000_000, 0, &old, &small), 200_000_000);
        // Rounded up: never early.
        let thirds = gcra(Quota::new(3, Duration::from_nanos(10)));
        assert_eq!(thirds.t, 4);
        assert_eq!(translate(1, 0, &thirds, &old), 25_000_000);
    }
}
