//! levee-limit against the crates users pick today: governor for rate limits, tokio's
//! `Semaphore` (with tokio's `parking_lot` feature) for bulkheads. Each group puts both sides
//! in one run, doing the same work on the same clock:
//!
//! - `limiter/check_1t`, `limiter/check_1t_refused`, `limiter/check_2t`: one shared GCRA
//!   limiter, on the default clocks of both (the TSC through quanta), admitting every check
//!   or refusing every check, from one thread or two (two elements per iteration: one per
//!   thread, timing the slower thread). `check_1t` and `check_2t` also run both crates'
//!   opt-in clocks kept by a background thread (`levee_coarse_clock`: levee-core's
//!   `CoarseClock`; `governor_upkeep_clock`: governor's `QuantaUpkeepClock`), 1 ms each.
//! - `limiter/check_at_1t`: a time the caller already holds: levee's `check_at(now)` against
//!   governor on a clock whose `now()` returns a value the caller sets (`SetClock` below).
//! - `keyed/check_10k`, `keyed/check_1m`: a check of a present key that never refills,
//!   cycling over 10,000 or 1,000,000 keys. governor on its `DashMap` with levee's hasher
//!   (foldhash, `dashmap_with_hasher`), so the hash function is not what is measured.
//! - `keyed/check_2t_10k`: the same on two threads, each cycling from its own offset.
//! - `keyed/refill_10k`: 10,000 keys, each checked less often than its emission interval
//!   (100,000 per second and key: every key has refilled when it comes back), on the real
//!   clocks; levee's reclamation runs as it does in production.
//! - `keyed/refill_10k_at`: the same pattern on caller-set time advanced 2 us per check, so a
//!   run covers minutes of a busy server's time (each key returns every 20 ms with a quota of
//!   100 per second; levee sweeps every second by default): levee `check_at`, governor on
//!   `SetClock`.
//! - `keyed/new_keys_1m`: churn, a million keys each seen once, into an empty limiter
//!   (building and dropping the limiters is outside the timed span).
//! - `bulkhead/acquire_release_1t` and `_2t`: `try_acquire` and drop the permit.
//! - `bulkhead/wait_1t`: the waiting path: 8 tasks spawned on a current-thread runtime share
//!   2 permits, each acquiring (`acquire().await`: it queues while both are out), yielding once
//!   while it holds the permit, and releasing. Time per acquire.
//! - `alloc_and_memory`: not timed; counts allocations on the hot paths (there must be none)
//!   and prints the live bytes per key of both keyed limiters at several key counts, and what
//!   is left after every key has refilled and each side reclaimed (levee `reclaim`, governor
//!   `retain_recent` + `shrink_to_fit`).
//!
//! `cargo bench --bench limit` measures wall-clock time, as criterion does by default.
//! `LEVEE_BENCH_CLOCK=cpu cargo bench --bench limit` measures the benchmark threads' CPU time
//! instead (Linux, `CLOCK_THREAD_CPUTIME_ID`); do not use it for the two-thread cases, whose
//! contention it hides. Multi-threaded cases report the slower thread either way.

use std::cell::Cell;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use levee_core::{CoarseClock, ManualClock};
use levee_limit::{Bulkhead, KeyedRateLimiter, Quota, RateLimiter};
use levee_workspace::CountingAllocator;
use levee_workspace::bench::slowest_thread_by;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

/// The time source of every measurement in this file: wall clock, or this thread's CPU time
/// when `LEVEE_BENCH_CLOCK=cpu`.
#[derive(Clone, Copy)]
struct BenchClock {
    cpu: bool,
}

impl BenchClock {
    fn from_env() -> Self {
        Self { cpu: std::env::var("LEVEE_BENCH_CLOCK").is_ok_and(|v| v == "cpu") }
    }

    fn now(self) -> Duration {
        if self.cpu { thread_cpu_time() } else { WALL_ORIGIN.with(Instant::elapsed) }
    }
}

thread_local!(static WALL_ORIGIN: Instant = Instant::now());

#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `struct timespec` (two 64-bit fields on 64-bit Linux)
    // and the clock id is the kernel's constant for the calling thread's CPU time.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    panic!("LEVEE_BENCH_CLOCK=cpu needs Linux")
}

