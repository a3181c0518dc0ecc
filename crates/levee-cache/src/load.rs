//! `get_with` and friends: a miss runs one load per key however many callers ask, and stale
//! or nearly stale values are refreshed by one caller while the others are served.

use std::future::Future;
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use futures::FutureExt;
use levee_core::Clock;
use levee_core::sync::Arc;

use crate::Cache;
use crate::cache::{Claim, Inner, Loaded, Probe, Want, WantOption, WantResult, WantValue};
use crate::flight::{AbandonHook, Flight, Join, Outcome};

const LEADER_GETS_ITS_RESULT: &str = "a leader's own load result is always an answer for it";

impl<K, V, C> Cache<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// The value for `key`, loaded with `loader` on a miss.
    ///
    /// However many threads miss `key` at once, one runs its loader and the others wait for its
    /// value. A value past its time to live but within the
    /// [stale-while-revalidate](crate::CacheBuilder::stale_while_revalidate) window is returned
    /// at once; the first caller to see it refreshes it (on its own thread: the sync API has no
    /// background), the others keep getting the stale value meanwhile. The same caller-pays
    /// refresh happens when [XFetch](crate::CacheBuilder::early_refresh) decides to refresh early.
    ///
    /// # Panics
    /// If `loader` panics, the panic continues in this caller; the callers waiting for it do not
    /// see it: one of them loads with its own loader instead.
    pub fn get_with(&self, key: K, loader: impl FnOnce() -> V) -> V {
        self.inner.load_sync::<WantValue>(key, loader)
    }

    /// Like [`get_with`](Self::get_with) for a loader that can fail. The error reaches every
    /// caller waiting for this load; it is not stored unless
    /// [`cache_errors_if`](crate::CacheBuilder::cache_errors_if) says so.
    ///
    /// # Errors
    /// The loader's error (or a remembered one), shared.
    ///
    /// # Panics
    /// As [`get_with`](Self::get_with).
    pub fn try_get_with<E: Send + Sync + 'static>(
        &self,
        key: K,
        loader: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, std::sync::Arc<E>> {
        self.inner.load_sync::<WantResult<E>>(key, || loader().map_err(std::sync::Arc::new))
    }

    /// Like [`get_with`](Self::get_with) for a loader that may find nothing. With a
    /// [`negative_ttl`](crate::CacheBuilder::negative_ttl), `None` is remembered for that long.
    ///
    /// # Panics
    /// As [`get_with`](Self::get_with).
    pub fn get_optional_with(&self, key: K, loader: impl FnOnce() -> Option<V>) -> Option<V> {
        self.inner.load_sync::<WantOption>(key, loader)
    }

    /// The value for `key`, loaded by the future `loader` on a miss.
    ///
    /// However many tasks miss `key` at once, one load runs and every task gets its value. The
    /// load is owned by the cache, not by the task that started it: any waiting task drives
    /// it, so cancelling the first task neither cancels the load nor stalls the others. The load
    /// is dropped only when every task waiting for it is gone. That is why `loader` must be
    /// `Send + 'static` (move what it needs into it, as with `tokio::spawn`).
    ///
    /// Stale-while-revalidate and XFetch refreshes run in the background on the current tokio
    /// runtime (this caller returns the old value at once); outside a runtime the caller that
    /// starts a refresh awaits it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use levee_cache::Cache;
    ///
    /// let cache: Cache<u64, String> = Cache::new(100);
    /// let name = cache.get_with_async(1, async { "widget".to_string() }).await;
    /// assert_eq!(name, "widget");
    /// # });
    /// ```
    ///
    /// # Panics
    /// If the loader panics, the panic continues in the task whose loader it was (if it is still
    /// waiting); the other waiters load again, one of them with its own loader.
    pub async fn get_with_async<F>(&self, key: K, loader: F) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        Inner::load_async::<WantValue, F>(&self.inner, key, loader).await
    }

    /// Like [`get_with_async`](Self::get_with_async) for a loader that can fail; the error
    /// reaches every waiter.
    ///
    /// # Errors
    /// The loader's error (or a remembered one), shared.
    ///
    /// # Panics
    /// As [`get_with_async`](Self::get_with_async).
    pub async fn try_get_with_async<F, E>(&self, key: K, loader: F) -> Result<V, std::sync::Arc<E>>
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let loader = async move { loader.await.map_err(std::sync::Arc::new) };
        Inner::load_async::<WantResult<E>, _>(&self.inner, key, loader).await
    }

    /// Like [`get_with_async`](Self::get_with_async) for a loader that may find nothing;
    /// `None` is remembered for the [`negative_ttl`](crate::CacheBuilder::negative_ttl).
    ///
    /// # Panics
    /// As [`get_with_async`](Self::get_with_async).
    pub async fn get_optional_with_async<F>(&self, key: K, loader: F) -> Option<V>
    where
        F: Future<Output = Option<V>> + Send + 'static,
    {
        Inner::load_async::<WantOption, F>(&self.inner, key, loader).await
    }
}

