//! Circuit breaker hot paths, levee beside failsafe and recloser (the Rust breakers in use),
//! paired by semantics: one group per question, every function of a group doing the same work
//! through the same harness.
//!
//! - `breaker/time_30s_*`: a closed breaker judging the calls of the last 30 seconds lets a
//!   call through and records its result. failsafe's default policy
//!   (`failsafe::Config::new()`) is its time-based one: a success rate over a 30 s window
//!   (an exponential moving average, with a 5-slice request counter, minimum 5 requests,
//!   80 %), or else 5 consecutive failures; it reads the OS clock (`Instant::now`) twice per
//!   success, under a mutex. levee's `time_window(30 s)` counts the last 30 s in thirty 1 s
//!   buckets. `levee_system_clock` is the same breaker on the OS clock (`SystemClock`), the
//!   like-for-like row; `levee` is on levee's default clock (`FastClock`, the TSC), so the two
//!   levee rows tell the clock's share from the design's.
//! - `breaker/count_*`: a count window. levee's default (the last 100 calls, 50 %) against
//!   recloser's default (a ring of the last 100 calls, 50 %); neither reads a clock. failsafe's
//!   count-based policy is `consecutive_failures` (its default: 5), a counter rather than a
//!   window, which is as much as failsafe offers without a clock. `levee_permit` is levee's
//!   `try_acquire` + `success` rather than `call`; `levee_slow_calls` also times every call
//!   (slow-call tracking, two clock reads), a levee-only configuration.
//! - `*_fail64_*`: the same kinds of breaker, one call in 64 failing (per thread,
//!   deterministically), so a failure is always in the window: the path a degraded backend
//!   takes. No breaker opens at that rate (checked before measuring). Each workload measures
//!   breakers of its own, so the healthy cases never see a failure.
//! - `breaker/open_*`: the refusal of an open circuit (opened for an hour). levee on its
//!   default clock and on the OS clock, and forced open (no clock read at all); failsafe and
//!   recloser read the OS clock.
//!
//! Every call goes through the breaker's `call` with the same closure, `black_box` on the
//! breaker and the result, on both sides. `_1t` runs on one thread (criterion's `iter`);
//! `_2t` runs the same loop on two threads (the machine has two cores), released together by
//! a barrier, and reports the slowest thread's time per call (`iter_custom`): equal to the
//! `_1t` figure means no contention.
//!
//! `cargo bench --bench breaker -- --warm-up-time 1 --measurement-time 3`

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use failsafe::backoff;
use failsafe::failure_policy::{ConsecutiveFailures, consecutive_failures};
use levee_breaker::CircuitBreaker;
use levee_core::{Clock, SystemClock};
use levee_workspace::bench::slowest_thread;
use recloser::Recloser;

const HOUR: Duration = Duration::from_secs(3600);
const WINDOW: Duration = Duration::from_secs(30);

