//! Issue 22, item 4: what reading a reconfigurable primitive costs next to a fixed one.
//! Each group runs both read paths in one run, on the same clock and the same work:
//!
//! - `reconfig/limiter_check_1t`: `RateLimiter::check` on a quota that admits every check
//!   (the full path: clock read, load, CAS). `fixed` is the pre-issue-22 check path
//!   (`levee_limit::baseline::FixedRateLimiter`: the `Gcra` beside the state word);
//!   `reconfigurable` is today's `RateLimiter` as built; `reconfigured` is one whose quota was
//!   changed three times (the check reads the newest of four epochs).
//! - `reconfig/limiter_check_at_1t`: the same with the time handed in (`check_at`), which
//!   takes the clock read out and leaves only what the two paths do differently.
//! - `reconfig/limiter_check_2t`: `check` from two threads on one limiter (two elements per
//!   iteration, the slower thread timed).
//! - `reconfig/breaker_call_1t`: a successful call through a closed count-window breaker,
//!   as built and after a `reconfigure` (the rules are read through the same
//!   `levee_core::sync::Retained` either way; the before/after of that change is in the
//!   report of the branch that made it, measured with `breaker/count_window_1t`).
//!
//! `cargo bench --bench reconfig`. The machine these were written on is shared: the figures
//! are preliminary until re-measured on a quiet one.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_breaker::{BreakerSettings, CircuitBreaker, SlidingWindow};
use levee_limit::baseline::FixedRateLimiter;
use levee_limit::{Quota, RateLimiter};
use levee_workspace::bench::slowest_thread;

/// Admits every check: one cell per nanosecond, a burst of about four seconds.
fn open_quota() -> Quota {
    Quota::per_second(1_000_000_000).with_burst(u32::MAX)
}

fn reconfigured() -> RateLimiter {
    let limiter = RateLimiter::new(open_quota()).expect("valid quota");
    for burst in [u32::MAX - 2, u32::MAX - 1, u32::MAX] {
        limiter.reconfigure(open_quota().with_burst(burst)).expect("valid quota");
    }
    assert_eq!(limiter.quotas_kept(), 4);
    limiter
}

fn limiter_check_1t(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconfig/limiter_check_1t");
    group.throughput(Throughput::Elements(1));
    let fixed = FixedRateLimiter::new(open_quota()).expect("valid quota");
    group.bench_function("fixed", |b| b.iter(|| black_box(fixed.check().is_ok())));
    let live = RateLimiter::new(open_quota()).expect("valid quota");
    group.bench_function("reconfigurable", |b| b.iter(|| black_box(live.check().is_ok())));
    let changed = reconfigured();
    group.bench_function("reconfigured", |b| b.iter(|| black_box(changed.check().is_ok())));
    group.finish();
}

fn limiter_check_at_1t(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconfig/limiter_check_at_1t");
    group.throughput(Throughput::Elements(1));
    // A reading that moves 1 ns per check, so every check admits on both sides.
    let fixed = FixedRateLimiter::new(open_quota()).expect("valid quota");
    let mut now = 0u64;
    group.bench_function("fixed", |b| {
        b.iter(|| {
            now += 1;
            black_box(fixed.check_at(black_box(now)).is_ok())
        })
    });
    let live = RateLimiter::new(open_quota()).expect("valid quota");
    let mut now = 0u64;
    group.bench_function("reconfigurable", |b| {
        b.iter(|| {
            now += 1;
            black_box(live.check_at(black_box(now)).is_ok())
        })
    });
    let changed = reconfigured();
    let mut now = 0u64;
    group.bench_function("reconfigured", |b| {
        b.iter(|| {
            now += 1;
            black_box(changed.check_at(black_box(now)).is_ok())
        })
    });
    group.finish();
}

fn limiter_check_2t(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconfig/limiter_check_2t");
    group.throughput(Throughput::Elements(2));
    let fixed = FixedRateLimiter::new(open_quota()).expect("valid quota");
    group.bench_function("fixed", |b| {
        b.iter_custom(|iters| {
            slowest_thread(2, iters, |_, _| {
                black_box(fixed.check().is_ok());
            })
        })
    });
    let live = RateLimiter::new(open_quota()).expect("valid quota");
    group.bench_function("reconfigurable", |b| {
        b.iter_custom(|iters| {
            slowest_thread(2, iters, |_, _| {
                black_box(live.check().is_ok());
            })
        })
    });
    group.finish();
}

fn breaker_settings() -> BreakerSettings {
    BreakerSettings { window: SlidingWindow::count(100), ..Default::default() }
}

fn breaker_call_1t(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconfig/breaker_call_1t");
    group.throughput(Throughput::Elements(1));
    let built = CircuitBreaker::from_settings(breaker_settings()).expect("valid settings");
    group.bench_function("built", |b| {
        b.iter(|| drop(black_box(built.call(|| Ok::<_, ()>(black_box(1u64))))))
    });
    let changed = CircuitBreaker::from_settings(breaker_settings()).expect("valid settings");
    let mut settings = breaker_settings();
    settings.open_wait = levee_breaker::OpenWait::fixed(Duration::from_secs(30));
    changed.reconfigure(settings).expect("valid settings");
    group.bench_function("reconfigured", |b| {
        b.iter(|| drop(black_box(changed.call(|| Ok::<_, ()>(black_box(1u64))))))
    });
    group.finish();
}

criterion_group!(benches, limiter_check_1t, limiter_check_at_1t, limiter_check_2t, breaker_call_1t);
criterion_main!(benches);
