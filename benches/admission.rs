//! Issue 22, item 4: what the admission controller costs per request, next to a plain levee
//! `Bulkhead`. Each group runs both in one run, on the same thread(s), doing the same work
//! a request's guard does: take a place, then give it back.
//!
//! - `admission/acquire_release_1t`: `try_acquire` and drop the permit, one thread.
//!   `bulkhead`: a `Bulkhead` of 64 permits (a load and a CAS to take, a `fetch_sub` to
//!   give back). `admission`: an `AdmissionController` with `min_in_flight` 64 and the default
//!   FastClock (the TSC), so neither side ever refuses; its cost is the measurement the
//!   bulkhead does not do: a clock read and a `fetch_add` (plus the admitted counter's
//!   striped add) to admit, and on drop a clock read, two CAS on the current bucket's words
//!   and a `fetch_sub`. `admission_estimating`: `min_in_flight` 1 with one permit held
//!   outside the timed loop, so every admission also reads the cached estimate (one load;
//!   the estimate is rebuilt once per 100 ms bucket by a scan of the window) and, the
//!   requests here taking well under a microsecond, is shed: the refusal path.
//! - `admission/acquire_release_2t`: the same from two threads on one shared controller or
//!   bulkhead (two elements per iteration, the slower thread timed): both contend on the
//!   in-flight word and, for the controller, on the bucket's words.
//!
//! `cargo bench --bench admission`. The machine these were written on is shared: the
//! figures are preliminary until re-measured on a quiet one.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_limit::{AdmissionController, AdmissionSettings, Bulkhead};
use levee_workspace::bench::slowest_thread;

/// Never refuses below 64 in flight, as the bulkhead of 64 permits.
fn admission() -> AdmissionController {
    AdmissionSettings::new().min_in_flight(64).build().expect("valid settings")
}

fn acquire_release_1t(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission/acquire_release_1t");
    group.throughput(Throughput::Elements(1));
    let bulkhead = Bulkhead::new(64).expect("valid limit");
    group.bench_function("bulkhead", |b| {
        b.iter(|| {
            let permit = bulkhead.try_acquire().expect("free permit");
            black_box(&permit);
        })
    });
    let controller = admission();
    group.bench_function("admission", |b| {
        b.iter(|| {
            let permit = controller.try_acquire().expect("admitted");
            black_box(&permit);
        })
    });
    let estimating = AdmissionSettings::new().build().expect("valid settings");
    let _held = estimating.try_acquire().expect("the first is always admitted");
    group.bench_function("admission_estimating", |b| {
        b.iter(|| black_box(estimating.try_acquire().map(drop).is_ok()))
    });
    group.finish();
}

fn acquire_release_2t(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission/acquire_release_2t");
    group.throughput(Throughput::Elements(2));
    let bulkhead = Bulkhead::new(64).expect("valid limit");
    group.bench_function("bulkhead", |b| {
        b.iter_custom(|iters| {
            slowest_thread(2, iters, |_, _| {
                let permit = bulkhead.try_acquire().expect("free permit");
                black_box(&permit);
            })
        })
    });
    let controller = admission();
    group.bench_function("admission", |b| {
        b.iter_custom(|iters| {
            slowest_thread(2, iters, |_, _| {
                let permit = controller.try_acquire().expect("admitted");
                black_box(&permit);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, acquire_release_1t, acquire_release_2t);
criterion_main!(benches);
