//! The durable broker (issue 15): publish -> confirm throughput with an fsync before every
//! confirm (group commit; and, for what the weaker settings save, with an fsync every 100 ms
//! and with none), publish -> deliver -> ack with 2 consumers, 100-byte and 1 KiB
//! payloads; publish -> confirm latency at 50 000 msg/s; recovery of a million messages
//! lives in `crates/levee-queue/tests/durable_recovery.rs` (release-only, run by CI).
//!
//! Publishers are 512 concurrent tasks on a 2-worker tokio runtime, each awaiting its own
//! confirmation, so one fsync confirms everything that arrived while the previous one ran.
//! The log lives in a temporary directory on the machine's disk.
//!
//! The anchor is NATS JetStream (file storage, explicit acks, loopback), the same work in
//! the same harness: 512 concurrent `publish(..).await?.await` (confirmed when stored), 2
//! tasks consuming one durable pull consumer and acking each message. Two servers: one at
//! JetStream's default (`sync_interval` 2 min: it does not fsync before it confirms) and one
//! with `sync_interval: always`. `benches/durable-nats.sh` starts both on free loopback
//! ports and runs this bench with `LEVEE_BENCH_NATS_URL` / `LEVEE_BENCH_NATS_ALWAYS_URL`;
//! without them the JetStream rows are skipped (with a message).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use levee_queue::broker::{Message, SubscriptionConfig};
use levee_queue::durable::{DurableBroker, DurableSettings, FsyncPolicy};

const PUBLISHERS: u64 = 512;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> DurableBroker<Vec<u8>> {
    DurableBroker::open(dir, DurableSettings::new().fsync(fsync)).unwrap()
}

fn config() -> SubscriptionConfig {
    SubscriptionConfig::new("s").max_backlog(1 << 24).max_in_flight_per_consumer(4096)
}

/// Publishes `n` messages of `size` bytes from `PUBLISHERS` tasks; returns the wall time.
async fn publish_all(broker: &DurableBroker<Vec<u8>>, n: u64, size: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|t| {
            let broker = broker.clone();
            tokio::spawn(async move {
                for _ in (t..n).step_by(PUBLISHERS as usize) {
                    broker.publish("t", Message::new(vec![7u8; size])).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// The JetStream servers the script started: (row name, url).
fn nats_servers() -> Vec<(&'static str, String)> {
    let mut servers = Vec::new();
    for (name, var) in [
        ("jetstream_default", "LEVEE_BENCH_NATS_URL"),
        ("jetstream_sync_always", "LEVEE_BENCH_NATS_ALWAYS_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => servers.push((name, url)),
            _ => eprintln!("skipped: {name} rows need {var} (run benches/durable-nats.sh)"),
        }
    }
    servers
}

/// A fresh file-storage stream `BENCH` on `bench.>`.
async fn nats_stream(url: &str) -> (jetstream::Context, stream::Stream) {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let _ = js.delete_stream("BENCH").await;
    let stream = js
        .create_stream(stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    (js, stream)
}

async fn nats_publish_all(js: &jetstream::Context, n: u64, size: usize) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|t| {
            let js = js.clone();
            tokio::spawn(async move {
                for _ in (t..n).step_by(PUBLISHERS as usize) {
                    let payload = bytes::Bytes::from(vec![7u8; size]);
                    js.publish("bench.x", payload).await.unwrap().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn publish_confirm(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("durable/publish_confirm");
    g.sample_size(10);
    for size in [100usize, 1024] {
        g.throughput(Throughput::Elements(1));
        // The three durability settings (README "Durability"): what each costs.
        for (name, fsync) in [
            ("levee_fsync_always", FsyncPolicy::Always),
            ("levee_fsync_every_100ms", FsyncPolicy::EveryMillis(100)),
            ("levee_fsync_never", FsyncPolicy::Never),
        ] {
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    let dir = tempfile::tempdir().unwrap();
                    let broker = open(dir.path(), fsync);
                    rt.block_on(async {
                        // A subscription that filters everything out: the log is the whole
                        // cost.
                        broker.subscribe("t", config().filter("none")).await.unwrap();
                        publish_all(&broker, iters, size).await
                    })
                });
            });
        }
        for (name, url) in nats_servers() {
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let (js, _stream) = nats_stream(&url).await;
                        nats_publish_all(&js, iters, size).await
                    })
                });
            });
        }
    }
    g.finish();
}

