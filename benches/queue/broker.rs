//! How fast is the in-process broker's publish -> receive -> ack, and what does at-least-once
//! delivery (leases, acks, redelivery bookkeeping) cost next to a raw MPMC channel?
//!
//! `cargo bench --bench queue -- broker`
//!
//! - `queue/broker_2c`: one publisher thread, one subscription, two consumer threads that
//!   receive in batches and ack every message; the anchors move the same `u64`s through a
//!   bounded channel with two receivers and no ack (`flume`, `crossbeam-channel`). Three
//!   threads on the 2-core machine; time is the slowest thread's, from a barrier to the last
//!   ack.
//! - `queue/broker_2c_async`: the same with tokio tasks on a 2-worker runtime
//!   (`publish().await`, `receive().await`), against flume's async API.
//! - `queue/broker_latency`: not a criterion group. Publishes at a fixed rate to two async
//!   consumers and prints end-to-end latency percentiles (publish to ack for levee, send to
//!   receive for flume), measured by `LatencyRecorder`.

use std::sync::Arc;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use levee_core::{Clock, FastClock, LatencyRecorder};
use levee_queue::broker::{InProcessBroker, Message, Overflow, SubscriptionConfig};

const CAPACITY: usize = 4096;
const BATCH: usize = 64;

fn config() -> SubscriptionConfig {
    SubscriptionConfig::new("bench")
        .max_backlog(CAPACITY)
        .overflow(Overflow::Wait)
        .max_in_flight_per_consumer(BATCH * 4)
        .ack_wait(Duration::from_secs(60))
}

/// One publisher thread and two consumer threads through the broker; returns the elapsed
/// time to the last ack.
fn levee_threads(messages: u64) -> Duration {
    let broker = InProcessBroker::<u64>::new();
    let sub = broker.subscribe("bench", config()).expect("valid config");
    let topic = broker.topic("bench").expect("created by subscribe");
    let acked = AtomicU64::new(0);
    let barrier = Barrier::new(3);
    let start = std::sync::OnceLock::new();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let consumer = sub.consumer();
            let (acked, barrier) = (&acked, &barrier);
            s.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                barrier.wait();
                while acked.load(Ordering::Relaxed) < messages {
                    consumer.try_receive_into(BATCH, &mut batch).expect("open");
                    if batch.is_empty() {
                        std::thread::yield_now();
                        continue;
                    }
                    let n = consumer.ack_all(&mut batch).expect("owned") as u64;
                    acked.fetch_add(n, Ordering::Relaxed);
                }
            });
        }
        let (topic, barrier, start) = (&topic, &barrier, &start);
        s.spawn(move || {
            barrier.wait();
            let _ = start.set(Instant::now());
            for i in 0..messages {
                let mut msg = Message::new(i);
                loop {
                    match topic.try_publish(msg) {
                        Ok(_) => break,
                        Err(e) => {
                            msg = e.message;
                            std::thread::yield_now();
                        }
                    }
                }
            }
        });
    });
    start.get().expect("publisher ran").elapsed()
}

/// The anchors: one sender thread and two receiver threads through a bounded channel, no
/// ack; returns the elapsed time from the first send to the last message received.
fn channel_threads<Tx: Send, Rx: Clone + Send>(
    messages: u64,
    (tx, rx): (Tx, Rx),
    send: impl Fn(&Tx, u64) + Sync,
    recv: impl Fn(&Rx) -> bool + Sync,
) -> Duration {
    let received = AtomicU64::new(0);
    let barrier = Barrier::new(3);
    let start = std::sync::OnceLock::new();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (rx, received, barrier, recv) = (rx.clone(), &received, &barrier, &recv);
            s.spawn(move || {
                barrier.wait();
                while recv(&rx) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let (barrier, start, send) = (&barrier, &start, &send);
        s.spawn(move || {
            barrier.wait();
            let _ = start.set(Instant::now());
            for i in 0..messages {
                send(&tx, i);
            }
        });
    });
    assert_eq!(received.load(Ordering::Relaxed), messages);
    start.get().expect("sender ran").elapsed()
}

fn flume_threads(messages: u64) -> Duration {
    channel_threads(
        messages,
        flume::bounded::<u64>(CAPACITY),
        |tx, v| tx.send(v).expect("receivers alive"),
        |rx| rx.recv().is_ok(),
    )
}

fn crossbeam_threads(messages: u64) -> Duration {
    channel_threads(
        messages,
        crossbeam_channel::bounded::<u64>(CAPACITY),
        |tx, v| tx.send(v).expect("receivers alive"),
        |rx| rx.recv().is_ok(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime")
}

fn levee_async(rt: &tokio::runtime::Runtime, messages: u64) -> Duration {
    rt.block_on(async {
        let broker = InProcessBroker::<u64>::new();
        let sub = broker.subscribe("bench", config()).expect("valid config");
        let topic = broker.topic("bench").expect("created by subscribe");
        let acked = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let consumer = sub.consumer();
                let acked = Arc::clone(&acked);
                let broker = broker.clone();
                tokio::spawn(async move {
                    let mut batch = Vec::with_capacity(BATCH);
                    while acked.load(Ordering::Relaxed) < messages {
                        match consumer.receive_into(BATCH, &mut batch).await {
                            Ok(_) => {}
                            Err(_) => break,
                        }
                        let n = consumer.ack_all(&mut batch).expect("owned") as u64;
                        if acked.fetch_add(n, Ordering::Relaxed) + n >= messages {
                            // All acked: closing wakes the sibling waiting in `receive`.
                            broker.close();
                        }
                    }
                })
            })
            .collect();
        for i in 0..messages {
            topic.publish(Message::new(i)).await.expect("open");
        }
        for c in consumers {
            c.await.expect("consumer task");
        }
        start.elapsed()
    })
}

