//! levee-cache beside moka and quick_cache. All three hash with foldhash (levee's hasher,
//! quick_cache's default, moka through `build_with_hasher`; `support/caches.rs`), and every
//! case makes the same calls on each (`Map`), keys `u64 -> u64`.
//!
//! - `cache/hit_1t`, `cache/hit_2t`: a hit on a cache of capacity 20k holding 10k keys, keys
//!   in a fixed random order; 2 threads time the slower one. Target: at least 2x moka, not
//!   slower than quick_cache.
//! - `cache/hit_1t_cap100k`: the same 10k keys in caches of capacity 100k: a hit should not
//!   get slower because the capacity is larger.
//! - `cache/hit_ttl_1t`: `cache/hit_1t` on caches built with a time to live of one hour
//!   (levee `time_to_live`, moka `time_to_live`; quick_cache has no expiry): every hit checks
//!   the entry's deadline against the clock.
//! - `cache/churn_1t`, `cache/churn_2t`: inserts of keys never seen before into caches of
//!   capacity 10k filled to capacity, so every insert evicts one entry (on 2 threads each
//!   thread inserts its own keys). Time per insert.
//! - `cache/mix_1t`, `cache/mix_2t`: 90 % `get`, 10 % `insert` (an overwrite with a new
//!   value) over the 10k keys of `cache/hit_1t` in the same order.
//! - `cache/coalesced_miss`: 128 tasks on a 2-worker tokio runtime ask for one cold key at once;
//!   one load runs (it yields once), everyone gets its value. levee `get_with_async` vs moka
//!   `future::Cache::get_with` vs quick_cache `get_or_insert_async`. Time per burst; each
//!   side's loads are counted and must be one per burst.
//! - `cache/coalesced_miss_1000_1ms`: the same with 1,000 tasks and a load that takes 1 ms
//!   (a tokio sleep): the waiters pile up behind a load in flight, as behind a slow backend.
//! - `cache/zipf_replay`: read-through replay (get, insert on miss) of a Zipf(0.9) trace over
//!   100k keys at capacity 10k, time per request. Before it runs, the hit-ratio table (1M
//!   requests, capacities 1k and 10k, with and without scans) is printed: those figures are
//!   ratios, not timings (also: `cargo run --release --example cache_hit_ratio`).
//!
//! Memory per entry is `benches/cache_memory.rs` (its own binary: a counting allocator would
//! tax the allocating sides of the timed cases here).
//!
//! `cargo bench --bench cache -- --warm-up-time 1 --measurement-time 3`

#[path = "support/caches.rs"]
mod caches;
#[path = "support/trace.rs"]
mod trace;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use caches::Map;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use levee_workspace::bench::slowest_thread;

use trace::{FRESH, KEYS, ORDER, key_order};

/// The `n`-th lookup of thread `t`: the threads start at different places in the key order.
fn slot(t: usize, n: u64) -> usize {
    (t * 4099 + n as usize) & (ORDER - 1)
}

/// One operation of a case: the `n`-th of thread `t` (`n` counts on across criterion's
/// samples, so keys meant to be new stay new).
trait Work: Sync {
    fn run<M: Map>(&self, cache: &M, t: usize, n: u64);
}

/// A lookup of the next key in the order.
struct Hits<'a>(&'a [u64]);

impl Work for Hits<'_> {
    #[inline]
    fn run<M: Map>(&self, cache: &M, t: usize, n: u64) {
        black_box(cache.get(self.0[slot(t, n)]));
    }
}

/// An insert of a key no thread inserted before.
struct Churn;

impl Work for Churn {
    #[inline]
    fn run<M: Map>(&self, cache: &M, t: usize, n: u64) {
        cache.insert(FRESH + 2 * n + t as u64, n);
    }
}

/// Nine lookups in ten, else an overwrite, of the next key in the order.
struct Mix<'a>(&'a [u64]);

impl Work for Mix<'_> {
    #[inline]
    fn run<M: Map>(&self, cache: &M, t: usize, n: u64) {
        let key = self.0[slot(t, n)];
        if n % 10 == 9 {
            cache.insert(key, n);
        } else {
            black_box(cache.get(key));
        }
    }
}

/// `work` on `cache` as benchmark `name` of `group`, on `threads` threads (more than one:
/// timing the slower thread, per operation of one thread).
fn run<M: Map, W: Work>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    cache: &M,
    work: &W,
) {
    let mut next = 0u64;
    if threads == 1 {
        group.bench_function(name, |b| {
            b.iter(|| {
                next += 1;
                work.run(cache, 0, next);
            })
        });
    } else {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = next;
                next += iters;
                slowest_thread(threads, iters, |t, i| work.run(cache, t, start + i))
            })
        });
    }
}

/// Group `name`: `work` on levee, moka and (unless `ttl`: it has no expiry) quick_cache,
/// each of `capacity` holding `filled` keys.
fn compare<W: Work>(
    c: &mut Criterion,
    name: &str,
    threads: usize,
    (capacity, filled): (u64, u64),
    ttl: Option<Duration>,
    work: W,
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    let levee = caches::fill(caches::levee(capacity, ttl), filled);
    if capacity >= 2 * filled {
        // Room to spare in every shard: the hit cases hit on every key.
        assert!((0..filled).all(|k| levee.get(&k).is_some()));
    }
    run(&mut group, "levee", threads, &levee, &work);
    drop(levee);
    run(&mut group, "moka", threads, &caches::fill(caches::moka(capacity, ttl), filled), &work);
    if ttl.is_none() {
        run(
            &mut group,
            "quick_cache",
            threads,
            &caches::fill(caches::quick(capacity), filled),
            &work,
        );
    }
    group.finish();
}

