//! Is `SystemClock::now()` as cheap as `Instant::now()`? Every primitive reads the clock on its
//! hot path, so this decides whether the abstraction costs anything.
//!
//! - `clock/now`: a precise reading: levee's clocks next to `Instant::now()` and quanta's
//!   TSC clock (`levee_manual_clock`, a test clock, has no anchor).
//! - `clock/now_coarse`: a reading kept fresh by a background thread every millisecond,
//!   read with one load: levee's `CoarseClock::now()` against quanta's `Clock::recent()`
//!   with its `Upkeep` thread at the same period (governor's `QuantaUpkeepClock` is that).
//!
//! `cargo bench --bench clock`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_core::{Clock, CoarseClock, FastClock, ManualClock, SystemClock};

fn now(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock/now");
    group.throughput(Throughput::Elements(1));
    let system = SystemClock;
    group.bench_function("levee_system_clock", |b| b.iter(|| black_box(system.now())));
    group.bench_function("std_instant", |b| b.iter(|| black_box(Instant::now())));
    let fast = FastClock;
    group.bench_function("levee_fast_clock", |b| b.iter(|| black_box(fast.now())));
    let quanta = quanta::Clock::new();
    group.bench_function("quanta_now", |b| b.iter(|| black_box(quanta.now())));
    let manual = ManualClock::new();
    group.bench_function("levee_manual_clock", |b| b.iter(|| black_box(manual.now())));
    group.finish();
}

fn now_coarse(c: &mut Criterion) {
    const PERIOD: Duration = Duration::from_millis(1);
    let mut group = c.benchmark_group("clock/now_coarse");
    group.throughput(Throughput::Elements(1));
    let coarse = CoarseClock::with_resolution(PERIOD).expect("updater thread");
    group.bench_function("levee_coarse_clock", |b| b.iter(|| black_box(coarse.now())));
    let _upkeep = quanta::Upkeep::new(PERIOD).start().expect("upkeep thread");
    let quanta = quanta::Clock::new();
    group.bench_function("quanta_recent", |b| b.iter(|| black_box(quanta.recent())));
    group.finish();
}

criterion_group!(benches, now, now_coarse);
criterion_main!(benches);
