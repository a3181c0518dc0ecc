//! levee-timer against the timers Rust services use today: tokio-util's `DelayQueue` (a slab
//! + wheel, `&mut self`) and tokio's own timer (`tokio::time::sleep`).
//!
//! Questions, one criterion group each (levee and the anchor side by side):
//! - `timer/insert_cancel_1m`: insert 1M timers with random deadlines within an hour, then
//!   cancel them all (a shop's order timeouts: almost all are cancelled).
//! - `timer/insert_expire_1m`: insert 1M, then let them all expire and drain them.
//! - `timer/sleep_register`: create a sleep, poll it once (registers it), drop it.
//! - `timer/schedule_cancel_2t`: 2 threads (the machine has 2 cores) each schedule and
//!   cancel timers on one shared service, vs 2 threads doing the same with tokio's timer.
//! - Memory: live bytes per pending timer at 1M and 10M, counted by
//!   `levee_workspace::CountingAllocator` (printed before the timing groups; run
//!   `cargo bench --bench timer -- memory` for the memory figures alone).
//!
//! `cargo bench --bench timer -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant as StdInstant};

use criterion::{Criterion, Throughput};
use levee_timer::{Precision, TimerService, TimingWheel};
use levee_workspace::CountingAllocator;
use levee_workspace::bench::slowest_thread;
use tokio::time::Instant;
use tokio_util::time::DelayQueue;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const HOUR_NS: u64 = 3_600_000_000_000;
const N: usize = 1_000_000;

/// Deterministic pseudo-random offsets within the next hour, in nanoseconds.
fn offsets(n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D) % HOUR_NS
        })
        .collect()
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

fn insert_cancel(c: &mut Criterion) {
    let offsets = offsets(N);
    let mut group = c.benchmark_group("timer/insert_cancel_1m");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);

    for (name, mode) in [("levee", Precision::Exact), ("levee_slack", Precision::Slack)] {
        let mut wheel = TimingWheel::builder().mode(mode).build().unwrap();
        let mut keys = Vec::with_capacity(N);
        let mut now = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, &off) in offsets.iter().enumerate() {
                    keys.push(wheel.insert(now + off, i as u64).unwrap());
                }
                for key in keys.drain(..) {
                    black_box(wheel.cancel(key));
                }
                now += 1_000_000; // time moves on between rounds
                wheel.advance(now).count()
            });
        });
    }

    let rt = paused_runtime();
    let _guard = rt.enter();
    let mut queue = DelayQueue::with_capacity(N);
    let mut keys = Vec::with_capacity(N);
    let base = Instant::now();
    group.bench_function("tokio_util_delay_queue", |b| {
        b.iter(|| {
            for (i, &off) in offsets.iter().enumerate() {
                keys.push(queue.insert_at(i as u64, base + Duration::from_nanos(off)));
            }
            for key in keys.drain(..) {
                black_box(queue.remove(&key));
            }
        });
    });
    group.finish();
}

fn insert_expire(c: &mut Criterion) {
    let offsets = offsets(N);
    let mut group = c.benchmark_group("timer/insert_expire_1m");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);

    for (name, mode) in [("levee", Precision::Exact), ("levee_slack", Precision::Slack)] {
        let mut wheel = TimingWheel::builder().mode(mode).build().unwrap();
        let mut now = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, &off) in offsets.iter().enumerate() {
                    wheel.insert(now + off, i as u64).unwrap();
                }
                now += 2 * HOUR_NS; // past every deadline, slack rounding included
                let fired = wheel.advance(now).count();
                assert_eq!(fired, N);
            });
        });
    }

    let rt = paused_runtime();
    let mut queue = DelayQueue::with_capacity(N);
    group.bench_function("tokio_util_delay_queue", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let base = Instant::now();
                    let started = StdInstant::now();
                    for (i, &off) in offsets.iter().enumerate() {
                        queue.insert_at(i as u64, base + Duration::from_nanos(off));
                    }
                    tokio::time::advance(Duration::from_nanos(2 * HOUR_NS)).await;
                    // poll_expired returns Pending when tokio's co-op budget runs out; awaiting
                    // each item lets the runtime refill it.
                    let mut fired = 0;
                    while let Some(e) = std::future::poll_fn(|cx| queue.poll_expired(cx)).await {
                        black_box(e);
                        fired += 1;
                    }
                    assert_eq!(fired, N);
                    total += started.elapsed();
                }
                total
            })
        });
    });
    group.finish();
}

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

