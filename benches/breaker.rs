//! Circuit breaker hot paths, levee beside failsafe and recloser (the Rust breakers in use).
//!
//! - `breaker/closed_1t`, `breaker/closed_2t`: a closed breaker lets a call through and records
//!   its success (per call, per thread). levee is measured as `try_acquire` + `success` and
//!   through `call`; the anchors through their `call`. Every breaker uses its default settings
//!   (levee: a 100-call window; failsafe: success rate over a time window or consecutive
//!   failures; recloser: a 100-call ring). `levee_slow_calls` tracks slow calls (two clock
//!   reads more), `levee_time_window` uses a 60 s window in 1 s buckets, and
//!   `levee_one_failure_in_64` keeps a failure in the window, so every success writes the
//!   window instead of taking the write-free healthy path.
//! - `breaker/open_1t`, `breaker/open_2t`: the cost of a refusal by an open breaker.
//!
//! Two-thread cases run the same loop on two threads (the machine has two cores) and report
//! the slowest thread's time per call: equal to the one-thread figure means no contention.
//!
//! `cargo bench --bench breaker -- --warm-up-time 1 --measurement-time 3`

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use levee_breaker::CircuitBreaker;
use levee_workspace::bench::slowest_thread;
use recloser::Recloser;

const HOUR: Duration = Duration::from_secs(3600);

thread_local! {
    /// Calls made by this thread, to fail one in 64.
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// One function of a group: `op` on one thread, or on two (`threads == 2`).
fn case<F: Fn() + Sync>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    threads: usize,
    name: &str,
    op: F,
) {
    if threads == 1 {
        group.bench_function(name, |b| b.iter(&op));
    } else {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| slowest_thread(2, iters, |_, _| op()));
        });
    }
}

fn closed(c: &mut Criterion) {
    let levee = CircuitBreaker::builder().build().unwrap();
    let levee_slow =
        CircuitBreaker::builder().slow_calls(Duration::from_secs(1), 80.0).build().unwrap();
    let levee_time =
        CircuitBreaker::builder().time_window(Duration::from_secs(60)).build().unwrap();
    let levee_mixed = CircuitBreaker::builder().build().unwrap();
    let failsafe = failsafe::Config::new().build();
    let recloser = Recloser::default();

    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("breaker/closed_{threads}t"));
        group.throughput(Throughput::Elements(1));
        case(&mut group, threads, "levee", || black_box(levee.try_acquire()).unwrap().success());
        case(&mut group, threads, "levee_call", || {
            drop(black_box(levee.call(|| Ok::<_, ()>(black_box(1)))))
        });
        case(&mut group, threads, "levee_slow_calls", || {
            black_box(levee_slow.try_acquire()).unwrap().success()
        });
        case(&mut group, threads, "levee_time_window", || {
            black_box(levee_time.try_acquire()).unwrap().success()
        });
        case(&mut group, threads, "levee_one_failure_in_64", || {
            let permit = black_box(levee_mixed.try_acquire()).unwrap();
            if CALLS.with(|n| n.replace(n.get().wrapping_add(1))) % 64 == 0 {
                permit.failure();
            } else {
                permit.success();
            }
        });
        case(&mut group, threads, "failsafe", || {
            drop(black_box(failsafe.call(|| Ok::<_, ()>(black_box(1)))))
        });
        case(&mut group, threads, "recloser", || {
            drop(black_box(recloser.call(|| Ok::<_, ()>(black_box(1)))))
        });
        group.finish();
    }
}

fn open(c: &mut Criterion) {
    let levee = CircuitBreaker::builder().open_wait(HOUR).build().unwrap();
    levee.trip();
    let levee_forced = CircuitBreaker::builder().build().unwrap();
    levee_forced.force_open();
    let policy =
        failsafe::failure_policy::consecutive_failures(1, failsafe::backoff::constant(HOUR));
    let failsafe = failsafe::Config::new().failure_policy(policy).build();
    let _ = failsafe.call(|| Err::<(), ()>(()));
    let recloser = Recloser::custom().closed_len(1).open_wait(HOUR).build();
    while !matches!(recloser.call(|| Err::<(), ()>(())), Err(recloser::Error::Rejected)) {}
    assert!(levee.try_acquire().is_err() && levee_forced.try_acquire().is_err());
    assert!(!failsafe.is_call_permitted());

    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("breaker/open_{threads}t"));
        group.throughput(Throughput::Elements(1));
        case(&mut group, threads, "levee", || drop(black_box(levee.try_acquire())));
        case(&mut group, threads, "levee_forced_open", || {
            drop(black_box(levee_forced.try_acquire()))
        });
        case(&mut group, threads, "levee_call", || {
            drop(black_box(levee.call(|| Ok::<_, ()>(black_box(1)))))
        });
        case(&mut group, threads, "failsafe", || {
            drop(black_box(failsafe.call(|| Ok::<_, ()>(black_box(1)))))
        });
        case(&mut group, threads, "recloser", || {
            drop(black_box(recloser.call(|| Ok::<_, ()>(black_box(1)))))
        });
        group.finish();
    }
}

criterion_group!(benches, closed, open);
criterion_main!(benches);