impl Measurement for BenchClock {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        self.now()
    }
    fn end(&self, start: Duration) -> Duration {
        self.now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

type Bench = Criterion<BenchClock>;

/// A quota that admits every check (one per nanosecond, a four-second burst), so each check
/// takes the full path: clock read, load, compare-and-swap. governor clamps its interval to
/// one nanosecond, so both sides run with the same parameters.
const OPEN_RATE: u32 = 1_000_000_000;

fn governor_open() -> governor::DefaultDirectRateLimiter {
    governor::RateLimiter::direct(governor::Quota::per_second(NonZeroU32::MAX))
}

fn levee_open() -> RateLimiter {
    RateLimiter::new(Quota::per_second(OPEN_RATE).with_burst(u32::MAX)).expect("valid quota")
}

/// Runs `per_thread` calls of `f` on each of `threads` threads started together; returns
/// the slowest thread's time on the [`BenchClock`].
fn timed_threads(threads: usize, per_thread: u64, f: &(dyn Fn() + Sync)) -> Duration {
    let clock = BenchClock::from_env();
    slowest_thread_by(threads, per_thread, || clock.now(), |_, _| f())
}

fn check_1t(c: &mut Bench) {
    let mut group = c.benchmark_group("limiter/check_1t");
    group.throughput(Throughput::Elements(1));
    let levee = levee_open();
    group.bench_function("levee", |b| b.iter(|| black_box(levee.check().is_ok())));
    let governor = governor_open();
    group.bench_function("governor", |b| b.iter(|| black_box(governor.check().is_ok())));
    // The floor both sides stand on: one read of the TSC (levee's FastClock and governor's
    // default clock are both quanta). A check costs about this much; see the README.
    let clock = levee_core::FastClock;
    group.bench_function("clock_read_alone", |b| {
        b.iter(|| black_box(levee_core::Clock::now(&clock)))
    });
    // Both crates' opt-in clocks that a background thread keeps: one load instead of a TSC
    // read, for limiters whose burst covers rate x resolution (1 ms on both sides here).
    let coarse = levee_coarse();
    group.bench_function("levee_coarse_clock", |b| b.iter(|| black_box(coarse.check().is_ok())));
    let upkeep = governor_upkeep();
    group.bench_function("governor_upkeep_clock", |b| b.iter(|| black_box(upkeep.check().is_ok())));
    group.finish();
}

/// A governor clock that reads a time the caller set: governor's side of levee's `check_at`
/// (a pipeline that read the clock once hands the reading to each policy). Setting it is a
/// plain store to a cell; levee's side keeps the same value in a local.
#[derive(Clone, Default)]
struct SetClock(Rc<Cell<u64>>);

impl SetClock {
    fn set(&self, nanos: u64) {
        self.0.set(nanos);
    }
}

impl governor::clock::Clock for SetClock {
    type Instant = governor::nanos::Nanos;

    fn now(&self) -> Self::Instant {
        self.0.get().into()
    }
}

fn check_at_1t(c: &mut Bench) {
    let mut group = c.benchmark_group("limiter/check_at_1t");
    group.throughput(Throughput::Elements(1));
    let levee = levee_open();
    let mut now = 0u64;
    group.bench_function("levee", |b| {
        b.iter(|| {
            now += 20;
            black_box(levee.check_at(now).is_ok())
        })
    });
    let clock = SetClock::default();
    let governor = governor::RateLimiter::direct_with_clock(
        governor::Quota::per_second(NonZeroU32::MAX),
        clock.clone(),
    );
    let mut now = 0u64;
    group.bench_function("governor", |b| {
        b.iter(|| {
            now += 20;
            clock.set(now);
            black_box(governor.check().is_ok())
        })
    });
    group.finish();
}

const COARSE_RESOLUTION: Duration = Duration::from_millis(1);

fn levee_coarse() -> RateLimiter<CoarseClock> {
    let clock = CoarseClock::with_resolution(COARSE_RESOLUTION).expect("updater thread");
    RateLimiter::with_clock(Quota::per_second(OPEN_RATE).with_burst(u32::MAX), clock)
        .expect("valid quota")
}

type GovernorUpkeep = governor::RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::QuantaUpkeepClock,
>;

fn governor_upkeep() -> GovernorUpkeep {
    // quanta's upkeep is one per process: every limiter built here shares the first one.
    static CLOCK: std::sync::OnceLock<governor::clock::QuantaUpkeepClock> =
        std::sync::OnceLock::new();
    let clock = CLOCK.get_or_init(|| {
        governor::clock::QuantaUpkeepClock::from_interval(COARSE_RESOLUTION).expect("upkeep")
    });
    governor::RateLimiter::direct_with_clock(
        governor::Quota::per_second(NonZeroU32::MAX),
        clock.clone(),
    )
}

fn check_1t_refused(c: &mut Bench) {
    let mut group = c.benchmark_group("limiter/check_1t_refused");
    group.throughput(Throughput::Elements(1));
    let levee = RateLimiter::new(Quota::per_hour(1)).expect("valid quota");
    let _ = levee.check();
    group.bench_function("levee", |b| b.iter(|| black_box(levee.check().is_ok())));
    let governor = governor::RateLimiter::direct(governor::Quota::per_hour(NonZeroU32::MIN));
    let _ = governor.check();
    group.bench_function("governor", |b| b.iter(|| black_box(governor.check().is_ok())));
    group.finish();
}

fn check_2t(c: &mut Bench) {
    let mut group = c.benchmark_group("limiter/check_2t");
    group.throughput(Throughput::Elements(2));
    let levee = levee_open();
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            timed_threads(2, iters, &|| {
                black_box(levee.check().is_ok());
            })
        })
    });
    let governor = governor_open();
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            timed_threads(2, iters, &|| {
                black_box(governor.check().is_ok());
            })
        })
    });
    let coarse = levee_coarse();
    group.bench_function("levee_coarse_clock", |b| {
        b.iter_custom(|iters| {
            timed_threads(2, iters, &|| {
                black_box(coarse.check().is_ok());
            })
        })
    });
    let upkeep = governor_upkeep();
    group.bench_function("governor_upkeep_clock", |b| {
        b.iter_custom(|iters| {
            timed_threads(2, iters, &|| {
                black_box(upkeep.check().is_ok());
            })
        })
    });
    group.finish();
}

