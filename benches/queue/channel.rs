//! Channel throughput: levee's channels against crossbeam-channel, flume, kanal and tokio's
//! mpsc, every side through one harness.
//!
//! Groups (u64 messages; `Throughput::Elements` = messages, so criterion reports messages/s):
//! - `channel/try_send_try_recv_1t`: one thread, a `try_send` and a `try_recv` per message.
//! - `channel/spsc_bounded1024`, `channel/mpsc_2p1c_bounded1024`,
//!   `channel/mpmc_2p2c_bounded1024`: producer and consumer threads with blocking ends. The
//!   2 + 2 case runs 4 threads on this 2-core machine, so blocking and wake-ups are part of
//!   what it measures.
//! - `channel/spsc_unbounded`, `channel/mpmc_2p2c_unbounded`: the same, unbounded.
//! - `channel/spsc_async_bounded1024`, `channel/mpsc_2p1c_async_bounded1024`,
//!   `channel/mpmc_2p2c_async_bounded1024`, `channel/spsc_async_unbounded`: one task per
//!   producer and consumer on a 2-worker tokio runtime. tokio's mpsc has one consumer, so it
//!   is only in the cases with one.
//!
//! The harness, the same for every side:
//! - Each side's send and receive loops are generic closures, monomorphized for that channel,
//!   so its operations are inlined into its own loop (no call through a function pointer).
//! - Threads are spawned once per case and reused by every sample. A sample releases them
//!   with a barrier; each thread reads the clock when released and when done, and the sample
//!   is the span from the first start to the last end. Thread start-up, the release's
//!   wake-ups and the joins are outside it. Tasks are spawned per sample and time themselves
//!   the same way (first poll to last message).
//! - Every sample is `iters` x 10,000 messages (flat sampling: all samples the same size), and
//!   every side uses its crate's default build, as its docs recommend.
//!
//! `cargo bench --bench queue -- channel/ --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread::{self, Scope};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group};

const CAPACITY: usize = 1024;
/// Messages per criterion iteration; divisible by every producer and consumer count.
const BATCH: u64 = 10_000;

/// The span of one sample: from the first worker's start to the last one's end.
#[derive(Default)]
struct Span {
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl Span {
    fn add(&mut self, start: Instant, end: Instant) {
        self.first_start = Some(self.first_start.map_or(start, |s| s.min(start)));
        self.last_end = Some(self.last_end.map_or(end, |e| e.max(end)));
    }

    fn take(&mut self) -> Duration {
        let span = std::mem::take(self);
        span.last_end.unwrap() - span.first_start.unwrap()
    }
}

/// Worker threads kept for a whole case: each sample hands them a message count and a
/// barrier releases them together.
struct Crew {
    /// Messages per sample (all producers together).
    total: AtomicU64,
    stop: AtomicBool,
    go: Barrier,
    done: Barrier,
    span: Mutex<Span>,
}

impl Crew {
    fn new(threads: usize) -> Self {
        Self {
            total: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            go: Barrier::new(threads + 1),
            done: Barrier::new(threads + 1),
            span: Mutex::new(Span::default()),
        }
    }

    /// One worker: waits for a sample, runs `work(total)` timed, reports, repeats.
    fn worker(&self, work: impl Fn(u64)) {
        loop {
            self.go.wait();
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let total = self.total.load(Ordering::Relaxed);
            let start = Instant::now();
            work(total);
            let end = Instant::now();
            self.span.lock().unwrap().add(start, end);
            self.done.wait();
        }
    }

    /// One sample of `total` messages; its span.
    fn run(&self, total: u64) -> Duration {
        self.total.store(total, Ordering::Relaxed);
        self.go.wait();
        self.done.wait();
        self.span.lock().unwrap().take()
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.go.wait();
    }
}

/// `producers` threads running `send_all(&tx, n)` and `consumers` threads running
/// `recv_all(&rx, n)` (each with its share `n` of a sample), kept for the whole case.
#[allow(clippy::too_many_arguments)]
fn threads_case<S, R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (producers, consumers): (u64, u64),
    (tx, rx): (S, R),
    send_all: impl Fn(&S, u64) + Sync,
    recv_all: impl Fn(&R, u64) -> u64 + Sync,
) where
    S: Clone + Send,
    R: Clone + Send,
{
    let crew = Crew::new((producers + consumers) as usize);
    thread::scope(|s: &Scope<'_, '_>| {
        let (crew, send_all, recv_all) = (&crew, &send_all, &recv_all);
        for _ in 0..producers {
            let tx = tx.clone();
            s.spawn(move || crew.worker(|total| send_all(&tx, total / producers)));
        }
        for _ in 0..consumers {
            let rx = rx.clone();
            s.spawn(move || {
                crew.worker(|total| {
                    black_box(recv_all(&rx, total / consumers));
                });
            });
        }
        group.bench_function(name, |b| b.iter_custom(|iters| crew.run(iters * BATCH)));
        crew.stop();
    });
}

