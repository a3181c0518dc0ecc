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
        match inner.probe::<WantValue, Q>(hash, key, inner.lookup_time(), false) {
            Probe::Fresh(v) => Some(v),
            _ => None,
        }
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
        // Two copies of the lookup: a cache where nothing expires (the common case) runs
        // one without a single expiry check in it.
        match time {
            None => self.probe_at::<W, Q, false>(hash, key, 0, loading),
            Some(now) => self.probe_at::<W, Q, true>(hash, key, now, loading),
        }
    }

    /// [`Inner::probe`] at `now`, with the expiry checks when `TIMED`.
    #[inline(always)]
    fn probe_at<W: Want<V>, Q, const TIMED: bool>(
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
            if TIMED {
                if e.is_dead(now, config.tti) {
                    return (Probe::Miss, Tally::Miss);
                }
                if now >= e.expires_at() && !loading {
                    return (Probe::Miss, Tally::Miss);
                }
            }
            let Some(out) = W::accept(e.slot()) else {
                return (Probe::Miss, Tally::Miss);
            };
            e.touch();
            if TIMED {
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