/// The hasher of both keyed limiters: levee's default, handed to governor's `DashMap`.
type Hasher = foldhash::fast::RandomState;

type GovernorKeyed<C = governor::clock::DefaultClock> = governor::RateLimiter<
    u64,
    governor::state::keyed::DashMapStateStore<u64, Hasher>,
    C,
    governor::middleware::NoOpMiddleware<<C as governor::clock::Clock>::Instant>,
>;

/// A per-key quota under which every check is admitted and no key ever refills during the
/// run (one cell per second, a burst of 2^32 - 1): both sides then measure looking up a
/// present key and updating its state, and levee's reclamation finds nothing to reclaim.
fn keyed_quota_levee() -> Quota {
    Quota::new(1, Duration::from_secs(1)).with_burst(u32::MAX)
}

fn keyed_quota_governor() -> governor::Quota {
    governor::Quota::with_period(Duration::from_secs(1))
        .expect("non-zero")
        .allow_burst(NonZeroU32::MAX)
}

fn levee_keyed(quota: Quota) -> KeyedRateLimiter<u64> {
    KeyedRateLimiter::new(quota).expect("valid quota")
}

fn governor_keyed(quota: governor::Quota) -> GovernorKeyed {
    governor::RateLimiter::dashmap_with_hasher(quota, Hasher::default())
}

/// The `i`-th key of thread `t` in a cycle over `keys`: the threads start at different places.
fn cycled(t: usize, i: u64, keys: u64) -> u64 {
    (t as u64 * keys / 2 + i) % keys
}

/// Adds keys `0..keys` to a limiter through `check`, outside any timed span.
fn fill(keys: u64, mut check: impl FnMut(u64) -> bool) {
    (0..keys).for_each(|k| {
        check(k);
    });
}

