//! levee-timer against the timers Rust services use today: tokio-util's `DelayQueue` (a slab
//! and a wheel, `&mut self`) and tokio's own timer (`tokio::time::sleep`), with tokio built
//! with its `parking_lot` feature (the root `Cargo.toml` turns it on for the benches).
//!
//! One criterion group per question, levee and the anchor doing the same work, timed the
//! same way (1 ms ticks on both sides, deadlines from one fixed-seed list):
//! - `timer/insert_cancel_1m`: insert 1M timers with deadlines within an hour, then cancel
//!   them all (a shop's order timeouts: almost all are cancelled). levee exact and slack
//!   (a cancelled timer never fires, so the precision changes nothing observable) vs
//!   `DelayQueue::with_capacity`.
//! - `timer/insert_expire_1m`: insert 1M, move the clock past them all, drain them. Timed:
//!   the inserts and the drain on both sides; not moving the clock (`tokio::time::advance`;
//!   the wheel has no clock). `DelayQueue` is drained inside `tokio::task::unconstrained`,
//!   so tokio's co-op budget never cuts its `poll_expired` short.
//! - `timer/insert_expire_1m_slack`: the same in slack mode, alone: slack fires up to 12.7 %
//!   late and `DelayQueue` has no such mode, so there is no like-for-like anchor.
//! - `timer/reset_1m`: move each of 1M pending timers to a new deadline (`reset` vs
//!   `DelayQueue::reset_at`).
//! - `timer/async_expire_100k`: async use on a paused current-thread runtime: schedule 100k
//!   timers within a minute, then take each as it fires in the same task: from
//!   `TimerService`'s `Expirations` stream (its driver task fires them) vs awaiting
//!   `DelayQueue::poll_expired`. Both run as ordinary tasks (co-op budget on both).
//! - `timer/sleep_register`: create a sleep, poll it once (registers it), drop it.
//! - `timer/sleep_2t`: the same on 2 threads (the machine has 2 cores), one shared timer
//!   (`TimerService` vs the runtime's timer).
//! - `timer/schedule_cancel_2t`: 2 threads schedule and cancel items on one `TimerService`
//!   vs on one `DelayQueue` behind a `parking_lot::Mutex` (the lock levee's shards use).
//!
//! Multi-thread cases time the slowest thread; each thread enters the runtime once before
//! the timed loop, on both sides (`slowest_thread_with`).
//!
//! Memory: live bytes per pending timer at 1M and 10M, counted by
//! `levee_workspace::CountingAllocator`, against `DelayQueue::with_capacity` (and, labelled as
//! such, a `DelayQueue` grown from `new()`, whose slab doubles). The wheel has no capacity
//! setting: it grows in chunks of 1024 entries and never holds more than one chunk spare.
//! Printed before the timing groups; `cargo bench --bench timer -- memory` prints it alone.
//!
//! `cargo bench --bench timer -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant as StdInstant};

use criterion::{Criterion, Throughput};
use levee_core::ManualClock;
use levee_timer::{Precision, TimerService, TimingWheel};
use levee_workspace::CountingAllocator;
use levee_workspace::bench::slowest_thread_with;
use tokio::time::Instant;
use tokio_util::time::DelayQueue;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const HOUR_NS: u64 = 3_600_000_000_000;
const N: usize = 1_000_000;

/// Deterministic pseudo-random offsets below `span` nanoseconds.
fn offsets_within(n: usize, span: u64, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D) % span
        })
        .collect()
}