/// Producers and consumers as tasks on `rt`, spawned per sample, each timing itself from its
/// first poll to its last message.
#[allow(clippy::too_many_arguments)]
fn async_case<S, R, SF, RF>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    (producers, consumers): (u64, u64),
    (tx, rx): (S, R),
    send_all: fn(S, u64) -> SF,
    recv_all: fn(R, u64) -> RF,
) where
    S: Clone + Send + 'static,
    R: Clone + Send + 'static,
    SF: Future<Output = ()> + Send + 'static,
    RF: Future<Output = u64> + Send + 'static,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let total = iters * BATCH;
            rt.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..producers {
                    tasks.push(tokio::spawn(timed(send_all(tx.clone(), total / producers))));
                }
                for _ in 0..consumers {
                    let recv = recv_all(rx.clone(), total / consumers);
                    tasks.push(tokio::spawn(timed(async move {
                        black_box(recv.await);
                    })));
                }
                let mut span = Span::default();
                for t in tasks {
                    let (start, end) = t.await.unwrap();
                    span.add(start, end);
                }
                span.take()
            })
        });
    });
}

/// Runs `work`, returning when it started (first poll) and ended.
async fn timed(work: impl Future<Output = ()>) -> (Instant, Instant) {
    let start = Instant::now();
    work.await;
    (start, Instant::now())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

/// The blocking ends of one crate's channel, as the harness drives them.
macro_rules! blocking {
    ($send_all:ident, $recv_all:ident, $tx:ty, $rx:ty) => {
        fn $send_all(tx: &$tx, n: u64) {
            for i in 0..n {
                tx.send(i).unwrap();
            }
        }
        fn $recv_all(rx: &$rx, n: u64) -> u64 {
            let mut sum = 0;
            for _ in 0..n {
                sum += rx.recv().unwrap();
            }
            sum
        }
    };
}

blocking!(
    levee_send,
    levee_recv,
    levee_queue::channel::Sender<u64>,
    levee_queue::channel::Receiver<u64>
);
blocking!(
    crossbeam_send,
    crossbeam_recv,
    crossbeam_channel::Sender<u64>,
    crossbeam_channel::Receiver<u64>
);
blocking!(flume_send, flume_recv, flume::Sender<u64>, flume::Receiver<u64>);
blocking!(kanal_send, kanal_recv, kanal::Sender<u64>, kanal::Receiver<u64>);

/// One group of thread cases: every crate's channel from `make_*`, the same shape.
fn blocking_group(c: &mut Criterion, name: &str, shape: (u64, u64), capacity: Option<usize>) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH));
    group.sampling_mode(SamplingMode::Flat);
    let levee = match capacity {
        Some(cap) => levee_queue::channel::bounded(cap).unwrap(),
        None => levee_queue::channel::unbounded(),
    };
    threads_case(&mut group, "levee", shape, levee, levee_send, levee_recv);
    let crossbeam = match capacity {
        Some(cap) => crossbeam_channel::bounded(cap),
        None => crossbeam_channel::unbounded(),
    };
    threads_case(&mut group, "crossbeam", shape, crossbeam, crossbeam_send, crossbeam_recv);
    let flume = match capacity {
        Some(cap) => flume::bounded(cap),
        None => flume::unbounded(),
    };
    threads_case(&mut group, "flume", shape, flume, flume_send, flume_recv);
    let kanal = match capacity {
        Some(cap) => kanal::bounded(cap),
        None => kanal::unbounded(),
    };
    threads_case(&mut group, "kanal", shape, kanal, kanal_send, kanal_recv);
    group.finish();
}