fn publish_deliver_ack(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("durable/publish_deliver_ack_2c");
    g.sample_size(10);
    for size in [100usize, 1024] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("levee_fsync_always", size), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let broker = open(dir.path(), FsyncPolicy::Always);
                rt.block_on(async {
                    let sub = broker.subscribe("t", config()).await.unwrap();
                    let started = Instant::now();
                    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
                    let consumers: Vec<_> = (0..2)
                        .map(|_| {
                            let (c, acked) = (sub.consumer().unwrap(), Arc::clone(&acked));
                            tokio::spawn(async move {
                                use std::sync::atomic::Ordering::Relaxed;
                                while acked.load(Relaxed) < iters {
                                    let wait = Some(Duration::from_millis(5));
                                    let mut batch = c.receive_timeout(1024, wait).await.unwrap();
                                    let n = c.ack_all(&mut batch).await.unwrap() as u64;
                                    acked.fetch_add(n, Relaxed);
                                }
                            })
                        })
                        .collect();
                    publish_all(&broker, iters, size).await;
                    for c in consumers {
                        c.await.unwrap();
                    }
                    started.elapsed()
                })
            });
        });
        for (name, url) in nats_servers() {
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let (js, stream) = nats_stream(&url).await;
                        let consumer: consumer::PullConsumer = stream
                            .create_consumer(consumer::pull::Config {
                                durable_name: Some("s".into()),
                                ack_policy: consumer::AckPolicy::Explicit,
                                max_ack_pending: 8192,
                                ..Default::default()
                            })
                            .await
                            .unwrap();
                        let started = Instant::now();
                        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
                        let consumers: Vec<_> = (0..2)
                            .map(|_| {
                                let (consumer, acked) = (consumer.clone(), Arc::clone(&acked));
                                tokio::spawn(async move {
                                    use std::sync::atomic::Ordering::Relaxed;
                                    let mut messages = consumer.messages().await.unwrap();
                                    while acked.load(Relaxed) < iters {
                                        let next = tokio::time::timeout(
                                            Duration::from_millis(5),
                                            messages.next(),
                                        );
                                        if let Ok(Some(m)) = next.await {
                                            m.unwrap().ack().await.unwrap();
                                            acked.fetch_add(1, Relaxed);
                                        }
                                    }
                                })
                            })
                            .collect();
                        nats_publish_all(&js, iters, size).await;
                        for c in consumers {
                            c.await.unwrap();
                        }
                        started.elapsed()
                    })
                });
            });
        }
    }
    g.finish();
}

