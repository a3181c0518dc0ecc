//! The product cache: reads of one product coalesce into one store read, and a change of
//! stock or price invalidates the entry.
//!
//! STAND-IN until `levee-cache` lands on main: a locked map plus in-flight loads shared
//! through `futures::future::Shared`. The load runs as its own task, so a reader that gives up
//! never strands the others (the lesson of moka issue 240).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use levee_core::Clock;
use parking_lot::Mutex;
use serde::Serialize;

use crate::clock::ShopClock;
use crate::domain::Product;
use crate::store::{Store, StoreError};

type Load = Shared<BoxFuture<'static, Result<Option<Product>, Arc<StoreError>>>>;

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that started a store read.
    pub misses: u64,
    /// Reads that joined a store read already under way.
    pub coalesced: u64,
    /// Entries dropped because their product changed.
    pub invalidations: u64,
    /// Entries held.
    pub entries: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<i64, (Option<Product>, u64)>,
    loading: HashMap<i64, (u64, Load)>,
}

/// Cache of products by id.
pub struct ProductCache {
    store: Arc<Store>,
    clock: ShopClock,
    ttl_ns: u64,
    capacity: usize,
    state: Mutex<State>,
    next_load: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    invalidations: AtomicU64,
}

impl std::fmt::Debug for ProductCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductCache").field("stats", &self.stats()).finish()
    }
}

impl ProductCache {
    /// A cache over `store` holding up to `capacity` products for at most `ttl`.
    #[must_use]
    pub fn new(store: Arc<Store>, clock: ShopClock, capacity: u64, ttl: Duration) -> Self {
        Self {
            store,
            clock,
            ttl_ns: levee_core::nanos(ttl),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
            state: Mutex::new(State::default()),
            next_load: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The product, from memory or from one store read shared by every concurrent caller.
    ///
    /// # Errors
    /// The store read failed (every caller that joined it sees the same error).
    pub async fn get(self: &Arc<Self>, id: i64) -> Result<Option<Product>, Arc<StoreError>> {
        let load = {
            let mut state = self.state.lock();
            let now = self.clock.now();
            if let Some((product, at)) = state.entries.get(&id)
                && now.saturating_sub(*at) < self.ttl_ns
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(product.clone());
            }
            if let Some((_, load)) = state.loading.get(&id) {
                self.coalesced.fetch_add(1, Ordering::Relaxed);
                load.clone()
            } else {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let load_id = self.next_load.fetch_add(1, Ordering::Relaxed);
                let this = Arc::clone(self);
                let task = tokio::spawn(async move {
                    let result = this.store.product(id).await.map_err(Arc::new);
                    let mut state = this.state.lock();
                    // Store the value only if no invalidation replaced this load meanwhile.
                    if state.loading.get(&id).is_some_and(|(l, _)| *l == load_id) {
                        state.loading.remove(&id);
                        if let Ok(product) = &result {
                            if state.entries.len() >= this.capacity
                                && let Some(&victim) = state.entries.keys().next()
                            {
                                state.entries.remove(&victim);
                            }
                            state.entries.insert(id, (product.clone(), this.clock.now()));
                        }
                    }
                    result
                });
                let load: Load = async move {
                    match task.await {
                        Ok(result) => result,
                        Err(e) => {
                            Err(Arc::new(StoreError::Io(std::io::Error::other(e.to_string()))))
                        }
                    }
                }
                .boxed()
                .shared();
                state.loading.insert(id, (load_id, load.clone()));
                load
            }
        };
        load.await
    }

    /// Drops the entry (and forgets a load under way) after the product changed.
    pub fn invalidate(&self, id: i64) {
        let mut state = self.state.lock();
        let had = state.entries.remove(&id).is_some();
        state.loading.remove(&id);
        if had {
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            entries: self.state.lock().entries.len() as u64,
        }
    }
}