fn sleep_register(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer/sleep_register");
    group.throughput(Throughput::Elements(1));
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let _guard = rt.enter();
    let timers: TimerService = TimerService::builder().build().unwrap();
    group.bench_function("levee", |b| {
        b.iter(|| {
            let sleep = pin!(timers.sleep(Duration::from_secs(1)));
            black_box(poll_once(sleep).is_pending())
        });
    });
    group.bench_function("tokio_sleep", |b| {
        b.iter(|| {
            let sleep = pin!(tokio::time::sleep(Duration::from_secs(1)));
            black_box(poll_once(sleep).is_pending())
        });
    });
    group.finish();
}

fn schedule_cancel_2t(c: &mut Criterion) {
    const THREADS: usize = 2;
    let mut group = c.benchmark_group("timer/schedule_cancel_2t");
    group.throughput(Throughput::Elements(THREADS as u64));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_time()
        .build()
        .unwrap();
    let timers: TimerService<u64> =
        TimerService::builder().runtime(rt.handle().clone()).build().unwrap();
    let handle = rt.handle().clone();

    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            slowest_thread(THREADS, iters, |_, i| {
                let h = timers.schedule_after(Duration::from_secs(1 + i % 64), i).unwrap();
                black_box(timers.cancel(h));
            })
        });
    });
    group.bench_function("levee_sleep", |b| {
        b.iter_custom(|iters| {
            slowest_thread(THREADS, iters, |_, i| {
                let _enter = handle.enter();
                let sleep = pin!(timers.sleep(Duration::from_secs(1 + i % 64)));
                black_box(poll_once(sleep).is_pending());
            })
        });
    });
    group.bench_function("tokio_sleep", |b| {
        b.iter_custom(|iters| {
            slowest_thread(THREADS, iters, |_, i| {
                let _enter = handle.enter();
                let sleep = pin!(tokio::time::sleep(Duration::from_secs(1 + i % 64)));
                black_box(poll_once(sleep).is_pending());
            })
        });
    });
    group.finish();
}

/// Live bytes per pending timer (value `u64`), measured around filling each structure.
fn memory_report() {
    let rt = paused_runtime();
    let _guard = rt.enter();
    println!("timer/memory: live bytes per pending timer (T = u64, 8 bytes)");
    println!("| case | levee | tokio-util DelayQueue | ratio |");
    for n in [1_000_000usize, 10_000_000] {
        let offsets = offsets(n);
        let measure = |fill: &dyn Fn() -> Box<dyn std::any::Any>| {
            let before = ALLOC.live_bytes();
            let held = fill();
            let bytes = ALLOC.live_bytes() - before;
            drop(held);
            bytes as f64 / n as f64
        };
        let wheel = measure(&|| {
            let mut w = TimingWheel::new();
            for (i, &off) in offsets.iter().enumerate() {
                w.insert(off, i as u64).unwrap();
            }
            Box::new(w)
        });
        let slack = measure(&|| {
            let mut w = TimingWheel::builder().mode(Precision::Slack).build().unwrap();
            for (i, &off) in offsets.iter().enumerate() {
                w.insert(off, i as u64).unwrap();
            }
            Box::new(w)
        });
        let service = measure(&|| {
            let timers: TimerService<u64> = TimerService::builder().build().unwrap();
            let base = timers.now();
            for (i, &off) in offsets.iter().enumerate() {
                timers.schedule(base + off, i as u64).unwrap();
            }
            Box::new(timers)
        });
        let queue = measure(&|| {
            let mut q = DelayQueue::new();
            let base = Instant::now();
            for (i, &off) in offsets.iter().enumerate() {
                q.insert_at(i as u64, base + Duration::from_nanos(off));
            }
            Box::new(q)
        });
        let m = n / 1_000_000;
        println!("| {m}M TimingWheel (exact) | {wheel:.1} | {queue:.1} | {:.2} |", wheel / queue);
        println!("| {m}M TimingWheel (slack) | {slack:.1} | {queue:.1} | {:.2} |", slack / queue);
        println!("| {m}M TimerService | {service:.1} | {queue:.1} | {:.2} |", service / queue);
    }
}

fn main() {
    // `cargo bench` passes flags (and their numeric values) and at most one filter word.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    if words.is_empty() || words.iter().any(|w| w.contains("memory")) {
        memory_report();
    }
    let mut c = Criterion::default().configure_from_args();
    insert_cancel(&mut c);
    insert_expire(&mut c);
    sleep_register(&mut c);
    schedule_cancel_2t(&mut c);
    c.final_summary();
}
