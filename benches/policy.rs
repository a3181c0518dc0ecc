//! What does a resilience pipeline cost around a call that succeeds at once?
//!
//! One group, `policy/ready_call`, three functions measured in the same run on a
//! current-thread tokio runtime, each awaiting an immediately ready future:
//! - `bare`: the call alone;
//! - `levee`: levee's `Pipeline` (timeout -> retry with budget -> breaker -> rate limiter);
//! - `tower`: tower's `ServiceBuilder` with its timeout, rate limit and retry (with its
//!   `TpsBudget`), driven by `ready().await` then `call().await` as tower clients do.
//!
//! Allocations per call are counted with a counting global allocator and printed beside
//! the timings (the target: levee makes none).
//!
//! `cargo bench --bench policy`

use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_breaker::CircuitBreaker;
use levee_limit::{Quota, RateLimiter};
use levee_policy::{Backoff, Pipeline, Retry, RetryBudget};
use levee_workspace::CountingAllocator;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Service, ServiceBuilder, ServiceExt};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

/// The backend's error (tower's timeout wants errors that convert into its `BoxError`).
#[derive(Debug)]
struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

/// tower's retry policy with its budget: up to 3 attempts, every error retried.
#[derive(Clone)]
struct Attempts {
    left: u32,
    budget: Arc<TpsBudget>,
}

impl tower::retry::Policy<u64, u64, Fail> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, Fail>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.left > 1 && self.budget.withdraw() => {
                self.left -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

/// Times `iters` runs of `$call` (an expression to await) inside the runtime, after one
/// warm-up call (so lazily initialised statics do not count), and prints the allocations per
/// call of a large enough batch.
/// Prints the allocations per call of `name` once per run, and the worst seen.
fn report_allocations(name: &'static str, per_call: f64) {
    static SEEN: std::sync::Mutex<Vec<(&str, f64)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap();
    match seen.iter_mut().find(|(n, _)| *n == name) {
        Some((_, worst)) if per_call > *worst => {
            *worst = per_call;
            eprintln!("allocations per call, {name}: {per_call:.3} (new worst)");
        }
        Some(_) => {}
        None => {
            seen.push((name, per_call));
            eprintln!("allocations per call, {name}: {per_call:.3}");
        }
    }
}

macro_rules! timed {
    ($rt:expr, $name:expr, $iters:expr, $call:expr) => {{
        let iters: u64 = $iters;
        $rt.block_on(async {
            $call.await;
            let allocs = ALLOC.allocations();
            let start = Instant::now();
            for _ in 0..iters {
                $call.await;
            }
            let elapsed = start.elapsed();
            if iters >= 10_000 {
                let per_call = (ALLOC.allocations() - allocs) as f64 / iters as f64;
                report_allocations($name, per_call);
            }
            elapsed
        })
    }};
}

fn ready_call(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("policy/ready_call");
    group.throughput(Throughput::Elements(1));

    group.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "bare", iters, async {
                let out: Result<u64, Fail> = async { Ok(black_box(1)) }.await;
                black_box(out).unwrap();
            })
        });
    });

    let budget = RetryBudget::builder().build_shared().unwrap();
    let pipeline = Pipeline::builder()
        .timeout(Duration::from_secs(1))
        .retry(
            Retry::builder()
                .max_attempts(3)
                .backoff(Backoff::Immediate)
                .budget(budget)
                .build()
                .unwrap(),
        )
        .breaker(Arc::new(CircuitBreaker::builder().build().unwrap()))
        .limiter(Arc::new(RateLimiter::new(Quota::per_second(1_000_000_000)).unwrap()))
        .build()
        .unwrap();
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "levee", iters, async {
                let out = pipeline.execute(|_ctx| async { Ok::<u64, Fail>(black_box(1)) }).await;
                black_box(out).unwrap();
            })
        });
    });

    let tps = Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2));
    let mut tower_svc = rt.block_on(async {
        ServiceBuilder::new()
            .timeout(Duration::from_secs(1))
            .rate_limit(u64::MAX / 2, Duration::from_secs(1))
            .retry(Attempts { left: 3, budget: tps })
            .service_fn(|req: u64| async move { Ok::<u64, Fail>(black_box(req)) })
    });
    group.bench_function("tower", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "tower", iters, async {
                let out = tower_svc.ready().await.unwrap().call(1).await;
                black_box(out).unwrap();
            })
        });
    });
    group.finish();
}

criterion_group!(benches, ready_call);
criterion_main!(benches);
