//! Request coalescing without a cache: concurrent calls for one key share one execution.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use futures::FutureExt;
use hashbrown::HashTable;
use levee_core::Counter;
use levee_core::sync::{Arc, AtomicU64, Mutex, Ordering};

use crate::flight::{AbandonHook, Flight, Outcome};

struct Slot<K, V> {
    key: K,
    hash: u64,
    id: u64,
    flight: Arc<Flight<V>>,
}

/// One shard of the map from key to running call.
type Calls<K, V> = Mutex<HashTable<Slot<K, V>>>;

struct Inner<K, V> {
    shards: Box<[Calls<K, V>]>,
    hasher: foldhash::fast::RandomState,
    next_id: AtomicU64,
    runs: Counter,
    coalesced: Counter,
}

/// Coalesces concurrent calls for the same key: while one call for a key runs, others for that
/// key wait for its result instead of running their own (Go's `singleflight`, the "request
/// merging" of the seed). Nothing is remembered afterwards; for that, use
/// [`Cache`](crate::Cache).
///
/// The async form has the same guarantees as [`Cache::get_with_async`](crate::Cache::get_with_async):
/// the work is a shared future that any waiter drives, so cancelling the caller that started
/// it does not stall the others; a panic continues in the caller whose closure panicked while
/// the others run their own.
///
/// `V` is cloned to every waiter; for a fallible call use `V = Result<T, Arc<E>>`.
///
/// ```
/// use levee_cache::SingleFlight;
///
/// let group: SingleFlight<&str, u32> = SingleFlight::new();
/// assert_eq!(group.run("answer", || 42), 42);
/// assert_eq!(group.in_flight(), 0);
/// ```
pub struct SingleFlight<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for SingleFlight<K, V> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<K, V> fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("runs", &self.inner.runs.get())
            .field("coalesced", &self.inner.coalesced.get())
            .finish_non_exhaustive()
    }
}

impl<K, V> Default for SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

enum Claim<V> {
    Join(Arc<Flight<V>>),
    Lead(u64, Arc<Flight<V>>),
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    /// An empty group.
    #[must_use]
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (cpus * 4).next_power_of_two();
        Self {
            inner: Arc::new(Inner {
                shards: (0..shards).map(|_| Mutex::new(HashTable::new())).collect(),
                hasher: foldhash::fast::RandomState::default(),
                next_id: AtomicU64::new(0),
                runs: Counter::new(),
                coalesced: Counter::new(),
            }),
        }
    }

    /// Calls `f` unless a call for `key` is running, in which case waits for that call's
    /// result (blocking this thread).
    ///
    /// # Panics
    /// If `f` panics, the panic continues here; the callers waiting for it run their own `f`.
    pub fn run(&self, key: K, f: impl FnOnce() -> V) -> V {
        let hash = self.inner.hasher.hash_one(&key);
        let mut f = Some(f);
        loop {
            match self.inner.claim(hash, &key, |_| Flight::new_sync()) {
                Claim::Join(flight) => {
                    self.inner.coalesced.incr();
                    if let Outcome::Value(v) = flight.wait() {
                        return v;
                    }
                }
                Claim::Lead(id, flight) => {
                    self.inner.runs.incr();
                    let f = f.take().expect("a caller leads at most once");
                    let result = catch_unwind(AssertUnwindSafe(f));
                    self.inner.remove(hash, id);
                    return match result {
                        Ok(v) => {
                            flight.finish(v.clone());
                            v
                        }
                        Err(panic) => {
                            flight.abandon();
                            resume_unwind(panic)
                        }
                    };
                }
            }
        }
    }

    /// Awaits `future` unless a call for `key` is running, in which case waits for that call's
    /// result. The future is shared: any waiter drives it, and it is dropped only when every
    /// waiter is gone.
    ///
    /// # Panics
    /// If `future` panics, the panic continues in its caller (if still waiting); the others run
    /// their own.
    pub async fn run_async<F>(&self, key: K, future: F) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        let hash = self.inner.hasher.hash_one(&key);
        let mut future = Some(future);
        loop {
            let mut leader = None;
            let claim = self.inner.claim(hash, &key, |id| {
                let fut = future.take().expect("a caller leads at most once");
                let (flight, join) = Inner::async_flight(&self.inner, hash, id, fut);
                leader = Some(join);
                flight
            });
            match claim {
                Claim::Join(flight) => {
                    self.inner.coalesced.incr();
                    if let Outcome::Value(v) = Flight::join(&flight).await {
                        return v;
                    }
                }
                Claim::Lead(..) => {
                    self.inner.runs.incr();
                    let join = leader.take().expect("the leader's handle was made");
                    match join.await {
                        Outcome::Value(v) => return v,
                        Outcome::Panicked(panic) => resume_unwind(panic),
                        Outcome::Retry => {
                            unreachable!("a leader's run is never abandoned under it")
                        }
                    }
                }
            }
        }
    }

    /// Number of keys with a call running.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.inner.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Calls that ran their own closure or future.
    #[must_use]
    pub fn runs(&self) -> u64 {
        self.inner.runs.get()
    }

    /// Calls that waited for another call's result.
    #[must_use]
    pub fn coalesced(&self) -> u64 {
        self.inner.coalesced.get()
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + 'static,
{
    fn shard(&self, hash: u64) -> &Calls<K, V> {
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    fn claim(&self, hash: u64, key: &K, make: impl FnOnce(u64) -> Arc<Flight<V>>) -> Claim<V> {
        let mut map = self.shard(hash).lock();
        let finished = match map.find(hash, |s| s.key == *key) {
            Some(slot) if slot.flight.is_running() => return Claim::Join(slot.flight.clone()),
            Some(_) => map.find_entry(hash, |s| s.key == *key).ok().map(|e| e.remove().0),
            None => None,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let flight = make(id);
        map.insert_unique(hash, Slot { key: key.clone(), hash, id, flight: flight.clone() }, |s| {
            s.hash
        });
        drop(map);
        drop(finished);
        Claim::Lead(id, flight)
    }

    fn remove(&self, hash: u64, id: u64) {
        let removed =
            self.shard(hash).lock().find_entry(hash, |s| s.id == id).ok().map(|e| e.remove().0);
        drop(removed);
    }

    /// A shared run of `future` that unregisters itself (as call `id`) when done or abandoned.
    fn async_flight<F>(
        this: &Arc<Self>,
        hash: u64,
        id: u64,
        future: F,
    ) -> (Arc<Flight<V>>, crate::flight::Join<V>)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let me = this.clone();
        let run = async move {
            let v = AssertUnwindSafe(future).catch_unwind().await;
            me.remove(hash, id);
            v
        };
        let me = this.clone();
        let hook: AbandonHook = Box::new(move |_| me.remove(hash, id));
        Flight::new_async(Box::pin(run), Some(hook))
    }
}