thread_local! {
    /// Calls made by this thread, to fail one in 64.
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// The call every breaker makes: `Ok`, or `Err` for one call in 64 when `failing`.
#[inline]
fn work(failing: bool) -> Result<u64, ()> {
    let n = CALLS.with(|c| c.replace(c.get().wrapping_add(1)));
    if failing && n % 64 == 0 { Err(()) } else { Ok(black_box(n)) }
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

/// One group per workload (every call succeeds; one in 64 fails) and thread count, named
/// `breaker/{question}[_fail64]_{threads}t`. Each workload gets breakers of its own from
/// `breakers(failing)`, so no failure of one workload is still in a window the other measures;
/// `cases` adds the group's functions.
fn workloads<B: Sync>(
    c: &mut Criterion,
    question: &str,
    breakers: impl Fn(bool) -> B,
    cases: impl Fn(&mut BenchmarkGroup<'_, WallTime>, usize, bool, &B),
) {
    for (workload, failing) in [("", false), ("_fail64", true)] {
        let breakers = breakers(failing);
        for threads in [1, 2] {
            let mut group = c.benchmark_group(format!("breaker/{question}{workload}_{threads}t"));
            group.throughput(Throughput::Elements(1));
            cases(&mut group, threads, failing, &breakers);
            group.finish();
        }
    }
}

fn levee_call<C: Clock>(b: &CircuitBreaker<C>, failing: bool) {
    drop(black_box(black_box(b).call(|| work(failing))));
}

fn failsafe_call(b: &impl failsafe::CircuitBreaker, failing: bool) {
    drop(black_box(black_box(b).call(|| work(failing))));
}

fn recloser_call(b: &Recloser, failing: bool) {
    drop(black_box(black_box(b).call(|| work(failing))));
}

/// failsafe's count-based policy with its default parameters (5 consecutive failures).
fn failsafe_consecutive() -> impl failsafe::CircuitBreaker {
    failsafe::Config::new().failure_policy(ConsecutiveFailures::default()).build()
}

/// Makes sure a failing workload never opens `permitted`'s breaker: a figure measured on an
/// open breaker would be a refusal, not a call.
fn assert_stays_closed(name: &str, call: impl Fn(), permitted: impl Fn() -> bool) {
    for _ in 0..100_000 {
        call();
    }
    assert!(permitted(), "{name} opened under one failure in 64");
}

fn time_window(c: &mut Criterion) {
    let breakers = |failing: bool| {
        let levee = CircuitBreaker::builder().time_window(WINDOW).build().unwrap();
        let levee_system =
            CircuitBreaker::builder().time_window(WINDOW).clock(SystemClock).build().unwrap();
        let failsafe = failsafe::Config::new().build();
        if failing {
            assert_stays_closed("levee", || levee_call(&levee, true), || levee.check().is_ok());
            assert_stays_closed(
                "levee on SystemClock",
                || levee_call(&levee_system, true),
                || levee_system.check().is_ok(),
            );
            assert_stays_closed(
                "failsafe",
                || failsafe_call(&failsafe, true),
                || failsafe.is_call_permitted(),
            );
        }
        (levee, levee_system, failsafe)
    };
    workloads(c, "time_30s", breakers, |group, threads, failing, (levee, system, failsafe)| {
        case(group, threads, "levee", || levee_call(levee, failing));
        case(group, threads, "levee_system_clock", || levee_call(system, failing));
        case(group, threads, "failsafe_default", || failsafe_call(failsafe, failing));
    });
}

fn count_window(c: &mut Criterion) {
    let breakers = |failing: bool| {
        let levee = CircuitBreaker::builder().build().unwrap();
        let recloser = Recloser::default();
        let failsafe = failsafe_consecutive();
        if failing {
            assert_stays_closed("levee", || levee_call(&levee, true), || levee.check().is_ok());
            assert_stays_closed(
                "recloser",
                || recloser_call(&recloser, true),
                || recloser.call(|| Ok::<_, ()>(())).is_ok(),
            );
            assert_stays_closed(
                "failsafe",
                || failsafe_call(&failsafe, true),
                || failsafe.is_call_permitted(),
            );
        }
        (levee, recloser, failsafe)
    };
    let levee_slow =
        CircuitBreaker::builder().slow_calls(Duration::from_secs(1), 80.0).build().unwrap();
    workloads(c, "count", breakers, |group, threads, failing, (levee, recloser, failsafe)| {
        case(group, threads, "levee", || levee_call(levee, failing));
        case(group, threads, "recloser", || recloser_call(recloser, failing));
        case(group, threads, "failsafe_consecutive", || failsafe_call(failsafe, failing));
        if !failing && threads == 1 {
            case(group, threads, "levee_permit", || {
                black_box(black_box(levee).try_acquire()).unwrap().success();
            });
            case(group, threads, "levee_slow_calls", || levee_call(&levee_slow, false));
        }
    });
}

fn open(c: &mut Criterion) {
    let levee = CircuitBreaker::builder().open_wait(HOUR).build().unwrap();
    levee.trip();
    let levee_system =
        CircuitBreaker::builder().open_wait(HOUR).clock(SystemClock).build().unwrap();
    levee_system.trip();
    let levee_forced = CircuitBreaker::builder().build().unwrap();
    levee_forced.force_open();
    let failsafe = failsafe::Config::new()
        .failure_policy(consecutive_failures(1, backoff::constant(HOUR)))
        .build();
    let _ = failsafe.call(|| Err::<(), ()>(()));
    let recloser = Recloser::custom().closed_len(1).open_wait(HOUR).build();
    while !matches!(recloser.call(|| Err::<(), ()>(())), Err(recloser::Error::Rejected)) {}
    assert!(levee.check().is_err() && levee_system.check().is_err());
    assert!(levee_forced.check().is_err() && !failsafe.is_call_permitted());

    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("breaker/open_{threads}t"));
        group.throughput(Throughput::Elements(1));
        case(&mut group, threads, "levee", || levee_call(&levee, false));
        case(&mut group, threads, "levee_system_clock", || levee_call(&levee_system, false));
        case(&mut group, threads, "levee_forced_open", || levee_call(&levee_forced, false));
        case(&mut group, threads, "failsafe", || failsafe_call(&failsafe, false));
        case(&mut group, threads, "recloser", || recloser_call(&recloser, false));
        group.finish();
    }
}

criterion_group!(benches, time_window, count_window, open);
criterion_main!(benches);