fn hit(c: &mut Criterion) {
    let order = key_order();
    compare(c, "cache/hit_1t", 1, (2 * KEYS, KEYS), None, Hits(&order));
    compare(c, "cache/hit_1t_cap100k", 1, (100_000, KEYS), None, Hits(&order));
    compare(c, "cache/hit_2t", 2, (2 * KEYS, KEYS), None, Hits(&order));
    let hour = Some(Duration::from_secs(3600));
    compare(c, "cache/hit_ttl_1t", 1, (2 * KEYS, KEYS), hour, Hits(&order));
}

fn churn(c: &mut Criterion) {
    compare(c, "cache/churn_1t", 1, (KEYS, KEYS), None, Churn);
    compare(c, "cache/churn_2t", 2, (KEYS, KEYS), None, Churn);
}

fn mix(c: &mut Criterion) {
    let order = key_order();
    compare(c, "cache/mix_1t", 1, (2 * KEYS, KEYS), None, Mix(&order));
    compare(c, "cache/mix_2t", 2, (2 * KEYS, KEYS), None, Mix(&order));
}

/// The load of a cold key: yields once, or sleeps `delay` when it is not zero, then returns
/// the key; counts itself in `loads`.
async fn load(key: u64, delay: Duration, loads: &AtomicU64) -> u64 {
    loads.fetch_add(1, Ordering::Relaxed);
    if delay.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(delay).await;
    }
    key
}

/// `iters` bursts of `tasks` tasks that ask for one new key at once through `get`; every task
/// must get the key's value. The time of all the bursts.
fn bursts<F, Fut>(
    rt: &tokio::runtime::Runtime,
    tasks: u64,
    iters: u64,
    next: &mut u64,
    get: F,
) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            *next += 1;
            let key = *next;
            let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(get(key))).collect();
            for h in handles {
                assert_eq!(h.await.unwrap(), key);
            }
        }
        start.elapsed()
    })
}

/// Function `name` of `group`: bursts of `tasks` tasks through `get(key, loads)`, whose
/// loader counts itself in `loads`; afterwards, checks that every burst loaded once.
fn side<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    tasks: u64,
    next: &mut u64,
    name: &str,
    get: F,
) where
    F: Fn(u64, &'static AtomicU64) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    // Leaked: the loaders run in spawned tasks, which need `'static`.
    let loads: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    let first = *next;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| bursts(rt, tasks, iters, next, |key| get(key, loads)))
    });
    assert_eq!(loads.load(Ordering::Relaxed), *next - first, "{name}: one load per burst");
}

/// Group `name`: bursts of `tasks` tasks asking for one cold key whose load takes `delay`
/// (a yield when zero), on levee, moka and quick_cache; one load per burst on each.
fn coalesced(c: &mut Criterion, name: &str, tasks: u64, delay: Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(tasks));
    if !delay.is_zero() {
        group.sample_size(10);
    }
    // Keys are never reused across the three caches either: every burst's key is cold.
    let mut next = 0u64;

    let levee: levee_cache::Cache<u64, u64> = levee_cache::Cache::new(100_000);
    side(&mut group, &rt, tasks, &mut next, "levee", |key, loads| {
        let cache = levee.clone();
        async move { cache.get_with_async(key, load(key, delay, loads)).await }
    });

    let moka: moka::future::Cache<u64, u64, caches::Hasher> = moka::future::Cache::builder()
        .max_capacity(100_000)
        .build_with_hasher(caches::Hasher::default());
    side(&mut group, &rt, tasks, &mut next, "moka", |key, loads| {
        let cache = moka.clone();
        async move { cache.get_with(key, load(key, delay, loads)).await }
    });

    let quick = Arc::new(caches::quick(100_000));
    side(&mut group, &rt, tasks, &mut next, "quick_cache", |key, loads| {
        let cache = Arc::clone(&quick);
        async move {
            let loaded = async { Ok::<_, Infallible>(load(key, delay, loads).await) };
            match cache.get_or_insert_async(&key, loaded).await {
                Ok(value) => value,
                Err(never) => match never {},
            }
        }
    });
    group.finish();
}

fn coalesced_miss(c: &mut Criterion) {
    coalesced(c, "cache/coalesced_miss", 128, Duration::ZERO);
    coalesced(c, "cache/coalesced_miss_1000_1ms", 1_000, Duration::from_millis(1));
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
            let cache = caches::levee(KEYS, None);
            trace::replay(&trace, |k| Map::get(&cache, k).is_some(), |k| Map::insert(&cache, k, k))
        })
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            let cache = caches::moka(KEYS, None);
            trace::replay(&trace, |k| Map::get(&cache, k).is_some(), |k| Map::insert(&cache, k, k))
        })
    });
    group.bench_function("quick_cache", |b| {
        b.iter(|| {
            let cache = caches::quick(KEYS);
            trace::replay(&trace, |k| Map::get(&cache, k).is_some(), |k| Map::insert(&cache, k, k))
        })
    });
    group.finish();
}

criterion_group!(benches, hit, churn, mix, coalesced_miss, zipf_replay);
criterion_main!(benches);