fn flume_async(rt: &tokio::runtime::Runtime, messages: u64) -> Duration {
    rt.block_on(async {
        let (tx, rx) = flume::bounded::<u64>(CAPACITY);
        let start = Instant::now();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while rx.recv_async().await.is_ok() {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        drop(rx);
        for i in 0..messages {
            tx.send_async(i).await.expect("receivers alive");
        }
        drop(tx);
        let mut total = 0;
        for c in consumers {
            total += c.await.expect("consumer task");
        }
        assert_eq!(total, messages);
        start.elapsed()
    })
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue/broker_2c");
    group.throughput(Throughput::Elements(1));
    group.bench_function("levee", |b| b.iter_custom(levee_threads));
    group.bench_function("flume_no_ack", |b| b.iter_custom(flume_threads));
    group.bench_function("crossbeam_channel_no_ack", |b| b.iter_custom(crossbeam_threads));
    group.finish();

    let rt = runtime();
    let mut group = c.benchmark_group("queue/broker_2c_async");
    group.throughput(Throughput::Elements(1));
    group.bench_function("levee", |b| b.iter_custom(|n| levee_async(&rt, n)));
    group.bench_function("flume_no_ack", |b| b.iter_custom(|n| flume_async(&rt, n)));
    group.finish();
}

criterion_group!(benches, throughput);

const RATE: u64 = 50_000;
const LATENCY_MESSAGES: u64 = 100_000;

/// Publishes `LATENCY_MESSAGES` at `RATE` per second from a std thread (spinning, yielding,
/// until each send time) and calls `publish(i, now)`.
fn paced(mut publish: impl FnMut(u64, u64)) {
    let clock = FastClock;
    let interval = 1_000_000_000 / RATE;
    let start = clock.now();
    for i in 0..LATENCY_MESSAGES {
        let due = start + i * interval;
        while clock.now() < due {
            std::thread::yield_now();
        }
        publish(i, clock.now());
    }
}

fn levee_latency(rt: &tokio::runtime::Runtime) -> levee_core::LatencySnapshot {
    let broker = InProcessBroker::<u64>::new();
    let sub = broker.subscribe("bench", config()).expect("valid config");
    let topic = broker.topic("bench").expect("created by subscribe");
    let acked = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (consumer, acked, broker) = (sub.consumer(), Arc::clone(&acked), broker.clone());
            rt.spawn(async move {
                let mut batch = Vec::with_capacity(BATCH);
                while consumer.receive_into(BATCH, &mut batch).await.is_ok() {
                    let n = batch.len() as u64;
                    for d in batch.drain(..) {
                        d.ack().expect("owned");
                    }
                    if acked.fetch_add(n, Ordering::Relaxed) + n >= LATENCY_MESSAGES {
                        broker.close();
                    }
                }
            })
        })
        .collect();
    paced(|i, _| {
        topic.try_publish(Message::new(i)).expect("room at this rate");
    });
    for c in consumers {
        rt.block_on(c).expect("consumer task");
    }
    sub.latency()
}

fn flume_latency(rt: &tokio::runtime::Runtime) -> levee_core::LatencySnapshot {
    let (tx, rx) = flume::bounded::<u64>(CAPACITY);
    let latency = Arc::new(LatencyRecorder::new());
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (rx, latency) = (rx.clone(), Arc::clone(&latency));
            rt.spawn(async move {
                while let Ok(sent) = rx.recv_async().await {
                    latency.record_nanos(FastClock.now().saturating_sub(sent));
                }
            })
        })
        .collect();
    drop(rx);
    paced(|_, now| tx.send(now).expect("receivers alive"));
    drop(tx);
    for c in consumers {
        rt.block_on(c).expect("consumer task");
    }
    latency.snapshot()
}

fn latency_report() {
    let rt = runtime();
    println!("queue/broker_latency: {RATE} msg/s, {LATENCY_MESSAGES} messages, 2 async consumers");
    for (name, snap) in [
        ("levee (publish -> ack)", levee_latency(&rt)),
        ("flume_no_ack (send -> recv)", flume_latency(&rt)),
    ] {
        println!(
            "  {name:<28} p50 {:>9.1?}  p90 {:>9.1?}  p99 {:>9.1?}  p99.9 {:>9.1?}  max {:>9.1?}  (n={})",
            snap.p50, snap.p90, snap.p99, snap.p999, snap.max, snap.count
        );
    }
}

/// Prints the latency report when the run's name filters (if any) ask for it.
pub(crate) fn latency_if_wanted() {
    // Positional arguments (not options, not option values) are criterion's name filters.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    let wants =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if std::env::args().any(|a| a == "--bench") && wants("queue/broker_latency") {
        latency_report();
    }
}
