//! levee-cache in front of a slow product store, as the reference shop uses it.
//!
//! - a flash-sale burst of 10,000 reads of one product makes one store read;
//! - the caller that started that read is cancelled, and the others still get the product;
//! - a price change invalidates the product, and a read that was already in flight with the
//!   old price is not stored;
//! - unknown products are remembered as missing for a short time (negative caching);
//! - a bulk page load reads only the products not cached, in one store call;
//! - expired products are served stale while one background refresh runs.
//!
//! `cargo run --release --example cache`

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use levee_cache::{Cache, CacheEvent};

#[derive(Debug, Clone, PartialEq)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
}

/// A product table behind a network hop: every read takes a few milliseconds.
#[derive(Default)]
struct Store {
    price: AtomicU64,
    reads: AtomicUsize,
    bulk_reads: AtomicUsize,
}

impl Store {
    async fn product(&self, id: u64) -> Option<Product> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let price_cents = 1000 + self.price.load(Ordering::SeqCst); // the row as of now
        tokio::time::sleep(Duration::from_millis(20)).await;
        (id < 1000).then(|| Product { id, name: format!("product {id}"), price_cents })
    }

    async fn products(&self, ids: Vec<u64>) -> Vec<(u64, Product)> {
        self.bulk_reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        ids.into_iter()
            .filter(|&id| id < 1000)
            .map(|id| (id, Product { id, name: format!("product {id}"), price_cents: 1000 }))
            .collect()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store = Arc::new(Store::default());
    let evicted = Arc::new(AtomicUsize::new(0));
    let counter = evicted.clone();
    let products: Cache<u64, Product> = Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_millis(300))
        .ttl_jitter(0.1)
        .stale_while_revalidate(Duration::from_secs(5))
        .negative_ttl(Duration::from_secs(1))
        .listener(move |e: &CacheEvent<u64, Product>| {
            if matches!(e, CacheEvent::Removed { .. }) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .expect("valid cache settings");

    let read = |id: u64| {
        let (cache, store) = (products.clone(), store.clone());
        async move { cache.get_optional_with_async(id, async move { store.product(id).await }).await }
    };

    // 1. Flash sale: 10,000 concurrent reads of product 42; the first reader is cancelled.
    let first = tokio::spawn(read(42));
    let burst: Vec<_> = (0..10_000).map(|_| tokio::spawn(read(42))).collect();
    tokio::task::yield_now().await;
    first.abort();
    let mut served = 0;
    for r in burst {
        assert_eq!(r.await.unwrap().map(|p| p.id), Some(42));
        served += 1;
    }
    println!(
        "flash sale: {served} reads served, {} store read(s) (first caller cancelled)",
        store.reads.load(Ordering::SeqCst)
    );

    // 2. Price change while a read is in flight: the in-flight (old) price is not stored.
    products.invalidate(&7);
    let in_flight = tokio::spawn(read(7));
    tokio::time::sleep(Duration::from_millis(5)).await; // the store read is under way
    store.price.store(250, Ordering::SeqCst);
    products.invalidate(&7); // the write path invalidates on every price change
    let old = in_flight.await.unwrap().unwrap().price_cents;
    let new = read(7).await.unwrap().price_cents;
    println!("price change: in-flight read saw {old}, next read sees {new}");
    assert_eq!(new, 1250);

    // 3. Unknown products are remembered as missing for the negative TTL.
    let before = store.reads.load(Ordering::SeqCst);
    for _ in 0..100 {
        assert!(read(5000).await.is_none());
    }
    println!(
        "unknown product: 100 reads, {} store read(s)",
        store.reads.load(Ordering::SeqCst) - before
    );

    // 4. A category page: 50 products, some cached, the rest in one bulk read.
    let page: Vec<u64> = (40..90).collect();
    let s = store.clone();
    let found: HashMap<u64, Product> = products
        .get_all_with_async(page, |missing| {
            let s = s.clone();
            async move { s.products(missing).await }
        })
        .await;
    println!(
        "category page: {} products, {} bulk store read(s)",
        found.len(),
        store.bulk_reads.load(Ordering::SeqCst)
    );

    // 5. Past the TTL, reads get the stale product at once while one refresh runs.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = store.reads.load(Ordering::SeqCst);
    let stale_reads: Vec<_> = (0..1000).map(|_| tokio::spawn(read(42))).collect();
    for r in stale_reads {
        assert!(r.await.unwrap().is_some());
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // let the background refresh land
    println!(
        "stale-while-revalidate: 1000 reads of an expired product, {} store read(s)",
        store.reads.load(Ordering::SeqCst) - before
    );

    let stats = products.stats();
    println!(
        "stats: hits {} misses {} loads {} coalesced {} stale serves {} abandoned {} \
         discarded stale loads {} removed {} load p50 {:?} p99 {:?}",
        stats.hits,
        stats.misses,
        stats.loads,
        stats.coalesced,
        stats.stale_serves,
        stats.abandoned_loads,
        stats.stale_discards,
        evicted.load(Ordering::Relaxed),
        stats.load_latency.p50,
        stats.load_latency.p99,
    );
}
