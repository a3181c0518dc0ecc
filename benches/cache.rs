//! levee-cache beside moka and quick_cache.
//!
//! - `cache/hit_1t`, `cache/hit_2t`: a hit on a cache of capacity 20k holding 10k keys
//!   (u64 -> u64), keys in a fixed random order; 2 threads time the slower one. Target: at
//!   least 2x moka, not slower than quick_cache.
//! - `cache/hit_1t_cap100k`: the same 10k keys in caches of capacity 100k: a hit should not
//!   get slower because the capacity is larger.
//! - `cache/coalesced_miss`: 128 tasks on a 2-worker tokio runtime ask for one cold key at once;
//!   one load runs (it yields once), everyone gets its value. levee `get_with_async` vs moka
//!   `future::Cache::get_with`. Time per burst.
//! - `cache/zipf_replay`: read-through replay (get, insert on miss) of a Zipf(0.9) trace over
//!   100k keys at capacity 10k, time per request. Before it runs, the hit-ratio table (1M
//!   requests, capacities 1k and 10k, with and without scans) is printed: those figures are
//!   ratios, not timings (also: `cargo run --release --example cache_hit_ratio`).
//!
//! `cargo bench --bench cache -- --warm-up-time 1 --measurement-time 3`

#[path = "support/trace.rs"]
mod trace;

use std::future::Future;
use std::hint::black_box;
use std::sync::Once;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_workspace::bench::slowest_thread;

const KEYS: u64 = 10_000;
const ORDER: usize = 1 << 14;

/// Keys in a fixed random order, so each lookup lands somewhere else in the table.
fn key_order() -> Vec<u64> {
    let mut rng = trace::Rng::new(7);
    (0..ORDER).map(|_| rng.next_u64() % KEYS).collect()
}

/// The `i`-th lookup of thread `t`: the threads start at different places in the key order.
fn slot(t: usize, i: u64) -> usize {
    (t * 4099 + i as usize) & (ORDER - 1)
}

struct Caches {
    levee: levee_cache::Cache<u64, u64>,
    moka: moka::sync::Cache<u64, u64>,
    quick: quick_cache::sync::Cache<u64, u64>,
}

/// Caches of `capacity` holding the `KEYS` keys.
fn filled(capacity: u64) -> Caches {
    let caches = Caches {
        levee: levee_cache::Cache::new(capacity),
        moka: moka::sync::Cache::new(capacity),
        quick: quick_cache::sync::Cache::new(capacity as usize),
    };
    for k in 0..KEYS {
        caches.levee.insert(k, k);
        caches.moka.insert(k, k);
        caches.quick.insert(k, k);
    }
    caches.moka.run_pending_tasks();
    assert!((0..KEYS).all(|k| caches.levee.get(&k).is_some()));
    caches
}

fn hit_1t(c: &mut Criterion) {
    hit_1t_at(c, "cache/hit_1t", 2 * KEYS);
    hit_1t_at(c, "cache/hit_1t_cap100k", 100_000);
}

/// One thread's hits on the `KEYS` keys in caches of `capacity`.
fn hit_1t_at(c: &mut Criterion, name: &str, capacity: u64) {
    let caches = filled(capacity);
    let order = key_order();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("levee", |b| {
        b.iter(|| {
            i = (i + 1) & (ORDER - 1);
            black_box(caches.levee.get(&order[i]))
        })
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            i = (i + 1) & (ORDER - 1);
            black_box(caches.moka.get(&order[i]))
        })
    });
    group.bench_function("quick_cache", |b| {
        b.iter(|| {
            i = (i + 1) & (ORDER - 1);
            black_box(caches.quick.get(&order[i]))
        })
    });
    group.finish();
}

fn hit_2t(c: &mut Criterion) {
    let caches = filled(2 * KEYS);
    let order = key_order();
    let mut group = c.benchmark_group("cache/hit_2t");
    group.throughput(Throughput::Elements(1));
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            slowest_thread(2, iters, |t, i| {
                black_box(caches.levee.get(&order[slot(t, i)]));
            })
        })
    });
    group.bench_function("moka", |b| {
        b.iter_custom(|iters| {
            slowest_thread(2, iters, |t, i| {
                black_box(caches.moka.get(&order[slot(t, i)]));
            })
        })
    });
    group.bench_function("quick_cache", |b| {
        b.iter_custom(|iters| {
            slowest_thread(2, iters, |t, i| {
                black_box(caches.quick.get(&order[slot(t, i)]));
            })
        })
    });
    group.finish();
}

const TASKS: u64 = 128;

/// The load of a cold key: yields once, then returns the key.
async fn load(key: u64) -> u64 {
    tokio::task::yield_now().await;
    key
}

/// `iters` bursts of [`TASKS`] tasks that ask for one new key at once through `get`; every
/// task must get the key's value. The time of all the bursts.
fn bursts<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, next: &mut u64, get: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            *next += 1;
            let key = *next;
            let tasks: Vec<_> = (0..TASKS).map(|_| tokio::spawn(get(key))).collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), key);
            }
        }
        start.elapsed()
    })
}

fn coalesced_miss(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut group = c.benchmark_group("cache/coalesced_miss");
    group.throughput(Throughput::Elements(TASKS));

    let levee: levee_cache::Cache<u64, u64> = levee_cache::Cache::new(100_000);
    let mut next = 0u64;
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            bursts(&rt, iters, &mut next, |key| {
                let cache = levee.clone();
                async move { cache.get_with_async(key, load(key)).await }
            })
        })
    });
    assert_eq!(levee.stats().loads, next, "one load per burst");

    let moka: moka::future::Cache<u64, u64> = moka::future::Cache::new(100_000);
    group.bench_function("moka", |b| {
        b.iter_custom(|iters| {
            bursts(&rt, iters, &mut next, |key| {
                let cache = moka.clone();
                async move { cache.get_with(key, load(key)).await }
            })
        })
    });
    group.finish();
}

static HIT_RATIOS: Once = Once::new();

fn zipf_replay(c: &mut Criterion) {
    HIT_RATIOS.call_once(|| {
        println!("\nHit ratio, 1M requests over 100k keys (ratios, not timings):");
        println!("| trace | capacity | levee | moka | quick_cache | best - levee |");
        println!("|---|---|---|---|---|---|");
        for row in trace::hit_ratio_table() {
            println!("{row}");
        }
        println!();
    });
    let trace = trace::zipf_trace(100_000, 100_000, 0.9, 42);
    let mut group = c.benchmark_group("cache/zipf_replay");
    group.throughput(Throughput::Elements(trace.len() as u64));
    group.sample_size(10);
    group.bench_function("levee", |b| {
        b.iter(|| {
            let cache: levee_cache::Cache<u64, u64> = levee_cache::Cache::new(KEYS);
            trace::replay(&trace, |k| cache.get(&k).is_some(), |k| cache.insert(k, k))
        })
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            let cache: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(KEYS);
            trace::replay(&trace, |k| cache.get(&k).is_some(), |k| cache.insert(k, k))
        })
    });
    group.bench_function("quick_cache", |b| {
        b.iter(|| {
            let cache: quick_cache::sync::Cache<u64, u64> =
                quick_cache::sync::Cache::new(KEYS as usize);
            trace::replay(&trace, |k| cache.get(&k).is_some(), |k| cache.insert(k, k))
        })
    });
    group.finish();
}

criterion_group!(benches, hit_1t, hit_2t, coalesced_miss, zipf_replay);
criterion_main!(benches);
