//! Single-flight loading under load: many concurrent misses, a cancelled leader, a panicking
//! loader, and invalidations racing loads. No test sleeps: they wait on counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use levee_cache::{Cache, SingleFlight};
use levee_core::ManualClock;
use tokio::sync::Semaphore;

const TASKS: usize = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

/// Yields until `done()` holds.
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

/// A loader that counts its runs and waits for the gate before answering.
fn loader(runs: &Arc<AtomicUsize>, gate: &Arc<Semaphore>) -> impl Future<Output = u64> + use<> {
    let (runs, gate) = (runs.clone(), gate.clone());
    async move {
        runs.fetch_add(1, Ordering::SeqCst);
        gate.acquire().await.unwrap().forget();
        42
    }
}

#[test]
fn ten_thousand_async_misses_run_one_load() {
    runtime().block_on(async {
        let cache: Cache<u64, u64> = Cache::new(100);
        let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (cache, load) = (cache.clone(), loader(&runs, &gate));
                tokio::spawn(async move { cache.get_with_async(7, load).await })
            })
            .collect();
        until(|| cache.stats().coalesced == TASKS as u64 - 1).await;
        gate.add_permits(1);
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let s = cache.stats();
        assert_eq!((s.loads, s.coalesced), (1, TASKS as u64 - 1));
        assert_eq!(cache.get(&7), Some(42));
    });
}

#[test]
fn ten_thousand_misses_survive_the_leader_being_cancelled_mid_load() {
    runtime().block_on(async {
        let cache: Cache<u64, u64> = Cache::new(100);
        let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
        let leader = {
            let (cache, load) = (cache.clone(), loader(&runs, &gate));
            tokio::spawn(async move { cache.get_with_async(7, load).await })
        };
        until(|| runs.load(Ordering::SeqCst) == 1).await; // the load is under way
        let waiters: Vec<_> = (1..TASKS)
            .map(|_| {
                let (cache, load) = (cache.clone(), loader(&runs, &gate));
                tokio::spawn(async move { cache.get_with_async(7, load).await })
            })
            .collect();
        until(|| cache.stats().coalesced == TASKS as u64 - 1).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        gate.add_permits(1);
        for w in waiters {
            assert_eq!(w.await.unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the load went on without its leader");
        assert_eq!(cache.get(&7), Some(42));
        assert_eq!(cache.loads_in_flight(), 0);
    });
}

#[test]
fn ten_thousand_misses_survive_a_panicking_loader() {
    runtime().block_on(async {
        let cache: Cache<u64, u64> = Cache::new(100);
        let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
                tokio::spawn(async move {
                    let load = async move {
                        let run = runs.fetch_add(1, Ordering::SeqCst);
                        gate.acquire().await.unwrap().forget();
                        assert!(run > 0, "the first load panics");
                        42
                    };
                    cache.get_with_async(7, load).await
                })
            })
            .collect();
        until(|| cache.stats().coalesced == TASKS as u64 - 1).await;
        gate.add_permits(2);
        let (mut values, mut panics) = (0, 0);
        for t in tasks {
            match t.await {
                Ok(v) => {
                    assert_eq!(v, 42);
                    values += 1;
                }
                Err(e) => {
                    assert!(e.is_panic());
                    panics += 1;
                }
            }
        }
        assert_eq!((values, panics), (TASKS - 1, 1), "only the panicking loader's caller panics");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one waiter took over, once");
        assert_eq!(cache.stats().load_panics, 1);
        assert_eq!(cache.get(&7), Some(42));
    });
}

#[test]
fn a_load_nobody_waits_for_is_dropped() {
    runtime().block_on(async {
        let cache: Cache<u64, u64> = Cache::new(100);
        let dropped = Arc::new(AtomicBool::new(false));
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = OnDrop(dropped.clone());
        let c = cache.clone();
        let task = tokio::spawn(async move {
            c.get_with_async(1, async move {
                let _guard = guard;
                std::future::pending::<u64>().await
            })
            .await
        });
        until(|| cache.loads_in_flight() == 1).await;
        task.abort();
        let _ = task.await;
        assert!(dropped.load(Ordering::SeqCst), "the loader future was dropped");
        assert_eq!(cache.loads_in_flight(), 0);
        assert_eq!(cache.stats().abandoned_loads, 1);
        assert_eq!(cache.get_with_async(1, async { 5 }).await, 5, "the next caller loads afresh");
    });
}

