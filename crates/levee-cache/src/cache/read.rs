//! Reads: [`Cache::get`], [`Cache::contains_key`], and the lookup under a shard's read lock
//! that loads share, with its stale-while-revalidate and XFetch early-refresh decisions.
//! Apart because this is the hot path: it takes only the read side and touches no list.

use std::borrow::Borrow;
use std::hash::Hash;

use levee_core::{Clock, random};

use super::{Cache, Inner, Want, WantValue};
use crate::lock::Tally;
use crate::store::Slot;

/// What a lookup under the read lock found.
pub(crate) enum Probe<O> {
    /// A fresh answer.
    Fresh(O),
    /// A stale answer to serve while somebody else refreshes it.
    Stale(O),
    /// An answer to serve, and this caller won the right to refresh entry `id`
    /// (`early`: by the XFetch rule, before expiry).
    Refresh { out: O, id: u64, early: bool },
    /// Nothing usable.
    Miss,
}

impl<K, V, C> Cache<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// The value for `key`, if it is cached and fresh.
    ///
    /// A stale value (past its time to live, within the stale-while-revalidate window) is not
    /// returned here: only loading calls serve stale values, because only they can refresh.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let hash = inner.hash(key);
        if inner.timed() {
            // A call in its own branch, which reads the clock too: the untimed lookup then
            // holds nothing across a call, so it needs no registers saved and restored.
            return inner.get_timed(hash, key);
        }
        inner.probe_untimed::<WantValue, Q>(hash, key)
    }

    /// True if `key` has a fresh value (without counting a hit or a miss).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let hash = inner.hash(key);
        let now = inner.now();
        inner.shard(hash).read(|shard| {
            let found = shard.find(hash, key).is_some_and(|e| {
                matches!(e.slot(), Slot::Value(_))
                    && now < e.expires_at()
                    && !e.is_dead(now, inner.config.tti)
            });
            (found, Tally::Nothing)
        })
    }
}

impl<K, V, C> Inner<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Looks `key` up under the read lock at `time` ([`Inner::lookup_time`]: `None` while
    /// nothing can expire). `loading`: the caller can refresh (serve stale values, run
    /// XFetch).
    #[inline]
    pub(crate) fn probe<W: Want<V>, Q>(
        &self,
        hash: u64,
        key: &Q,
        time: Option<u64>,
        loading: bool,
    ) -> Probe<W::Out>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match time {
            None => self.probe_untimed::<W, Q>(hash, key).map_or(Probe::Miss, Probe::Fresh),
            Some(now) => self.probe_timed::<W, Q>(hash, key, now, loading),
        }
    }

    /// The lookup of a cache where nothing expires (the common case): no expiry check, and
    /// an answer is fresh or missing, nothing in between. Inlined into its caller, with an
    /// answer small enough for registers: as one out-of-line function with the timed lookup,
    /// a hit paid for the call, its register saves and restores, and the key and the
    /// [`Probe`] passed through memory (`examples/cache_cost.rs hit`).
    #[inline(always)]
    pub(crate) fn probe_untimed<W: Want<V>, Q>(&self, hash: u64, key: &Q) -> Option<W::Out>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // `move`: the closure holds copies, so `hash` and `key` stay in registers rather
        // than in memory for the (out-of-line) shared-row read to point to.
        self.shard(hash).read(move |shard| {
            let out = shard.find(hash, key).and_then(|e| {
                let out = W::accept(e.slot())?;
                e.touch();
                Some(out)
            });
            let tally = if out.is_some() { Tally::Hit } else { Tally::Miss };
            (out, tally)
        })
    }

    /// [`Cache::get`] in a cache where entries can expire.
    #[inline(never)]
    fn get_timed<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match self.probe_timed::<WantValue, Q>(hash, key, self.clock.now(), false) {
            Probe::Fresh(v) => Some(v),
            _ => None,
        }
    }

    /// The lookup at `now` of a cache where entries can expire, with the expiry checks.
    #[inline(never)]
    pub(crate) fn probe_timed<W: Want<V>, Q>(
        &self,
        hash: u64,
        key: &Q,
        now: u64,
        loading: bool,
    ) -> Probe<W::Out>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let config = &self.config;
        self.shard(hash).read(|shard| {
            let Some(e) = shard.find(hash, key) else {
                return (Probe::Miss, Tally::Miss);
            };
            if e.is_dead(now, config.tti) {
                return (Probe::Miss, Tally::Miss);
            }
            if now >= e.expires_at() && !loading {
                return (Probe::Miss, Tally::Miss);
            }
            let Some(out) = W::accept(e.slot()) else {
                return (Probe::Miss, Tally::Miss);
            };
            e.touch();
            if config.tti != 0 {
                e.mark_read(now, config.tti);
            }
            if now >= e.expires_at() {
                // Within the stale-while-revalidate window (else it would be dead).
                let probe = if e.win_refresh() {
                    Probe::Refresh { out, id: e.id(), early: false }
                } else {
                    Probe::Stale(out)
                };
                return (probe, Tally::Hit);
            }
            if loading && self.xfetch(now, e.expires_at(), e.load_nanos()) && e.win_refresh() {
                return (Probe::Refresh { out, id: e.id(), early: true }, Tally::Hit);
            }
            (Probe::Fresh(out), Tally::Hit)
        })
    }

    /// XFetch: refresh early with probability rising as expiry nears, scaled by how long the
    /// value took to load (`delta`) and `beta`: refresh when `now - delta * beta * ln(u)` has
    /// passed the expiry, for `u` uniform in (0, 1].
    #[inline]
    fn xfetch(&self, now: u64, expires_at: u64, load_nanos: u64) -> bool {
        let beta = self.config.beta;
        if beta == 0.0 || expires_at == u64::MAX {
            return false;
        }
        let reach = load_nanos as f64 * beta;
        let gap = expires_at.saturating_sub(now) as f64;
        // -ln(u) never exceeds 37 for the 53-bit u we draw: most hits skip the logarithm.
        if gap > reach * 37.0 {
            return false;
        }
        let u = 1.0 - random::next_f64();
        reach * -u.ln() >= gap
    }
}