/// Publish -> confirm latency with publishes paced at 50 000/s (one every 20 µs, each on
/// its own task), printed as p50 / p99 over 2 s, then the fsync floor of the same disk.
///
/// The log preallocates its segments (`DurableSettings::preallocate`, the default): a new
/// log's first segment grows as it is written until the first preallocated spare is ready,
/// then the log moves into it. So the run waits (bounded) for that spare, and the same load
/// runs for 1 s unrecorded before the 2 s that are recorded: the figures are the steady
/// state. `LEVEE_BENCH_PREALLOCATE=0` measures without preallocation.
fn latency_at_50k(c: &mut Criterion) {
    let _ = c;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let preallocate = std::env::var("LEVEE_BENCH_PREALLOCATE").map_or(true, |v| v != "0");
    let settings = DurableSettings::new().fsync(FsyncPolicy::Always).preallocate(preallocate);
    let broker = DurableBroker::open(dir.path(), settings.clone()).unwrap();
    rt.block_on(broker.subscribe("t", config().filter("none"))).unwrap();
    if preallocate {
        // The first spare is made once a quarter of a segment, at most 1 MiB, has been
        // appended since open: write that much first, or the wait below can only time out.
        // In groups of 500, so one fsync covers each group.
        rt.block_on(async {
            for _ in 0..20 {
                let group = (0..500).map(|_| broker.publish("t", Message::new(vec![7u8; 100])));
                for confirmed in futures::future::join_all(group).await {
                    confirmed.unwrap();
                }
            }
        });
        wait_for_spare(dir.path(), settings.segment_bytes);
    }
    let latencies = rt.block_on(async {
        let recorded = Arc::new(std::sync::Mutex::new(Vec::with_capacity(100_000)));
        let mut tick = tokio::time::interval(Duration::from_micros(20 * 50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = Vec::new();
        for i in 0..3_000 {
            tick.tick().await;
            let record = i >= 1_000;
            for _ in 0..50 {
                let (broker, recorded) = (broker.clone(), Arc::clone(&recorded));
                tasks.push(tokio::spawn(async move {
                    let started = Instant::now();
                    broker.publish("t", Message::new(vec![7u8; 100])).await.unwrap();
                    if record {
                        recorded.lock().unwrap().push(started.elapsed());
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(recorded).unwrap().into_inner().unwrap()
    });
    let name = if preallocate { "levee_fsync_always" } else { "levee_fsync_always_no_prealloc" };
    print_percentiles(&format!("durable/latency_at_50k/{name}"), "publishes", latencies);
    // The disk's own floor, in the same run on the same file system: what one group commit
    // (the 50 records of one millisecond, about 5 KB) costs with nothing of ours around it.
    // A publish that arrives while a group is being synced waits for that fsync and then its
    // own, so the broker's p99 can be up to twice the fsync p99.
    for (name, preallocate) in [("grow_file", false), ("preallocated", true)] {
        let floor = fsync_floor(dir.path(), preallocate, 2_000, 5_000);
        print_percentiles(&format!("durable/latency_at_50k/fsync_floor_{name}"), "fsyncs", floor);
    }
}

/// Waits (at most 60 s) until the log in `dir` has a preallocated spare of `bytes` ready.
fn wait_for_spare(dir: &std::path::Path, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = std::fs::read_dir(dir).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("spare-")
                && e.metadata().is_ok_and(|m| m.len() == bytes)
        });
        if ready {
            // Its size is reached before its fsync ends: leave that a moment.
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("durable/latency_at_50k: no preallocated spare within 60 s; measuring anyway");
}

fn print_percentiles(name: &str, what: &str, mut l: Vec<Duration>) {
    l.sort_unstable();
    let p = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
    println!("{name}: {} {what}, p50 {:?}, p99 {:?}", l.len(), p(0.50), p(0.99));
}

/// `n` times: append `bytes` to a file and `fdatasync` it, as the commit thread does for one
/// group; the time of each. With `preallocate` the file's blocks are written (zeros) and
/// synced first, so each fdatasync has only data to flush, not the file's new size.
fn fsync_floor(dir: &std::path::Path, preallocate: bool, n: usize, bytes: usize) -> Vec<Duration> {
    use std::io::{Seek, Write};
    let path = dir.join(format!("fsync-floor-{preallocate}"));
    let mut file = std::fs::File::create(&path).unwrap();
    if preallocate {
        file.write_all(&vec![0u8; n * bytes]).unwrap();
        file.sync_all().unwrap();
        file.rewind().unwrap();
    }
    let group = vec![7u8; bytes];
    let times = (0..n)
        .map(|_| {
            let started = Instant::now();
            file.write_all(&group).unwrap();
            file.sync_data().unwrap();
            started.elapsed()
        })
        .collect();
    drop(file);
    std::fs::remove_file(path).unwrap();
    times
}

criterion_group!(benches, publish_confirm, publish_deliver_ack, latency_at_50k);
criterion_main!(benches);