fn blocking_cases(c: &mut Criterion) {
    blocking_group(c, "channel/spsc_bounded1024", (1, 1), Some(CAPACITY));
    blocking_group(c, "channel/mpsc_2p1c_bounded1024", (2, 1), Some(CAPACITY));
    blocking_group(c, "channel/mpmc_2p2c_bounded1024", (2, 2), Some(CAPACITY));
    blocking_group(c, "channel/spsc_unbounded", (1, 1), None);
    blocking_group(c, "channel/mpmc_2p2c_unbounded", (2, 2), None);
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

async fn kanal_async_send(tx: kanal::AsyncSender<u64>, n: u64) {
    for i in 0..n {
        tx.send(i).await.unwrap();
    }
}
async fn kanal_async_recv(rx: kanal::AsyncReceiver<u64>, n: u64) -> u64 {
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    sum
}

async fn tokio_send(tx: tokio::sync::mpsc::Sender<u64>, n: u64) {
    for i in 0..n {
        tx.send(i).await.unwrap();
    }
}

/// tokio's single receiver behind a clonable handle: the one consumer task locks it once per
/// sample, outside its loop.
type Shared<R> = std::sync::Arc<tokio::sync::Mutex<R>>;

async fn tokio_recv(rx: Shared<tokio::sync::mpsc::Receiver<u64>>, n: u64) -> u64 {
    let mut rx = rx.lock().await;
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    sum
}

fn tokio_mpsc() -> (tokio::sync::mpsc::Sender<u64>, Shared<tokio::sync::mpsc::Receiver<u64>>) {
    let (tx, rx) = tokio::sync::mpsc::channel(CAPACITY);
    (tx, std::sync::Arc::new(tokio::sync::Mutex::new(rx)))
}

// Unbounded: sending never waits, so each crate's plain `send` (kanal's is async).

async fn levee_unbounded_send(tx: levee_queue::channel::Sender<u64>, n: u64) {
    for i in 0..n {
        tx.send(i).unwrap();
    }
}
async fn flume_unbounded_send(tx: flume::Sender<u64>, n: u64) {
    for i in 0..n {
        tx.send(i).unwrap();
    }
}
async fn tokio_unbounded_send(tx: tokio::sync::mpsc::UnboundedSender<u64>, n: u64) {
    for i in 0..n {
        tx.send(i).unwrap();
    }
}
async fn tokio_unbounded_recv(
    rx: Shared<tokio::sync::mpsc::UnboundedReceiver<u64>>,
    n: u64,
) -> u64 {
    let mut rx = rx.lock().await;
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    sum
}

fn async_group(c: &mut Criterion, name: &str, shape: (u64, u64)) {
    let rt = runtime();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH));
    group.sampling_mode(SamplingMode::Flat);
    let levee = levee_queue::channel::bounded(CAPACITY).unwrap();
    async_case(&mut group, &rt, "levee", shape, levee, levee_async_send, levee_async_recv);
    let flume = flume::bounded(CAPACITY);
    async_case(&mut group, &rt, "flume", shape, flume, flume_async_send, flume_async_recv);
    let kanal = kanal::bounded_async(CAPACITY);
    async_case(&mut group, &rt, "kanal", shape, kanal, kanal_async_send, kanal_async_recv);
    if shape.1 == 1 {
        let tokio = tokio_mpsc();
        async_case(&mut group, &rt, "tokio_mpsc", shape, tokio, tokio_send, tokio_recv);
    }
    group.finish();
}

fn async_cases(c: &mut Criterion) {
    async_group(c, "channel/spsc_async_bounded1024", (1, 1));
    async_group(c, "channel/mpsc_2p1c_async_bounded1024", (2, 1));
    async_group(c, "channel/mpmc_2p2c_async_bounded1024", (2, 2));

    let rt = runtime();
    let mut group = c.benchmark_group("channel/spsc_async_unbounded");
    group.throughput(Throughput::Elements(BATCH));
    group.sampling_mode(SamplingMode::Flat);
    let shape = (1, 1);
    let levee = levee_queue::channel::unbounded();
    async_case(&mut group, &rt, "levee", shape, levee, levee_unbounded_send, levee_async_recv);
    let flume = flume::unbounded();
    async_case(&mut group, &rt, "flume", shape, flume, flume_unbounded_send, flume_async_recv);
    let kanal = kanal::unbounded_async();
    async_case(&mut group, &rt, "kanal", shape, kanal, kanal_async_send, kanal_async_recv);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let tokio = (tx, std::sync::Arc::new(tokio::sync::Mutex::new(rx)));
    let (send, recv) = (tokio_unbounded_send, tokio_unbounded_recv);
    async_case(&mut group, &rt, "tokio_mpsc", shape, tokio, send, recv);
    group.finish();
}

/// One thread, `try_send` then `try_recv`: the bare cost of the two operations with no
/// contention and no scheduling (the least noisy question on a shared machine).
fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("channel/try_send_try_recv_1t");
    group.throughput(Throughput::Elements(1));
    let (tx, rx) = levee_queue::channel::bounded(CAPACITY).unwrap();
    group.bench_function("levee", |b| {
        b.iter(|| {
            tx.try_send(black_box(1u64)).unwrap();
            black_box(rx.try_recv().unwrap())
        });
    });
    let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
    group.bench_function("crossbeam", |b| {
        b.iter(|| {
            tx.try_send(black_box(1u64)).unwrap();
            black_box(rx.try_recv().unwrap())
        });
    });
    let (tx, rx) = flume::bounded(CAPACITY);
    group.bench_function("flume", |b| {
        b.iter(|| {
            tx.try_send(black_box(1u64)).unwrap();
            black_box(rx.try_recv().unwrap())
        });
    });
    // kanal's `try_send` reports a full channel as `Ok(false)` (never here: one message at
    // a time) and `try_recv` an empty one as `Ok(None)`.
    let (tx, rx) = kanal::bounded(CAPACITY);
    group.bench_function("kanal", |b| {
        b.iter(|| {
            assert!(tx.try_send(black_box(1u64)).unwrap());
            black_box(rx.try_recv().unwrap().unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, uncontended, blocking_cases, async_cases);
