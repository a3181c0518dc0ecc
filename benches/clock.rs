//! Is `SystemClock::now()` as cheap as `Instant::now()`? Every primitive reads the clock on its
//! hot path, so this decides whether the abstraction costs anything.
//!
//! `cargo bench --bench clock`

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_core::{Clock, FastClock, ManualClock, SystemClock};

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

criterion_group!(benches, now);
criterion_main!(benches);