/// Benchmarks `check(key)` (admitted or not) on one thread, cycling over `keys` keys.
fn cycle_1t(
    group: &mut BenchmarkGroup<'_, BenchClock>,
    name: &str,
    keys: u64,
    mut check: impl FnMut(u64) -> bool,
) {
    let mut i = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            i = if i + 1 == keys { 0 } else { i + 1 };
            black_box(check(i))
        })
    });
}

/// Benchmarks `check(key)` on two threads at once, each cycling over `keys` keys from its
/// own place, timing the slower thread.
fn cycle_2t(
    group: &mut BenchmarkGroup<'_, BenchClock>,
    name: &str,
    keys: u64,
    check: impl Fn(u64) -> bool + Sync,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let clock = BenchClock::from_env();
            slowest_thread_by(
                2,
                iters,
                || clock.now(),
                |t, i| {
                    black_box(check(cycled(t, i, keys)));
                },
            )
        })
    });
}

fn keyed_check(c: &mut Bench) {
    for (name, keys) in [("10k", 10_000u64), ("1m", 1_000_000)] {
        let mut group = c.benchmark_group(format!("keyed/check_{name}"));
        group.throughput(Throughput::Elements(1));
        let levee = levee_keyed(keyed_quota_levee());
        fill(keys, |k| levee.check(&k).is_ok());
        cycle_1t(&mut group, "levee", keys, |k| levee.check(&k).is_ok());
        drop(levee);
        let governor = governor_keyed(keyed_quota_governor());
        fill(keys, |k| governor.check_key(&k).is_ok());
        cycle_1t(&mut group, "governor", keys, |k| governor.check_key(&k).is_ok());
        group.finish();
    }
}

fn keyed_check_2t(c: &mut Bench) {
    const KEYS: u64 = 10_000;
    let mut group = c.benchmark_group("keyed/check_2t_10k");
    group.throughput(Throughput::Elements(2));
    let levee = levee_keyed(keyed_quota_levee());
    fill(KEYS, |k| levee.check(&k).is_ok());
    cycle_2t(&mut group, "levee", KEYS, |k| levee.check(&k).is_ok());
    drop(levee);
    let governor = governor_keyed(keyed_quota_governor());
    fill(KEYS, |k| governor.check_key(&k).is_ok());
    cycle_2t(&mut group, "governor", KEYS, |k| governor.check_key(&k).is_ok());
    group.finish();
}

fn keyed_refill(c: &mut Bench) {
    const KEYS: u64 = 10_000;
    // Real clocks: a key's emission interval is 10 us, and a cycle over 10,000 keys takes
    // far longer, so every check finds its key refilled (and admits it).
    let mut group = c.benchmark_group("keyed/refill_10k");
    group.throughput(Throughput::Elements(1));
    let levee = levee_keyed(Quota::per_second(100_000));
    fill(KEYS, |k| levee.check(&k).is_ok());
    cycle_1t(&mut group, "levee", KEYS, |k| levee.check(&k).is_ok());
    drop(levee);
    let governor = governor_keyed(governor::Quota::per_second(NonZeroU32::new(100_000).unwrap()));
    fill(KEYS, |k| governor.check_key(&k).is_ok());
    cycle_1t(&mut group, "governor", KEYS, |k| governor.check_key(&k).is_ok());
    group.finish();

    // Caller-set time, 2 us per check: each key returns every 20 ms, refilled (100 per
    // second), and a second of traffic passes every 500,000 checks.
    const STEP: u64 = 2_000;
    let mut group = c.benchmark_group("keyed/refill_10k_at");
    group.throughput(Throughput::Elements(1));
    let levee = KeyedRateLimiter::<u64>::builder(Quota::per_second(100))
        .clock(ManualClock::new())
        .build()
        .expect("valid quota");
    fill(KEYS, |k| levee.check_at(&k, 0).is_ok());
    let mut now = 0;
    cycle_1t(&mut group, "levee", KEYS, |k| {
        now += STEP;
        levee.check_at(&k, now).is_ok()
    });
    drop(levee);
    let clock = SetClock::default();
    let governor: GovernorKeyed<SetClock> = governor::RateLimiter::dashmap_with_clock_and_hasher(
        governor::Quota::per_second(NonZeroU32::new(100).unwrap()),
        clock.clone(),
        Hasher::default(),
    );
    fill(KEYS, |k| governor.check_key(&k).is_ok());
    let mut now = 0;
    cycle_1t(&mut group, "governor", KEYS, |k| {
        now += STEP;
        clock.set(now);
        governor.check_key(&k).is_ok()
    });
    group.finish();
}

