//! The keyed limiter's engine: a check against one shard, the insertion of new keys, and the
//! reclamation passes (see the module docs of `keyed` for the rules).
//!
//! **Readings and reclamation.** A check of a key in the table is exact at any reading, as
//! with a plain limiter. A key *not* in the table is judged on the table's horizon, the
//! largest state reclamation dropped from it: exact for a reading at or after it, the
//! strictest state a dropped key could have had for an older one. So a miss whose reading is
//! older than the horizon reads the clock again with the shard held (`insert_shared`; the
//! write path always does): a reclamation pass holds the shard exclusively, so that reading
//! follows every pass the table has seen and lies at or above every threshold they used. Only
//! a caller's own reading (`check_at`), which cannot be taken again, is judged on the
//! horizon, and keeping the key could only have admitted more.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use levee_core::Clock;
use levee_core::sync::{AtomicU64, Ordering};

use super::KeyedRateLimiter;
use super::table::{Shared, Table};
use crate::KeyLimitPolicy;
use crate::error::{CheckNError, Throttled};
use crate::quota::Gcra;

/// One shard: its table, the quota its keys are checked against, and when it is next swept.
pub(super) struct Shard<K> {
    pub(super) table: Table<K>,
    /// Read under the shard's lock and changed only with it held exclusively
    /// ([`KeyedRateLimiter::reconfigure`]), together with the states it applies to.
    pub(super) gcra: Gcra,
    /// Clock reading at which the next time-based sweep is due; `u64::MAX` while the shard
    /// is empty or a sweep has been claimed.
    sweep_due: AtomicU64,
}

impl<K> Shard<K> {
    pub(super) fn new(gcra: Gcra) -> Self {
        Self { table: Table::new(), gcra, sweep_due: AtomicU64::new(u64::MAX) }
    }

    /// Claims the shard's sweep when it is due at `now`: one thread wins it, and moving the
    /// due time to "never" hides it from the others until the sweep schedules the next one.
    #[inline]
    fn claim_sweep(&self, now: u64) -> bool {
        // Relaxed: a hint and a claim; the sweep itself runs with the shard held exclusively.
        let due = self.sweep_due.load(Ordering::Relaxed);
        due <= now && self.claim_sweep_slow(due)
    }

    #[cold]
    fn claim_sweep_slow(&self, due: u64) -> bool {
        self.sweep_due.compare_exchange(due, u64::MAX, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// After adding a key: a shard that was empty starts its sweep clock.
    #[inline]
    fn schedule_sweep(&self, now: u64, interval: u64) {
        if self.sweep_due.load(Ordering::Relaxed) == u64::MAX {
            self.sweep_due.store(now.saturating_add(interval), Ordering::Relaxed);
        }
    }
}

/// What a read section decided besides "admitted, nothing else to do" (the hot path returns
/// only that bit; the rest goes through this, written on the rare paths only).
enum Rare {
    Nothing,
    /// Admitted; the caller claimed this shard's sweep at the given reading.
    AdmittedSweep(u64),
    /// Refused; with the reading at which the caller claimed this shard's sweep, if it did.
    Refused(CheckNError, Option<u64>),
    /// No decision: the key is new and the shard needs exclusive access to add it.
    Exclusive,
}

/// What an insertion with the shard held exclusively came to.
enum Exclusive {
    /// Another thread had added the key meanwhile; this is the check on its state.
    Existing(Result<(), CheckNError>),
    /// A new key, admitted.
    New,
    /// Refused: the key's state (the horizon, for a reading older than it) does not admit
    /// the cells, or the shard is full and the policy refuses new keys.
    Refused(CheckNError),
}

impl<K, C, S> KeyedRateLimiter<K, C, S>
where
    K: Hash + Eq,
    C: Clock,
    S: BuildHasher,
{
    /// Admits `n` cells (`1..=burst`) for `key` at reading `now`. `clock` gives the reading
    /// to use instead when `now` turns out to be older than a reclamation of the key's shard
    /// (module docs): the clock for `check`, `now` itself for `check_at`. `report`: count a
    /// refusal as a rejected call.
    #[inline]
    pub(super) fn check_inner<Q>(
        &self,
        key: &Q,
        n: u32,
        now: u64,
        clock: &impl Fn() -> u64,
        report: bool,
    ) -> Result<(), CheckNError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let i = self.shard_index(hash);
        let mut rare = Rare::Nothing;
        let admitted = self.shards.read(i, |shard| {
            let (decision, now) = match shard.table.find(hash, key) {
                // One cell: `check`'s shorter arithmetic (the branch folds away in `check`).
                Ok(state) if n == 1 => (shard.gcra.check(state, now).map_err(Into::into), now),
                Ok(state) => (shard.gcra.check_n(state, now, n), now),
                Err(empty) => match self.insert_shared(shard, empty, key, now, clock, n) {
                    Some(decided) => decided,
                    None => {
                        rare = Rare::Exclusive;
                        return false;
                    }
                },
            };
            let sweep = shard.claim_sweep(now);
            match decision {
                Ok(()) if !sweep => true,
                Ok(()) => {
                    rare = Rare::AdmittedSweep(now);
                    false
                }
                Err(refusal) => {
                    rare = Rare::Refused(refusal, sweep.then_some(now));
                    false
                }
            }
        });
        if admitted {
            self.counters.admit(self.count_admitted, n);
            return Ok(());
        }
        self.settle_rare(i, hash, key, n, clock, report, rare)
    }

    /// A miss: adds `key` with shared access and returns the decision with the reading it
    /// was made at, or `None` when the shard needs exclusive access first. A reading older
    /// than the table's horizon is replaced by `clock()`, taken now that the shard is held,
    /// so it follows every reclamation the table has seen (module docs). Out of line, so
    /// that the hit path stays small.
    #[inline(never)]
    fn insert_shared<Q>(
        &self,
        shard: &Shard<K>,
        empty: usize,
        key: &Q,
        now: u64,
        clock: &impl Fn() -> u64,
        n: u32,
    ) -> Option<(Result<(), CheckNError>, u64)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = if now < shard.table.horizon() { clock() } else { now };
        let fresh = |horizon| shard.gcra.admit_n(horizon, now, n);
        let decision = match shard.table.insert_shared(empty, key, self.shard_limit, fresh) {
            Shared::Added => {
                shard.schedule_sweep(now, self.sweep_interval());
                Ok(())
            }
            Shared::Present(state) => shard.gcra.check_n(state, now, n),
            Shared::Declined(refusal) => Err(refusal),
            Shared::Full => return None,
        };
        Some((decision, now))
    }

