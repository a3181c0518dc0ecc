//! What does a resilience pipeline cost around a call?
//!
//! Three groups, each measured on a current-thread tokio runtime, every function in a group
//! doing the same call; the stacks are:
//! - `bare`: the call alone (no policy);
//! - `levee`: levee's `Pipeline` (timeout -> retry with budget -> breaker -> rate limiter);
//! - `tower`: tower's `ServiceBuilder` with its timeout, rate limit and retry (with its
//!   `TpsBudget`), driven by `ready().await` then `call().await` as tower clients do. It has
//!   no breaker, so it does less than levee. Its rate limit sits outside the retry (tower's
//!   `Retry` needs a `Clone` service, which `RateLimit` is not), so it counts calls where
//!   levee's limiter counts attempts;
//! - `tower_resilience`: the same tower stack with tower-resilience's circuit breaker layer
//!   under the retry (where levee's breaker sits), on a count window of 100 calls at 50 %
//!   failures with 100 calls at least, as levee's default. Its "count window" is a running
//!   count since the last state change rather than the last 100 calls, and it boxes each
//!   call's future and takes a `tokio::sync::Mutex` twice per call.
//!
//! The groups:
//! - `policy/ready_call` (`bare`, `levee`, `tower`, `tower_resilience`): the call's future is
//!   ready at once (`Ok(1)`).
//! - `policy/pending_call` (the same four): the call's future is pending once before it
//!   completes (`tokio::task::yield_now().await`, then `Ok(1)`), so every policy's
//!   pending path runs: each timeout arms a timer (a tokio `Sleep` on every side), and the
//!   runtime turns once to wake the task.
//! - `policy/retry_once` (the same four): every call fails on its first attempt and
//!   succeeds on its second (one shared attempt counter: even attempts fail), so each side
//!   retries exactly once per call, at once (levee `Backoff::Immediate`, tower's policy
//!   retries without delay), with budgets that cannot run out (2 retries per request on
//!   both). `bare` is the two attempts in a plain loop. The breakers' threshold is 75 % on
//!   both sides so that half the attempts failing does not open them. After each function
//!   the bench asserts that attempts == 2 * calls (outside the timed span).
//!
//! Allocations per call are counted with a counting global allocator and printed beside
//! the timings (the target: levee makes none).
//!
//! `cargo bench --bench policy`

use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_breaker::CircuitBreaker;
use levee_limit::{Quota, RateLimiter};
use levee_policy::{Backoff, Pipeline, Retry, RetryBudget};
use levee_workspace::CountingAllocator;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_resilience::circuitbreaker::CircuitBreakerLayer;

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

impl<E> tower::retry::Policy<u64, u64, E> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
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

/// Times `iters` runs of `$call` (an expression to await) inside the runtime, after one
/// warm-up call (so lazily initialised statics do not count), and prints the allocations per
/// call of a large enough batch.
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

/// levee's pipeline: timeout -> retry (3 attempts, no backoff, `budget`) -> breaker (levee's
/// default count window of 100 calls, opening at `$threshold` % failures) -> rate limiter.
macro_rules! levee_pipeline {
    ($budget:expr, $threshold:expr) => {
        Pipeline::builder()
            .timeout(Duration::from_secs(1))
            .retry(
                Retry::builder()
                    .max_attempts(3)
                    .backoff(Backoff::Immediate)
                    .budget($budget)
                    .build()
                    .unwrap(),
            )
            .breaker(Arc::new(
                CircuitBreaker::builder().failure_rate_threshold($threshold).build().unwrap(),
            ))
            .limiter(Arc::new(RateLimiter::new(Quota::per_second(1_000_000_000)).unwrap()))
            .build()
            .unwrap()
    };
}

/// tower's stack around `svc`: timeout -> rate limit -> retry (`Attempts` with `tps`).
/// Built inside the runtime (the rate limit makes a tokio `Sleep`).
fn tower_stack<S>(
    rt: &tokio::runtime::Runtime,
    tps: TpsBudget,
    svc: S,
) -> tower::timeout::Timeout<tower::limit::RateLimit<tower::retry::Retry<Attempts, S>>>
where
    S: Service<u64, Response = u64> + Clone,
{
    let _entered = rt.enter();
    ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .rate_limit(u64::MAX / 2, Duration::from_secs(1))
        .retry(Attempts { left: 3, budget: Arc::new(tps) })
        .service(svc)
}

/// tower-resilience's circuit breaker configured as levee's default breaker (count window of
/// 100, at least 100 calls, 60 s open, 10 trial calls), opening at `threshold` (a fraction).
fn resilience_breaker(threshold: f64) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .failure_rate_threshold(threshold)
        .wait_duration_in_open(Duration::from_secs(60))
        .permitted_calls_in_half_open(10)
        .build()
        .unwrap()
}

/// The `tower` and `tower_resilience` functions of the ready and pending groups around
/// `$backend` (a clonable tower service): tower's stack, and the same stack with
/// tower-resilience's breaker (opening at half the calls failing) under the retry. `$tower`
/// and `$resilience` name their allocation reports.
macro_rules! tower_functions {
    ($group:expr, $rt:expr, $backend:expr, $tower:expr, $resilience:expr) => {{
        let backend = $backend;
        let mut tower_svc = tower_stack(&$rt, default_tps(), backend.clone());
        $group.bench_function("tower", |b| {
            b.iter_custom(|iters| {
                timed!($rt, $tower, iters, async {
                    let out = tower_svc.ready().await.unwrap().call(1).await;
                    black_box(out).unwrap();
                })
            });
        });
        let mut resilience_svc =
            tower_stack(&$rt, default_tps(), resilience_breaker(0.5).layer_fn(backend));
        $group.bench_function("tower_resilience", |b| {
            b.iter_custom(|iters| {
                timed!($rt, $resilience, iters, async {
                    let out = resilience_svc.ready().await.unwrap().call(1).await;
                    black_box(out).unwrap();
                })
            });
        });
    }};
}