fn keyed_new_keys(c: &mut Bench) {
    const KEYS: u64 = 1_000_000;
    let mut group = c.benchmark_group("keyed/new_keys_1m");
    group.throughput(Throughput::Elements(KEYS));
    group.sample_size(10);
    let clock = BenchClock::from_env();
    // A fresh, empty limiter per iteration, built and dropped outside the timed span.
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let levee = levee_keyed(Quota::per_second(100));
                    let start = clock.now();
                    (0..KEYS).for_each(|k| {
                        black_box(levee.check(&k).is_ok());
                    });
                    let took = clock.now() - start;
                    drop(levee);
                    took
                })
                .sum()
        })
    });
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let governor =
                        governor_keyed(governor::Quota::per_second(NonZeroU32::new(100).unwrap()));
                    let start = clock.now();
                    (0..KEYS).for_each(|k| {
                        black_box(governor.check_key(&k).is_ok());
                    });
                    let took = clock.now() - start;
                    drop(governor);
                    took
                })
                .sum()
        })
    });
    group.finish();
}

fn bulkhead(c: &mut Bench) {
    let mut group = c.benchmark_group("bulkhead/acquire_release_1t");
    group.throughput(Throughput::Elements(1));
    let levee = Bulkhead::new(64).expect("valid limit");
    group.bench_function("levee", |b| {
        b.iter(|| {
            let permit = levee.try_acquire().expect("free permit");
            black_box(&permit);
        })
    });
    let tokio = tokio::sync::Semaphore::new(64);
    group.bench_function("tokio_semaphore", |b| {
        b.iter(|| {
            let permit = tokio.try_acquire().expect("free permit");
            black_box(&permit);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("bulkhead/acquire_release_2t");
    group.throughput(Throughput::Elements(2));
    let levee = Bulkhead::new(64).expect("valid limit");
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            timed_threads(2, iters, &|| {
                let permit = levee.try_acquire().expect("free permit");
                black_box(&permit);
            })
        })
    });
    let tokio = tokio::sync::Semaphore::new(64);
    group.bench_function("tokio_semaphore", |b| {
        b.iter_custom(|iters| {
            timed_threads(2, iters, &|| {
                let permit = tokio.try_acquire().expect("free permit");
                black_box(&permit);
            })
        })
    });
    group.finish();
}

/// Tasks sharing the permits of `bulkhead/wait_1t`.
const WAIT_TASKS: u64 = 8;

/// Spawns `WAIT_TASKS` tasks on a fresh current-thread runtime, each calling `round` until
/// `total` rounds are done between them; returns the time from the first spawn to the last
/// task's end. Spawned tasks are polled only when woken, as in a server (a `join_all` would
/// poll every waiter whenever any one is woken).
fn run_waiters<F>(total: u64, round: impl Fn() -> F + Send + Sync + 'static) -> Duration
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let clock = BenchClock::from_env();
    let round = std::sync::Arc::new(round);
    runtime.block_on(async move {
        let start = clock.now();
        let per_task = total.div_ceil(WAIT_TASKS);
        let tasks: Vec<_> = (0..WAIT_TASKS)
            .map(|_| {
                let round = round.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        round().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("bench task");
        }
        clock.now() - start
    })
}

fn bulkhead_wait(c: &mut Bench) {
    let mut group = c.benchmark_group("bulkhead/wait_1t");
    group.throughput(Throughput::Elements(1));
    // Leaked, so the spawned tasks borrow them for 'static without an Arc per round.
    let levee: &'static Bulkhead =
        Box::leak(Box::new(Bulkhead::builder(2).max_queue(64).build().expect("valid limit")));
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            run_waiters(iters, || async {
                let permit = levee.acquire().await.expect("queued, no maximum wait");
                tokio::task::yield_now().await;
                drop(permit);
            })
        })
    });
    let tokio: &'static tokio::sync::Semaphore =
        Box::leak(Box::new(tokio::sync::Semaphore::new(2)));
    group.bench_function("tokio_semaphore", |b| {
        b.iter_custom(|iters| {
            run_waiters(iters, || async {
                let permit = tokio.acquire().await.expect("never closed");
                tokio::task::yield_now().await;
                drop(permit);
            })
        })
    });
    group.finish();
}

