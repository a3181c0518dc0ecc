//! Channel throughput, bounded to 1024: is levee's ring at least as fast as crossbeam-channel?
//!
//! Groups (u64 messages, `Throughput::Elements` = messages, so criterion reports messages/s):
//! - `channel/try_send_try_recv_1t`: one thread, a `try_send` and a `try_recv` per message.
//! - `channel/spsc_bounded1024`: one producer thread, one consumer thread (blocking ends);
//!   async variants on a 2-worker tokio runtime, one producer task and one consumer task.
//! - `channel/mpmc_2p2c_bounded1024`: two producers and two consumers (4 threads on this
//!   2-core machine, so blocking and wake-ups are part of the measure). tokio's mpsc has a
//!   single consumer, so its row is 2 producers + 1 consumer task and says so in its name.
//!
//! Each sample spawns the threads (or tasks) once, releases them together with a barrier and
//! times until the slowest one finishes.
//!
//! `cargo bench --bench queue -- channel/ --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group};

const CAPACITY: usize = 1024;
/// Messages per criterion iteration.
const BATCH: u64 = 10_000;

/// Runs `producers` senders and `consumers` receivers over `total` messages on OS threads;
/// returns the time from the common start until the last thread finished.
fn run_threads<S, R>(
    producers: u64,
    consumers: u64,
    total: u64,
    (tx, rx): (S, R),
    send: fn(&S, u64),
    recv: fn(&R) -> u64,
) -> Duration
where
    S: Clone + Send,
    R: Clone + Send,
{
    let start = Barrier::new((producers + consumers + 1) as usize);
    thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..producers {
            let (tx, start) = (tx.clone(), &start);
            handles.push(s.spawn(move || {
                start.wait();
                for i in 0..total / producers {
                    send(&tx, i);
                }
            }));
        }
        for _ in 0..consumers {
            let (rx, start) = (rx.clone(), &start);
            handles.push(s.spawn(move || {
                start.wait();
                let mut sum = 0;
                for _ in 0..total / consumers {
                    sum += recv(&rx);
                }
                black_box(sum);
            }));
        }
        drop((tx, rx));
        start.wait();
        let began = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        began.elapsed()
    })
}

fn threads_case<S, R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (producers, consumers): (u64, u64),
    make: impl Fn() -> (S, R),
    send: fn(&S, u64),
    recv: fn(&R) -> u64,
) where
    S: Clone + Send,
    R: Clone + Send,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iters| run_threads(producers, consumers, iters * BATCH, make(), send, recv));
    });
}

