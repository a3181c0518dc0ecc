//! levee-redis against the rate limit most services write by hand on Redis: a fixed window
//! of `INCR key` + `EXPIRE key window` (the expiry set when `INCR` returns 1), through the
//! same client (`redis`'s `ConnectionManager`, one multiplexed connection), the same runtime
//! and the same server, started by this bench on loopback (no persistence).
//!
//! - `redis/check_1task`, `redis/check_8tasks`: checks per second from one task, and from 8
//!   concurrent tasks on a 2-worker tokio runtime (elements: checks; the 8-task case times the
//!   whole batch). Functions: `levee` (one script round trip per check), `incr_expire` (one
//!   round trip per check, two for the first of each window), `levee_lease` (lease mode:
//!   batches of up to 16 cells, 50 ms).
//! - latency: not a criterion group; 20,000 checks per approach from 8 concurrent tasks,
//!   each check's latency in an hdrhistogram, printed as p50 / p99.
//!
//! Every check is admitted (a quota far above what the machine can ask), so both sides do
//! their full work per check. The fixed window is cheaper per call but is not GCRA: it lets
//! a burst of twice the limit through across a window boundary, and has no retry-after.
//!
//! Needs `redis-server` (`LEVEE_REDIS_SERVER_BIN`, else on `PATH`); skipped without it.
//! `cargo bench --bench redis`

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_core::LatencyRecorder;
use levee_limit::Quota;
use levee_redis::{LeaseSettings, RedisRateLimiter};
use redis::aio::ConnectionManager;

/// Concurrent tasks of the `_8tasks` group and the latency run.
const TASKS: u64 = 8;

/// A redis-server on a free loopback port, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Option<Self> {
        let bin = std::env::var("LEVEE_REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new(&bin)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("skipped: the redis benches need redis-server ({bin}: {e})"))
            .ok()?;
        let url = format!("redis://127.0.0.1:{port}/");
        let client = redis::Client::open(url.as_str()).ok()?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(mut conn) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return Some(Self { child, url });
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three approaches, each able to make one check.
#[derive(Clone)]
enum Approach {
    Levee(Arc<RedisRateLimiter>),
    IncrExpire(ConnectionManager),
}

impl Approach {
    async fn check(&mut self, key: &str) -> bool {
        match self {
            Self::Levee(limiter) => limiter.check(key).await.is_ok(),
            Self::IncrExpire(conn) => {
                // The hand-rolled fixed window: count this second's calls; the first call of
                // a window sets its expiry.
                let count: u64 = redis::cmd("INCR").arg(key).query_async(conn).await.unwrap();
                if count == 1 {
                    let _: () =
                        redis::cmd("EXPIRE").arg(key).arg(1).query_async(conn).await.unwrap();
                }
                count <= u64::from(u32::MAX)
            }
        }
    }
}

fn approaches(rt: &tokio::runtime::Runtime, url: &str) -> Vec<(&'static str, Approach)> {
    rt.block_on(async {
        // Far above what a machine can ask: every check is admitted.
        let quota = Quota::per_second(1_000_000_000).with_burst(1_000_000);
        let limiter = RedisRateLimiter::builder(quota)
            .prefix("bench:levee:")
            .timeout(Duration::from_secs(1))
            .connect(url)
            .unwrap();
        let lease = RedisRateLimiter::builder(quota)
            .prefix("bench:lease:")
            .timeout(Duration::from_secs(1))
            .lease(LeaseSettings::new(16, Duration::from_millis(50)))
            .connect(url)
            .unwrap();
        let client = redis::Client::open(url).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        vec![
            ("levee", Approach::Levee(Arc::new(limiter))),
            ("incr_expire", Approach::IncrExpire(conn)),
            ("levee_lease", Approach::Levee(Arc::new(lease))),
        ]
    })
}

/// Runs `iters` checks spread over `tasks` tasks; returns the wall time of the whole batch.
fn run(rt: &tokio::runtime::Runtime, approach: &Approach, tasks: u64, iters: u64) -> Duration {
    rt.block_on(async {
        let per_task = iters.div_ceil(tasks);
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let mut approach = approach.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        assert!(approach.check("hot").await);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        started.elapsed()
    })
}

/// 20,000 checks from `TASKS` tasks, each timed; prints p50 / p99.
fn latency(rt: &tokio::runtime::Runtime, name: &str, approach: &Approach) {
    let recorder = Arc::new(LatencyRecorder::new());
    rt.block_on(async {
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let (mut approach, recorder) = (approach.clone(), recorder.clone());
                tokio::spawn(async move {
                    for _ in 0..20_000 / TASKS {
                        let t = Instant::now();
                        assert!(approach.check("hot").await);
                        recorder.record(t.elapsed());
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    let s = recorder.snapshot();
    println!(
        "redis/latency_{TASKS}tasks/{name}: p50 {:?}  p99 {:?}  ({} checks)",
        s.p50, s.p99, s.count
    );
}

fn bench(c: &mut Criterion) {
    let Some(server) = Server::start() else { return };
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let approaches = approaches(&rt, &server.url);
    for (tasks, group_name) in [(1, "redis/check_1task"), (TASKS, "redis/check_8tasks")] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(1));
        for (name, approach) in &approaches {
            group
                .bench_function(*name, |b| b.iter_custom(|iters| run(&rt, approach, tasks, iters)));
        }
        group.finish();
    }
    for (name, approach) in &approaches {
        latency(&rt, name, approach);
    }
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
