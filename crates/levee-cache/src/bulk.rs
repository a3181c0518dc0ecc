//! `get_all_with`: many keys, one bulk load for the ones that are missing, shared with loads
//! already in flight.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use levee_core::Clock;
use levee_core::sync::Arc;

use crate::Cache;
use crate::cache::{Claim, Inner, Loaded, Probe, WantValue};
use crate::flight::{Flight, Outcome};

/// A key this caller loads for everybody.
struct Led<K, V> {
    hash: u64,
    key: K,
    id: u64,
    flight: Arc<Flight<Loaded<V>>>,
}

/// The keys a bulk caller leads. If the caller is cancelled or its loader panics before they are
/// finished, dropping this abandons them, so callers waiting for those keys load them
/// themselves instead of waiting forever.
struct Leads<'a, K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    inner: &'a Inner<K, V, C>,
    led: Vec<Led<K, V>>,
}

impl<K, V, C> Leads<'_, K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    fn keys(&self) -> Vec<K> {
        self.led.iter().map(|l| l.key.clone()).collect()
    }

    /// Stores what the bulk loader returned; a led key it did not return has no value.
    fn finish(
        mut self,
        loaded: impl IntoIterator<Item = (K, V)>,
        started: u64,
        out: &mut HashMap<K, V>,
    ) {
        let mut loaded: HashMap<K, V> = loaded.into_iter().collect();
        self.inner.record_load(false, started);
        for Led { hash, key, id, flight } in std::mem::take(&mut self.led) {
            let slot = loaded.remove(&key).map_or(Loaded::Missing, Loaded::Value);
            self.inner.finish_load(hash, key.clone(), id, slot.clone(), started);
            flight.finish(slot.clone());
            if let Loaded::Value(v) = slot {
                out.insert(key, v);
            }
        }
    }
}

impl<K, V, C> Drop for Leads<'_, K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for Led { hash, id, flight, .. } in self.led.drain(..) {
            self.inner.abandon(hash, id, panicking);
            flight.abandon();
        }
    }
}

/// A key this caller waits for another caller's load of.
type Joined<K, V> = (u64, K, Arc<Flight<Loaded<V>>>);

/// One round: which keys are answered, which this caller leads, which it waits for.
struct Round<K, V> {
    led: Vec<Led<K, V>>,
    joined: Vec<Joined<K, V>>,
}

impl<K, V, C> Inner<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    fn bulk_round(&self, todo: &mut Vec<(u64, K)>, out: &mut HashMap<K, V>) -> Round<K, V> {
        let time = self.lookup_time();
        let now = time.unwrap_or(0);
        let mut round = Round { led: Vec::new(), joined: Vec::new() };
        for (hash, key) in todo.drain(..) {
            if out.contains_key(&key) {
                continue;
            }
            if let Probe::Fresh(v) = self.probe::<WantValue, K>(hash, &key, time, false) {
                out.insert(key, v);
                continue;
            }
            match self.claim::<WantValue, ()>(hash, &key, now, None, |_| (Flight::new_sync(), ())) {
                Claim::Hit(v) => {
                    out.insert(key, v);
                }
                Claim::Join(flight) => round.joined.push((hash, key, flight)),
                Claim::Lead(id, flight, ()) => round.led.push(Led { hash, key, id, flight }),
                Claim::Busy => {}
            }
        }
        round
    }

    fn hashed(&self, keys: impl IntoIterator<Item = K>) -> Vec<(u64, K)> {
        let mut seen = hashbrown::HashSet::new();
        keys.into_iter().filter(|k| seen.insert(k.clone())).map(|k| (self.hash(&k), k)).collect()
    }
}

impl<K, V, C> Cache<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// The values for `keys`: cached ones as they are, the missing ones loaded by **one** call
    /// of `loader` with just those keys. A key another caller is loading right now is not loaded
    /// again: this call waits for that load. Keys the loader does not return have no value and
    /// are absent from the result (remembered as missing with a
    /// [`negative_ttl`](crate::CacheBuilder::negative_ttl)).
    ///
    /// `loader` is called again (with the keys concerned) only if a load this call waited for
    /// was abandoned because its loader panicked.
    ///
    /// ```
    /// use levee_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new(100);
    /// cache.insert(1, 10);
    /// let got = cache.get_all_with([1, 2, 3], |missing| {
    ///     assert_eq!(missing.len(), 2); // 1 was cached
    ///     missing.iter().map(|&k| (k, k * 10)).collect::<Vec<_>>()
    /// });
    /// assert_eq!(got.len(), 3);
    /// assert_eq!(got[&3], 30);
    /// ```
    ///
    /// # Panics
    /// If `loader` panics, the panic continues here; callers waiting for the keys it was loading
    /// load them themselves.
    pub fn get_all_with<I, F, R>(&self, keys: I, mut loader: F) -> HashMap<K, V>
    where
        I: IntoIterator<Item = K>,
        F: FnMut(&[K]) -> R,
        R: IntoIterator<Item = (K, V)>,
    {
        let inner = &*self.inner;
        let mut todo = inner.hashed(keys);
        let mut out = HashMap::with_capacity(todo.len());
        while !todo.is_empty() {
            let Round { led, joined } = inner.bulk_round(&mut todo, &mut out);
            if !led.is_empty() {
                let leads = Leads { inner, led };
                let started = inner.clock.now();
                let loaded = loader(&leads.keys());
                leads.finish(loaded, started, &mut out);
            }
            for (hash, key, flight) in joined {
                inner.counters.coalesced.incr();
                match flight.wait() {
                    Outcome::Value(Loaded::Value(v)) => {
                        out.insert(key, v);
                    }
                    Outcome::Value(_) => {}
                    Outcome::Retry | Outcome::Panicked(_) => todo.push((hash, key)),
                }
            }
        }
        out
    }

    /// The async form of [`get_all_with`](Self::get_all_with): one `loader(missing_keys)`
    /// future for the missing keys, shared with loads already in flight.
    ///
    /// If this call is cancelled while its loader runs, the keys it was loading are released:
    /// callers waiting for them load them themselves.
    ///
    /// # Panics
    /// As [`get_all_with`](Self::get_all_with).
    pub async fn get_all_with_async<I, F, Fut, R>(&self, keys: I, mut loader: F) -> HashMap<K, V>
    where
        I: IntoIterator<Item = K>,
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = R>,
        R: IntoIterator<Item = (K, V)>,
    {
        let inner = &*self.inner;
        let mut todo = inner.hashed(keys);
        let mut out = HashMap::with_capacity(todo.len());
        while !todo.is_empty() {
            let Round { led, joined } = inner.bulk_round(&mut todo, &mut out);
            // Join the other loads first so they are driven while our own loader runs.
            let waits = futures::future::join_all(joined.into_iter().map(|(hash, key, flight)| {
                inner.counters.coalesced.incr();
                let join = Flight::join(&flight);
                async move { (hash, key, join.await) }
            }));
            let own = async {
                let mut mine = HashMap::new();
                if !led.is_empty() {
                    let leads = Leads { inner, led };
                    let started = inner.clock.now();
                    let loaded = loader(leads.keys()).await;
                    leads.finish(loaded, started, &mut mine);
                }
                mine
            };
            let (mine, waited) = futures::future::join(own, waits).await;
            out.extend(mine);
            for (hash, key, outcome) in waited {
                match outcome {
                    Outcome::Value(Loaded::Value(v)) => {
                        out.insert(key, v);
                    }
                    Outcome::Value(_) => {}
                    Outcome::Retry | Outcome::Panicked(_) => todo.push((hash, key)),
                }
            }
        }
        out
    }
}