/// The async counterpart of `run_threads`: tasks on a 2-worker tokio runtime.
fn run_tasks<S, R, SF, RF>(
    rt: &tokio::runtime::Runtime,
    producers: u64,
    consumers: u64,
    total: u64,
    (tx, rx): (S, R),
    send: fn(S, u64) -> SF,
    recv: fn(R, u64) -> RF,
) -> Duration
where
    S: Clone + Send + 'static,
    R: Clone + Send + 'static,
    SF: Future<Output = ()> + Send + 'static,
    RF: Future<Output = u64> + Send + 'static,
{
    rt.block_on(async move {
        let began = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..producers {
            tasks.push(tokio::spawn(send(tx.clone(), total / producers)));
        }
        let mut readers = Vec::new();
        for _ in 0..consumers {
            readers.push(tokio::spawn(recv(rx.clone(), total / consumers)));
        }
        drop((tx, rx));
        for t in tasks {
            t.await.unwrap();
        }
        for r in readers {
            black_box(r.await.unwrap());
        }
        began.elapsed()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

// Blocking ends ---------------------------------------------------------------------------

fn levee() -> (levee_queue::channel::Sender<u64>, levee_queue::channel::Receiver<u64>) {
    levee_queue::channel::bounded(CAPACITY).unwrap()
}
fn levee_send(tx: &levee_queue::channel::Sender<u64>, v: u64) {
    tx.send(v).unwrap();
}
fn levee_recv(rx: &levee_queue::channel::Receiver<u64>) -> u64 {
    rx.recv().unwrap()
}

fn crossbeam() -> (crossbeam_channel::Sender<u64>, crossbeam_channel::Receiver<u64>) {
    crossbeam_channel::bounded(CAPACITY)
}
fn crossbeam_send(tx: &crossbeam_channel::Sender<u64>, v: u64) {
    tx.send(v).unwrap();
}
fn crossbeam_recv(rx: &crossbeam_channel::Receiver<u64>) -> u64 {
    rx.recv().unwrap()
}

fn flume() -> (flume::Sender<u64>, flume::Receiver<u64>) {
    flume::bounded(CAPACITY)
}
fn flume_send(tx: &flume::Sender<u64>, v: u64) {
    tx.send(v).unwrap();
}
fn flume_recv(rx: &flume::Receiver<u64>) -> u64 {
    rx.recv().unwrap()
}

// Async ends ------------------------------------------------------------------------------

async fn levee_async_send(tx: levee_queue::channel::Sender<u64>, n: u64) {
    for i in 0..n {
        tx.send_async(i).await.unwrap();
    }
}
async fn levee_async_recv(rx: levee_queue::channel::Receiver<u64>, n: u64) -> u64 {
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv_async().await.unwrap();
    }
    sum
}

async fn flume_async_send(tx: flume::Sender<u64>, n: u64) {
    for i in 0..n {
        tx.send_async(i).await.unwrap();
    }
}
async fn flume_async_recv(rx: flume::Receiver<u64>, n: u64) -> u64 {
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv_async().await.unwrap();
    }
    sum
}

async fn tokio_send(tx: tokio::sync::mpsc::Sender<u64>, n: u64) {
    for i in 0..n {
        tx.send(i).await.unwrap();
    }
}

/// The single tokio receiver behind a clonable handle (only one consumer task uses it).
type TokioRx = std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<u64>>>;

async fn tokio_recv(rx: TokioRx, n: u64) -> u64 {
    let mut rx = rx.lock().await;
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    sum
}

fn tokio_mpsc() -> (tokio::sync::mpsc::Sender<u64>, TokioRx) {
    let (tx, rx) = tokio::sync::mpsc::channel(CAPACITY);
    (tx, std::sync::Arc::new(tokio::sync::Mutex::new(rx)))
}

fn async_case<S, R, SF, RF>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (producers, consumers): (u64, u64),
    make: impl Fn() -> (S, R),
    send: fn(S, u64) -> SF,
    recv: fn(R, u64) -> RF,
) where
    S: Clone + Send + 'static,
    R: Clone + Send + 'static,
    SF: Future<Output = ()> + Send + 'static,
    RF: Future<Output = u64> + Send + 'static,
{
    let rt = runtime();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            run_tasks(&rt, producers, consumers, iters * BATCH, make(), send, recv)
        });
    });
}

fn spsc(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel/spsc_bounded1024");
    group.throughput(Throughput::Elements(BATCH));
    let shape = (1, 1);
    threads_case(&mut group, "levee", shape, levee, levee_send, levee_recv);
    threads_case(&mut group, "crossbeam", shape, crossbeam, crossbeam_send, crossbeam_recv);
    threads_case(&mut group, "flume", shape, flume, flume_send, flume_recv);
    async_case(&mut group, "levee_async", shape, levee, levee_async_send, levee_async_recv);
    async_case(&mut group, "flume_async", shape, flume, flume_async_send, flume_async_recv);
    async_case(&mut group, "tokio_mpsc", shape, tokio_mpsc, tokio_send, tokio_recv);
    group.finish();
}

fn mpmc(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel/mpmc_2p2c_bounded1024");
    group.throughput(Throughput::Elements(BATCH));
    let shape = (2, 2);
    threads_case(&mut group, "levee", shape, levee, levee_send, levee_recv);
    threads_case(&mut group, "crossbeam", shape, crossbeam, crossbeam_send, crossbeam_recv);
    threads_case(&mut group, "flume", shape, flume, flume_send, flume_recv);
    async_case(&mut group, "levee_async", shape, levee, levee_async_send, levee_async_recv);
    async_case(&mut group, "flume_async", shape, flume, flume_async_send, flume_async_recv);
    async_case(&mut group, "tokio_mpsc_2p1c", (2, 1), tokio_mpsc, tokio_send, tokio_recv);
    group.finish();
}

/// One thread, `try_send` then `try_recv`: the bare cost of the two operations with no
/// contention and no scheduling (the least noisy question on a shared machine).
fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel/try_send_try_recv_1t");
    group.throughput(Throughput::Elements(1));
    let (tx, rx) = levee();
    group.bench_function("levee", |b| {
        b.iter(|| {
            tx.try_send(black_box(1)).unwrap();
            black_box(rx.try_recv().unwrap())
        });
    });
    let (tx, rx) = crossbeam();
    group.bench_function("crossbeam", |b| {
        b.iter(|| {
            tx.try_send(black_box(1)).unwrap();
            black_box(rx.try_recv().unwrap())
        });
    });
    let (tx, rx) = flume();
    group.bench_function("flume", |b| {
        b.iter(|| {
            tx.try_send(black_box(1)).unwrap();
            black_box(rx.try_recv().unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, uncontended, spsc, mpmc);