/// Allocations made by `f` run `n` times.
fn allocations(n: u64, mut f: impl FnMut(u64)) -> u64 {
    let before = ALLOC.allocations();
    for i in 0..n {
        f(i);
    }
    ALLOC.allocations() - before
}

fn alloc_and_memory(_: &mut Bench) {
    let limiter = levee_open();
    let keyed = levee_keyed(keyed_quota_levee());
    for k in 0..10_000 {
        let _ = keyed.check(&k);
    }
    let bulkhead = Bulkhead::new(4).expect("valid limit");
    let hot = [
        (
            "RateLimiter::check",
            allocations(1_000_000, |_| {
                let _ = black_box(limiter.check());
            }),
        ),
        (
            "KeyedRateLimiter::check (present key)",
            allocations(1_000_000, |i| {
                let _ = black_box(keyed.check(&(i % 10_000)));
            }),
        ),
        ("Bulkhead::try_acquire + drop", allocations(1_000_000, |_| drop(bulkhead.try_acquire()))),
    ];
    for (what, n) in hot {
        println!("alloc_and_memory: {what}: {n} allocations in 1,000,000 calls");
        assert_eq!(n, 0, "{what} allocated");
    }
    drop(keyed);

    // Live bytes per key after inserting `keys` u64 keys on caller-set time (levee on a
    // ManualClock, governor on SetClock), then after every key has refilled and each side
    // reclaimed what it can (levee `reclaim`, governor `retain_recent` + `shrink_to_fit`).
    for keys in [100_000u64, 300_000, 1_000_000] {
        let before = ALLOC.live_bytes();
        let clock = ManualClock::new();
        let keyed = KeyedRateLimiter::<u64>::builder(Quota::per_second(10))
            .clock(clock.clone())
            .build()
            .expect("valid quota");
        let levee_empty = ALLOC.live_bytes() - before;
        (0..keys).for_each(|k| {
            let _ = keyed.check(&k);
        });
        let levee_full = ALLOC.live_bytes() - before;
        clock.advance(Duration::from_secs(2));
        keyed.reclaim();
        let levee_after = ALLOC.live_bytes() - before;
        drop(keyed);

        let before = ALLOC.live_bytes();
        let set = SetClock::default();
        let governor: GovernorKeyed<SetClock> =
            governor::RateLimiter::dashmap_with_clock_and_hasher(
                governor::Quota::per_second(NonZeroU32::new(10).unwrap()),
                set.clone(),
                Hasher::default(),
            );
        let governor_empty = ALLOC.live_bytes() - before;
        (0..keys).for_each(|k| {
            let _ = governor.check_key(&k);
        });
        let governor_full = ALLOC.live_bytes() - before;
        set.set(2_000_000_000);
        governor.retain_recent();
        governor.shrink_to_fit();
        let governor_after = ALLOC.live_bytes() - before;
        drop(governor);
        let label = if keys >= 1_000_000 {
            format!("{}M", keys / 1_000_000)
        } else {
            format!("{}k", keys / 1000)
        };
        println!(
            "alloc_and_memory: bytes per key at {label} u64 keys: levee {:.1}, governor {:.1}",
            levee_full as f64 / keys as f64,
            governor_full as f64 / keys as f64,
        );
        println!(
            "alloc_and_memory: bytes left after {label} u64 keys seen once, all refilled and \
             reclaimed: levee {levee_after}, governor {governor_after} (an empty limiter: levee \
             {levee_empty}, governor {governor_empty})",
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(BenchClock::from_env());
    targets = alloc_and_memory, check_1t, check_at_1t, check_1t_refused, check_2t, keyed_check,
        keyed_check_2t, keyed_refill, keyed_new_keys, bulkhead, bulkhead_wait
}
criterion_main!(benches);