/// tower's default-like budget of the ready and pending groups (10 s, 10 per second, 20 %),
/// as levee's `RetryBudget::builder()` defaults.
fn default_tps() -> TpsBudget {
    TpsBudget::new(Duration::from_secs(10), 10, 0.2)
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

    let pipeline = levee_pipeline!(RetryBudget::builder().build_shared().unwrap(), 50.0);
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "levee", iters, async {
                let out = pipeline.execute(|_ctx| async { Ok::<u64, Fail>(black_box(1)) }).await;
                black_box(out).unwrap();
            })
        });
    });

    let backend = tower::service_fn(|req: u64| async move { Ok::<u64, Fail>(black_box(req)) });
    tower_functions!(group, rt, backend, "tower", "tower_resilience");
    group.finish();
}

/// The backend of `pending_call`: pending once (it wakes itself), then `Ok(req)`.
async fn pending_once(req: u64) -> Result<u64, Fail> {
    tokio::task::yield_now().await;
    Ok(black_box(req))
}

fn pending_call(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("policy/pending_call");
    group.throughput(Throughput::Elements(1));

    group.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "pending_call/bare", iters, async {
                black_box(pending_once(1).await).unwrap();
            })
        });
    });

    let pipeline = levee_pipeline!(RetryBudget::builder().build_shared().unwrap(), 50.0);
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "pending_call/levee", iters, async {
                let out = pipeline.execute(|_ctx| pending_once(1)).await;
                black_box(out).unwrap();
            })
        });
    });

    let backend = tower::service_fn(pending_once);
    tower_functions!(group, rt, backend, "pending_call/tower", "pending_call/tower_resilience");
    group.finish();
}

/// Attempts and logical calls of one `retry_once` function.
#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    calls: AtomicU64,
}

impl Counts {
    /// One attempt: even attempts fail, odd ones succeed, so a call that retries at once
    /// fails exactly once and then succeeds.
    fn attempt(&self) -> Result<u64, Fail> {
        if self.attempts.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            Err(Fail)
        } else {
            Ok(black_box(1))
        }
    }

    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks (outside the timed span) that every call took exactly two attempts.
    fn assert_retried_once(&self, name: &str) {
        let calls = self.calls.load(Ordering::Relaxed);
        let attempts = self.attempts.load(Ordering::Relaxed);
        assert!(calls > 0, "{name}: no call was made");
        assert_eq!(attempts, 2 * calls, "{name}: every call must fail once, then succeed");
    }
}

fn retry_once(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("policy/retry_once");
    group.throughput(Throughput::Elements(1));
    // Budgets that never run out: two retries per request (levee deposits per request; tower
    // deposits per success) over the floor of 10 per second, one retry used per call.
    let levee_budget = || RetryBudget::builder().ratio(2.0).build_shared().unwrap();
    let tps = || TpsBudget::new(Duration::from_secs(10), 10, 2.0);

    let counts = Counts::default();
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "retry_once/bare", iters, async {
                counts.call();
                let out = loop {
                    match async { counts.attempt() }.await {
                        Ok(v) => break v,
                        Err(e) => {
                            black_box(e);
                        }
                    }
                };
                black_box(out);
            })
        });
    });
    counts.assert_retried_once("retry_once/bare");

    let counts = Counts::default();
    let pipeline = levee_pipeline!(levee_budget(), 75.0);
    group.bench_function("levee", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "retry_once/levee", iters, async {
                counts.call();
                let out = pipeline.execute(|_ctx| async { counts.attempt() }).await;
                black_box(out).unwrap();
            })
        });
    });
    counts.assert_retried_once("retry_once/levee");

    let counts = Arc::new(Counts::default());
    let backend = {
        let counts = Arc::clone(&counts);
        tower::service_fn(move |_req: u64| ready(counts.attempt()))
    };
    let mut tower_svc = tower_stack(&rt, tps(), backend.clone());
    group.bench_function("tower", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "retry_once/tower", iters, async {
                counts.call();
                let out = tower_svc.ready().await.unwrap().call(1).await;
                black_box(out).unwrap();
            })
        });
    });
    counts.assert_retried_once("retry_once/tower");

    let counts = Arc::new(Counts::default());
    let backend = {
        let counts = Arc::clone(&counts);
        tower::service_fn(move |_req: u64| ready(counts.attempt()))
    };
    let mut resilience_svc = tower_stack(&rt, tps(), resilience_breaker(0.75).layer_fn(backend));
    group.bench_function("tower_resilience", |b| {
        b.iter_custom(|iters| {
            timed!(rt, "retry_once/tower_resilience", iters, async {
                counts.call();
                let out = resilience_svc.ready().await.unwrap().call(1).await;
                black_box(out).unwrap();
            })
        });
    });
    counts.assert_retried_once("retry_once/tower_resilience");
    group.finish();
}

criterion_group!(benches, ready_call, pending_call, retry_once);
criterion_main!(benches);