/// Offsets within the next hour.
fn offsets(n: usize) -> Vec<u64> {
    offsets_within(n, HOUR_NS, 0x9E37_79B9_7F4A_7C15)
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
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, &off) in offsets.iter().enumerate() {
                    keys.push(wheel.insert(off, i as u64).unwrap());
                }
                for key in keys.drain(..) {
                    black_box(wheel.cancel(key));
                }
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
    // Past every deadline, slack rounding included.
    let past_all = 2 * HOUR_NS;
    let mut group = c.benchmark_group("timer/insert_expire_1m");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("levee", |b| {
        let mut wheel = TimingWheel::new();
        b.iter_custom(|iters| wheel_insert_expire(&mut wheel, &offsets, past_all, iters));
    });

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
                    total += started.elapsed();
                    // Moving the paused clock is not the queue's work: untimed.
                    tokio::time::advance(Duration::from_nanos(past_all)).await;
                    let started = StdInstant::now();
                    // Without the co-op budget, `poll_expired` hands out every due item
                    // in one go, as the wheel's `advance` does.
                    let fired = tokio::task::unconstrained(async {
                        let mut fired = 0;
                        while let Some(e) = std::future::poll_fn(|cx| queue.poll_expired(cx)).await
                        {
                            black_box(e);
                            fired += 1;
                        }
                        fired
                    })
                    .await;
                    total += started.elapsed();
                    assert_eq!(fired, N);
                }
                total
            })
        });
    });
    group.finish();

    // No anchor: DelayQueue has no mode that fires late by design.
    let mut group = c.benchmark_group("timer/insert_expire_1m_slack");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("levee_slack", |b| {
        let mut wheel = TimingWheel::builder().mode(Precision::Slack).build().unwrap();
        b.iter_custom(|iters| wheel_insert_expire(&mut wheel, &offsets, past_all, iters));
    });
    group.finish();
}

/// Inserts and drains, timed as the `DelayQueue` case is (inserts + drain). The wheel takes
/// `now` as an argument, so there is no clock to move between them.
fn wheel_insert_expire(
    wheel: &mut TimingWheel<u64>,
    offsets: &[u64],
    past_all: u64,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let base = wheel.time();
        let started = StdInstant::now();
        for (i, &off) in offsets.iter().enumerate() {
            wheel.insert(base + off, i as u64).unwrap();
        }
        total += started.elapsed();
        let started = StdInstant::now();
        let mut fired = 0;
        for e in wheel.advance(base + past_all) {
            black_box(e);
            fired += 1;
        }
        total += started.elapsed();
        assert_eq!(fired, offsets.len());
    }
    total
}

fn reset(c: &mut Criterion) {
    // Each iteration moves every timer to its deadline in the other list.
    let lists = [offsets(N), offsets_within(N, HOUR_NS, 0x2545_F491_4F6C_DD1D)];
    let mut group = c.benchmark_group("timer/reset_1m");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);

    let mut wheel = TimingWheel::new();
    let keys: Vec<_> =
        lists[0].iter().enumerate().map(|(i, &off)| wheel.insert(off, i as u64).unwrap()).collect();
    let mut round = 0;
    group.bench_function("levee", |b| {
        b.iter(|| {
            round += 1;
            for (key, &off) in keys.iter().zip(&lists[round % 2]) {
                wheel.reset(*key, off).unwrap();
            }
        });
    });

    let rt = paused_runtime();
    let _guard = rt.enter();
    let mut queue = DelayQueue::with_capacity(N);
    let base = Instant::now();
    let keys: Vec<_> = lists[0]
        .iter()
        .enumerate()
        .map(|(i, &off)| queue.insert_at(i as u64, base + Duration::from_nanos(off)))
        .collect();
    let mut round = 0;
    group.bench_function("tokio_util_delay_queue", |b| {
        b.iter(|| {
            round += 1;
            for (key, &off) in keys.iter().zip(&lists[round % 2]) {
                queue.reset_at(key, base + Duration::from_nanos(off));
            }
        });
    });
    group.finish();
}