    /// Nanoseconds between sweeps (it follows the quota unless the builder set it).
    #[inline]
    fn sweep_interval(&self) -> u64 {
        // Relaxed: a scheduling hint (`reconfigure`).
        self.sweep_interval.load(Ordering::Relaxed)
    }

    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn settle_rare<Q>(
        &self,
        i: usize,
        hash: u64,
        key: &Q,
        n: u32,
        clock: &impl Fn() -> u64,
        report: bool,
        rare: Rare,
    ) -> Result<(), CheckNError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match rare {
            Rare::Nothing => unreachable!("a read section that did not admit says why"),
            Rare::AdmittedSweep(at) => {
                self.sweep_shard(i, at);
                self.counters.admit(self.count_admitted, n);
                Ok(())
            }
            Rare::Refused(refusal, sweep) => {
                if let Some(at) = sweep {
                    self.sweep_shard(i, at);
                }
                self.settle_refusal(refusal, n, report)
            }
            Rare::Exclusive => self.insert_exclusive(i, hash, key, n, clock, report),
        }
    }

    fn settle_refusal(
        &self,
        refusal: CheckNError,
        n: u32,
        report: bool,
    ) -> Result<(), CheckNError> {
        match refusal {
            CheckNError::Throttled(t) if report => {
                Err(self.counters.record_throttled(&self.hook, n, t).into())
            }
            CheckNError::Throttled(t) => Err(t.into()),
            CheckNError::InsufficientCapacity(error) if report => {
                self.counters.rejected.incr();
                Err(error.into())
            }
            other => Err(other),
        }
    }

    /// The slow path: `key` is new and its shard needs room (a pass, growth, or the key limit).
    #[cold]
    fn insert_exclusive<Q>(
        &self,
        i: usize,
        hash: u64,
        key: &Q,
        n: u32,
        clock: &impl Fn() -> u64,
        report: bool,
    ) -> Result<(), CheckNError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut passes = [(0, 0); 3];
        let mut evicted = 0;
        let outcome = self.shards.write(i, |shard| {
            // Held exclusively: this reading follows every pass the shard has seen.
            let now = clock();
            if let Ok(state) = shard.table.find(hash, key) {
                // Another thread added it since our read.
                return Exclusive::Existing(shard.gcra.check_n(state, now, n));
            }
            if shard.table.len() >= self.shard_limit {
                // First the keys idle for a sweep interval, then every refilled one.
                passes[0] = self.pass(shard, now, self.idle_threshold(now), 1);
                if shard.table.len() >= self.shard_limit {
                    passes[1] = self.pass(shard, now, now, 1);
                }
                if shard.table.len() >= self.shard_limit {
                    match self.policy {
                        KeyLimitPolicy::EvictNearestRefilled => {
                            evicted = self.evict(&mut shard.table);
                        }
                        KeyLimitPolicy::RefuseNewKeys => {
                            let earliest = shard.table.min_tat().unwrap_or(now).max(now);
                            return Exclusive::Refused(Throttled::new(now, earliest).into());
                        }
                    }
                }
            }
            if shard.table.needs_rebuild(usize::MAX) || shard.claim_sweep(now) {
                // Reclaim before growing (the rebuild sizes the table for what survives),
                // or because this shard's sweep is due anyway and we hold it.
                passes[2] = self.pass(shard, now, self.idle_threshold(now), 1);
            }
            // The state a key not in the table starts from: the table's horizon, which acts
            // as a fresh state at readings at or after it.
            match shard.gcra.admit_n(shard.table.horizon(), now, n) {
                Ok(tat) => {
                    shard.table.insert_mut(hash, key.to_owned(), tat);
                    shard.schedule_sweep(now, self.sweep_interval());
                    Exclusive::New
                }
                Err(refusal) => Exclusive::Refused(refusal),
            }
        });
        passes.into_iter().for_each(|p| self.report_pass(p));
        if evicted > 0 {
            self.evicted.add(evicted as u64);
            self.hook.emit(|| crate::RateEvent::KeysEvicted { evicted });
        }
        match outcome {
            Exclusive::New | Exclusive::Existing(Ok(())) => {
                self.counters.admit(self.count_admitted, n);
                Ok(())
            }
            Exclusive::Existing(Err(refusal)) | Exclusive::Refused(refusal) => {
                self.settle_refusal(refusal, n, report)
            }
        }
    }

    /// The threshold of an automatic pass at `now`: keys at or below it have been refilled
    /// for a whole sweep interval. (A threshold relative to the shard's previous pass, a
    /// CLOCK-like second chance, collapses when new keys make passes come faster than a
    /// key's period: each pass then keeps only the keys checked since the last one, the
    /// table shrinks, and every check re-adds its key.)
    #[inline]
    fn idle_threshold(&self, now: u64) -> u64 {
        now.saturating_sub(self.sweep_interval())
    }

    /// Runs shard `i`'s claimed sweep.
    #[cold]
    fn sweep_shard(&self, i: usize, now: u64) {
        let pass = self.shards.write(i, |shard| self.pass(shard, now, self.idle_threshold(now), 0));
        self.report_pass(pass);
    }

    /// Drops the keys of a held shard whose state is at or below `threshold` (rebuilding it
    /// with room for `room` more) and schedules its next sweep. Returns `(reclaimed,
    /// remaining)` for `report_pass`, called once the shard is released (listeners never run
    /// under a shard lock).
    pub(super) fn pass(
        &self,
        shard: &mut Shard<K>,
        now: u64,
        threshold: u64,
        room: usize,
    ) -> (usize, usize) {
        let reclaimed = shard.table.rebuild(&self.hasher, threshold, room, true);
        let remaining = shard.table.len();
        let due = if remaining == 0 { u64::MAX } else { now.saturating_add(self.sweep_interval()) };
        // Relaxed: read as a hint by `claim_sweep`; the shard's lock orders the rest.
        shard.sweep_due.store(due, Ordering::Relaxed);
        (reclaimed, remaining)
    }

    pub(super) fn report_pass(&self, (reclaimed, remaining): (usize, usize)) {
        if reclaimed > 0 {
            self.reclaimed.add(reclaimed as u64);
            self.hook.emit(|| crate::RateEvent::KeysReclaimed { reclaimed, remaining });
        }
    }

    /// Evicts the eighth of a full shard whose states are smallest (closest to refilled).
    /// Returns how many keys went.
    fn evict(&self, table: &mut Table<K>) -> usize {
        let mut tats: Vec<u64> = table.tats().collect();
        let victims = (tats.len() / 8).max(1);
        let (_, cutoff, _) = tats.select_nth_unstable(victims - 1);
        let cutoff = *cutoff;
        table.rebuild(&self.hasher, cutoff, 1, false)
    }
}