#[test]
fn a_blocking_waiter_takes_over_an_abandoned_async_load() {
    let rt = runtime();
    let cache: Cache<u64, u64> = Cache::new(100);
    let c = cache.clone();
    let task = rt.spawn(async move { c.get_with_async(1, std::future::pending()).await });
    while cache.loads_in_flight() == 0 {
        std::thread::yield_now();
    }
    std::thread::scope(|s| {
        let waiter = s.spawn(|| cache.get_with(1, || 9));
        while cache.stats().coalesced == 0 {
            std::thread::yield_now();
        }
        task.abort();
        assert_eq!(waiter.join().unwrap(), 9);
    });
    assert_eq!(cache.get(&1), Some(9));
}

#[test]
fn blocking_misses_on_one_key_run_one_load() {
    const THREADS: u64 = 16;
    let cache: Cache<u64, u64> = Cache::new(100);
    let runs = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let v = cache.get_with(3, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    while cache.stats().coalesced < THREADS - 1 {
                        std::thread::yield_now();
                    }
                    33
                });
                assert_eq!(v, 33);
            });
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn after_an_invalidation_new_callers_do_not_join_the_stale_load() {
    runtime().block_on(async {
        let cache: Cache<u64, u64> = Cache::new(100);
        let gate = Arc::new(Semaphore::new(0));
        let (c, g) = (cache.clone(), gate.clone());
        let old = tokio::spawn(async move {
            c.get_with_async(1, async move {
                g.acquire().await.unwrap().forget();
                100 // read before the price change
            })
            .await
        });
        until(|| cache.loads_in_flight() == 1).await;
        cache.invalidate(&1); // the price changed
        let fresh = cache.get_with_async(1, async { 200 }).await;
        assert_eq!(fresh, 200, "a caller after the invalidation gets a new load");
        gate.add_permits(1);
        assert_eq!(old.await.unwrap(), 100, "the old caller still gets its own load");
        assert_eq!(cache.get(&1), Some(200), "and the stale load is not stored");
        assert_eq!(cache.stats().stale_discards, 1);
    });
}

/// Loads read a version; an invalidator bumps it, then invalidates. Whatever the interleaving,
/// the cache may end holding only a value read after the last invalidation began.
#[test]
fn invalidation_racing_loads_never_leaves_the_old_value() {
    for _ in 0..50 {
        let cache: Cache<u64, u64> = Cache::new(100);
        let version = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..200 {
                        cache.get_with(1, || version.load(Ordering::SeqCst));
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..100 {
                    version.fetch_add(1, Ordering::SeqCst);
                    cache.invalidate(&1);
                    std::thread::yield_now();
                }
            });
        });
        // Whatever the cache holds now was read after the last invalidation began, so it is
        // the last version; holding nothing, it loads the last version.
        let last = version.load(Ordering::SeqCst);
        assert_eq!(cache.get_with(1, || last), last, "a pre-invalidation value survived");
    }
}

#[test]
fn async_refresh_runs_in_the_background() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let clock = ManualClock::new();
        let cache: Cache<u64, u64, _> = Cache::builder()
            .max_capacity(100)
            .time_to_live(Duration::from_secs(10))
            .stale_while_revalidate(Duration::from_secs(10))
            .clock(clock.clone())
            .build()
            .unwrap();
        cache.insert(1, 1);
        clock.advance(Duration::from_secs(11));
        let gate = Arc::new(Semaphore::new(0));
        let g = gate.clone();
        let refresh = async move {
            g.acquire().await.unwrap().forget();
            2
        };
        assert_eq!(cache.get_with_async(1, refresh).await, 1, "stale value served at once");
        assert_eq!(cache.get_with_async(1, async { unreachable!() }).await, 1, "one refresh");
        assert_eq!(cache.loads_in_flight(), 1);
        gate.add_permits(1);
        until(|| cache.get(&1) == Some(2)).await;
        assert_eq!(cache.stats().stale_serves, 2);
    });
}

#[test]
fn single_flight_coalesces_async_calls_and_forgets_afterwards() {
    runtime().block_on(async {
        let group: SingleFlight<u64, u64> = SingleFlight::new();
        let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (group, load) = (group.clone(), loader(&runs, &gate));
                tokio::spawn(async move { group.run_async(5, load).await })
            })
            .collect();
        until(|| group.coalesced() == 999).await;
        gate.add_permits(1);
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(group.in_flight(), 0);
        gate.add_permits(1);
        assert_eq!(group.run_async(5, loader(&runs, &gate)).await, 42);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "nothing is cached");
    });
}

#[test]
fn single_flight_blocking_calls_and_panics() {
    let group: SingleFlight<u64, u64> = SingleFlight::new();
    let runs = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                group.run(1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    while group.coalesced() < 7 {
                        std::thread::yield_now();
                    }
                    1
                })
            });
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let r =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.run(2, || panic!("boom"))));
    assert!(r.is_err());
    assert_eq!(group.in_flight(), 0);
    assert_eq!(group.run(2, || 2), 2);
}