fn async_expire(c: &mut Criterion) {
    const TIMERS: usize = 100_000;
    let offsets = offsets_within(TIMERS, 60_000_000_000, 0x9E37_79B9_7F4A_7C15);
    let mut group = c.benchmark_group("timer/async_expire_100k");
    group.throughput(Throughput::Elements(TIMERS as u64));
    group.sample_size(10);

    let rt = paused_runtime();
    let (timers, mut due) = rt.block_on(async {
        // A manual clock follows the paused runtime's time, as DelayQueue's tokio clock does.
        let timers: TimerService<u64, ManualClock> =
            TimerService::builder().clock(ManualClock::new()).build().unwrap();
        let due = timers.expirations().unwrap();
        (timers, due)
    });
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = StdInstant::now();
                for _ in 0..iters {
                    let base = timers.now();
                    for (i, &off) in offsets.iter().enumerate() {
                        timers.schedule(base + off, i as u64).unwrap();
                    }
                    for _ in 0..TIMERS {
                        black_box(due.recv().await.unwrap());
                    }
                }
                started.elapsed()
            })
        });
    });

    let mut queue = DelayQueue::with_capacity(TIMERS);
    group.bench_function("tokio_util_delay_queue", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = StdInstant::now();
                for _ in 0..iters {
                    let base = Instant::now();
                    for (i, &off) in offsets.iter().enumerate() {
                        queue.insert_at(i as u64, base + Duration::from_nanos(off));
                    }
                    for _ in 0..TIMERS {
                        let e = std::future::poll_fn(|cx| queue.poll_expired(cx)).await;
                        black_box(e.unwrap());
                    }
                }
                started.elapsed()
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

fn two_threads(c: &mut Criterion) {
    const THREADS: usize = 2;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_time()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let enter = |_thread| handle.enter();

    let mut group = c.benchmark_group("timer/sleep_2t");
    group.throughput(Throughput::Elements(THREADS as u64));
    let timers: TimerService<u64> =
        TimerService::builder().runtime(rt.handle().clone()).build().unwrap();
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            slowest_thread_with(THREADS, iters, enter, |_, i| {
                let sleep = pin!(timers.sleep(Duration::from_secs(1 + i % 64)));
                black_box(poll_once(sleep).is_pending());
            })
        });
    });
    group.bench_function("tokio_sleep", |b| {
        b.iter_custom(|iters| {
            slowest_thread_with(THREADS, iters, enter, |_, i| {
                let sleep = pin!(tokio::time::sleep(Duration::from_secs(1 + i % 64)));
                black_box(poll_once(sleep).is_pending());
            })
        });
    });
    group.finish();

    let mut group = c.benchmark_group("timer/schedule_cancel_2t");
    group.throughput(Throughput::Elements(THREADS as u64));
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            slowest_thread_with(THREADS, iters, enter, |_, i| {
                let h = timers.schedule_after(Duration::from_secs(1 + i % 64), i).unwrap();
                black_box(timers.cancel(h));
            })
        });
    });
    let queue = rt.block_on(async { parking_lot::Mutex::new(DelayQueue::new()) });
    group.bench_function("tokio_util_delay_queue_mutex", |b| {
        b.iter_custom(|iters| {
            slowest_thread_with(THREADS, iters, enter, |_, i| {
                let key = queue.lock().insert(i, Duration::from_secs(1 + i % 64));
                black_box(queue.lock().remove(&key));
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
    println!("| case | levee | tokio-util DelayQueue::with_capacity | ratio |");
    for n in [1_000_000usize, 10_000_000] {
        let offsets = offsets(n);
        let measure = |fill: &dyn Fn() -> Box<dyn std::any::Any>| {
            let before = ALLOC.live_bytes();
            let held = fill();
            let bytes = ALLOC.live_bytes() - before;
            drop(held);
            bytes as f64 / n as f64
        };
        let wheel = |mode| {
            measure(&|| {
                let mut w = TimingWheel::builder().mode(mode).build().unwrap();
                for (i, &off) in offsets.iter().enumerate() {
                    w.insert(off, i as u64).unwrap();
                }
                Box::new(w)
            })
        };
        let (exact, slack) = (wheel(Precision::Exact), wheel(Precision::Slack));
        let service = measure(&|| {
            let timers: TimerService<u64> = TimerService::builder().build().unwrap();
            let base = timers.now();
            for (i, &off) in offsets.iter().enumerate() {
                timers.schedule(base + off, i as u64).unwrap();
            }
            Box::new(timers)
        });
        let queue = |sized: bool| {
            measure(&|| {
                let mut q = if sized { DelayQueue::with_capacity(n) } else { DelayQueue::new() };
                let base = Instant::now();
                for (i, &off) in offsets.iter().enumerate() {
                    q.insert_at(i as u64, base + Duration::from_nanos(off));
                }
                Box::new(q)
            })
        };
        let (sized, grown) = (queue(true), queue(false));
        let m = n / 1_000_000;
        println!("| {m}M TimingWheel (exact) | {exact:.1} | {sized:.1} | {:.2} |", exact / sized);
        println!("| {m}M TimingWheel (slack) | {slack:.1} | {sized:.1} | {:.2} |", slack / sized);
        println!("| {m}M TimerService | {service:.1} | {sized:.1} | {:.2} |", service / sized);
        println!("| {m}M DelayQueue::new(), grown by doubling (no levee side) | | {grown:.1} | |");
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
    reset(&mut c);
    async_expire(&mut c);
    sleep_register(&mut c);
    two_threads(&mut c);
    c.final_summary();
}