impl<K, V, C> Inner<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    fn count_refresh(&self, early: bool) {
        if early {
            self.counters.early_refreshes.incr();
        } else {
            self.counters.stale_serves.incr();
        }
    }

    pub(crate) fn load_sync<W: Want<V>>(&self, key: K, loader: impl FnOnce() -> W::Out) -> W::Out {
        let hash = self.hash(&key);
        let mut loader = Some(loader);
        loop {
            let time = self.lookup_time();
            let now = time.unwrap_or(0);
            match self.probe::<W, K>(hash, &key, time, true) {
                Probe::Fresh(out) => return out,
                Probe::Stale(out) => {
                    self.counters.stale_serves.incr();
                    return out;
                }
                Probe::Refresh { out, id, early } => {
                    self.count_refresh(early);
                    let Some(load) = loader.take() else { return out };
                    let claim = self
                        .claim::<W, ()>(hash, &key, now, Some(id), |_| (Flight::new_sync(), ()));
                    let Claim::Lead(flight_id, flight, ()) = claim else { return out };
                    let fresh = self.lead_sync::<W>(hash, key, flight_id, &flight, load);
                    // A failed refresh keeps serving the old value.
                    return if matches!(W::to_slot(&fresh), Loaded::Value(_)) {
                        fresh
                    } else {
                        out
                    };
                }
                Probe::Miss => {}
            }
            match self.claim::<W, ()>(hash, &key, now, None, |_| (Flight::new_sync(), ())) {
                Claim::Hit(out) => return out,
                Claim::Join(flight) => {
                    self.counters.coalesced.incr();
                    if let Outcome::Value(slot) = flight.wait() {
                        if let Some(out) = W::accept(&slot) {
                            return out;
                        }
                    }
                    // Abandoned, or an answer of another kind: load again.
                }
                Claim::Lead(id, flight, ()) => {
                    let load = loader.take().expect("a caller leads at most one load");
                    return self.lead_sync::<W>(hash, key, id, &flight, load);
                }
                Claim::Busy => {}
            }
        }
    }

    fn lead_sync<W: Want<V>>(
        &self,
        hash: u64,
        key: K,
        id: u64,
        flight: &Flight<Loaded<V>>,
        load: impl FnOnce() -> W::Out,
    ) -> W::Out {
        let started = self.clock.now();
        match catch_unwind(AssertUnwindSafe(load)) {
            Ok(out) => {
                let slot = W::to_slot(&out);
                self.complete(hash, key, id, slot.clone(), started);
                flight.finish(slot);
                out
            }
            Err(panic) => {
                self.abandon(hash, id, true);
                flight.abandon();
                resume_unwind(panic)
            }
        }
    }

    /// A flight that runs `loader` and stores its result; the handle is the leader's.
    fn async_flight<W, F>(
        this: &Arc<Self>,
        hash: u64,
        key: K,
        id: u64,
        loader: F,
    ) -> (Arc<Flight<Loaded<V>>>, Join<Loaded<V>>)
    where
        W: Want<V>,
        F: Future<Output = W::Out> + Send + 'static,
    {
        let inner = this.clone();
        let started = this.clock.now();
        let load = async move {
            let out = AssertUnwindSafe(loader).catch_unwind().await?;
            let slot = W::to_slot(&out);
            inner.complete(hash, key, id, slot.clone(), started);
            Ok(slot)
        };
        let inner = this.clone();
        let hook: AbandonHook = Box::new(move |panicked| inner.abandon(hash, id, panicked));
        Flight::new_async(Box::pin(load), Some(hook))
    }

    pub(crate) async fn load_async<W, F>(this: &Arc<Self>, key: K, loader: F) -> W::Out
    where
        W: Want<V>,
        F: Future<Output = W::Out> + Send + 'static,
    {
        let hash = this.hash(&key);
        let mut loader = Some(loader);
        loop {
            let time = this.lookup_time();
            let now = time.unwrap_or(0);
            match this.probe::<W, K>(hash, &key, time, true) {
                Probe::Fresh(out) => return out,
                Probe::Stale(out) => {
                    this.counters.stale_serves.incr();
                    return out;
                }
                Probe::Refresh { out, id, early } => {
                    this.count_refresh(early);
                    let Some(load) = loader.take() else { return out };
                    let claim = this.claim::<W, _>(hash, &key, now, Some(id), |flight_id| {
                        Self::async_flight::<W, F>(this, hash, key.clone(), flight_id, load)
                    });
                    let Claim::Lead(_, _, join) = claim else { return out };
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        // The spawned task is one of the load's handles: it drives the refresh
                        // to the end even if nobody else asks for this key meanwhile.
                        drop(runtime.spawn(async move {
                            let _ = join.await;
                        }));
                        return out;
                    }
                    return match join.await {
                        Outcome::Value(slot) if matches!(slot, Loaded::Value(_)) => {
                            W::accept(&slot).unwrap_or(out)
                        }
                        Outcome::Panicked(panic) => resume_unwind(panic),
                        _ => out,
                    };
                }
                Probe::Miss => {}
            }
            let claim = this.claim::<W, _>(hash, &key, now, None, |id| {
                let load = loader.take().expect("a caller leads at most one load");
                Self::async_flight::<W, F>(this, hash, key.clone(), id, load)
            });
            match claim {
                Claim::Hit(out) => return out,
                Claim::Join(flight) => {
                    this.counters.coalesced.incr();
                    if let Outcome::Value(slot) = Flight::join(&flight).await {
                        if let Some(out) = W::accept(&slot) {
                            return out;
                        }
                    }
                }
                Claim::Lead(_, _, join) => match join.await {
                    Outcome::Value(slot) => return W::accept(&slot).expect(LEADER_GETS_ITS_RESULT),
                    Outcome::Panicked(panic) => resume_unwind(panic),
                    // The leader's handle keeps its load alive, and only the leader's own
                    // loader can panic into it.
                    Outcome::Retry => unreachable!("a leader's load is never abandoned under it"),
                },
                Claim::Busy => {}
            }
        }
    }
}
