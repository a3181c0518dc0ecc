//! levee-limit against the crates users pick today: governor for rate limits, tokio's
//! `Semaphore` for bulkheads. Each group puts both sides in one run:
//!
//! - `limiter/check_1t`, `limiter/check_1t_refused`, `limiter/check_2t`: one shared GCRA
//!   limiter, on the default clocks of both (the TSC through quanta), admitting every check
//!   or refusing every check, from one thread or two (two elements per iteration: one per
//!   thread, timing the slower thread). `check_1t` and `check_2t` also run both crates'
//!   opt-in clocks kept by a background thread (`levee_coarse_clock`: levee-core's
//!   `CoarseClock`; `governor_upkeep_clock`: governor's `QuantaUpkeepClock`), 1 ms each.
//! - `keyed/check_10k`, `keyed/check_1m`: a check of a present key, cycling over 10,000 or
//!   1,000,000 keys.
//! - `bulkhead/acquire_release_1t` and `_2t`: `try_acquire` and drop the permit.
//! - `alloc_and_memory`: not timed; counts allocations on the hot paths (there must be none)
//!   and prints the bytes per key of both keyed limiters at 1M keys.
//!
//! `cargo bench --bench limit` measures wall-clock time, as criterion does by default.
//! `LEVEE_BENCH_CLOCK=cpu cargo bench --bench limit` measures the benchmark threads' CPU time
//! instead (Linux, `CLOCK_THREAD_CPUTIME_ID`): on a shared, overloaded machine wall time
//! mostly measures the scheduler, while CPU time still measures the code. Multi-threaded
//! cases report the slower thread either way.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_core::CoarseClock;
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
    // With a clock reading the caller already has (a pipeline reading the clock once for
    // several policies): not the same operation as `check`, so reported on its own row.
    let fresh = levee_open();
    let mut now = 0u64;
    group.bench_function("levee_check_at", |b| {
        b.iter(|| {
            now += 20;
            black_box(fresh.check_at(now).is_ok())
        })
    });
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

fn keyed_check(c: &mut Bench) {
    for (name, keys) in [("10k", 10_000u64), ("1m", 1_000_000)] {
        let mut group = c.benchmark_group(format!("keyed/check_{name}"));
        group.throughput(Throughput::Elements(1));
        let levee: KeyedRateLimiter<u64> =
            KeyedRateLimiter::new(keyed_quota_levee()).expect("valid quota");
        for k in 0..keys {
            let _ = levee.check(&k);
        }
        let mut i = 0;
        group.bench_function("levee", |b| {
            b.iter(|| {
                i += 1;
                if i == keys {
                    i = 0;
                }
                black_box(levee.check(&i).is_ok())
            })
        });
        drop(levee);
        let governor = governor::RateLimiter::keyed(keyed_quota_governor());
        for k in 0..keys {
            let _ = governor.check_key(&k);
        }
        let mut i = 0;
        group.bench_function("governor", |b| {
            b.iter(|| {
                i += 1;
                if i == keys {
                    i = 0;
                }
                black_box(governor.check_key(&i).is_ok())
            })
        });
        group.finish();
    }
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
    let keyed: KeyedRateLimiter<u64> =
        KeyedRateLimiter::new(keyed_quota_levee()).expect("valid quota");
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

    let keys = 1_000_000u64;
    let before = ALLOC.live_bytes();
    let keyed: KeyedRateLimiter<u64> =
        KeyedRateLimiter::new(keyed_quota_levee()).expect("valid quota");
    for k in 0..keys {
        let _ = keyed.check(&k);
    }
    let levee_bytes = ALLOC.live_bytes() - before;
    drop(keyed);
    let before = ALLOC.live_bytes();
    let governor = governor::RateLimiter::keyed(keyed_quota_governor());
    for k in 0..keys {
        let _ = governor.check_key(&k);
    }
    let governor_bytes = ALLOC.live_bytes() - before;
    drop(governor);
    println!(
        "alloc_and_memory: bytes per key at 1M u64 keys: levee {:.1}, governor {:.1}",
        levee_bytes as f64 / keys as f64,
        governor_bytes as f64 / keys as f64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(BenchClock::from_env());
    targets = alloc_and_memory, check_1t, check_1t_refused, check_2t, keyed_check, bulkhead
}
criterion_main!(benches);
