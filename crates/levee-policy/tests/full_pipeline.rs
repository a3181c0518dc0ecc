//! The whole pipeline with levee-limit and levee-breaker: refusals mapped with their hints,
//! permits never leaked by a cancelled call, and the flaky-backend scenario. Everything runs
//! on one `ManualClock` per test (pipeline, breaker, limiter, budget), under paused tokio
//! time, which the manual clock follows whenever something sleeps on it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{DropGuard, Events, MS};
use levee_breaker::{CircuitBreaker, State};
use levee_core::{Clock, ManualClock};
use levee_limit::{Bulkhead, Quota, RateLimiter};
use levee_policy::{
    Backoff, Error, ErrorKind, Event, Fallback, Limiter, Pipeline, Retry, RetryBudget,
};
use tokio::time::Instant;

fn breaker(clock: &ManualClock, open_wait: Duration) -> Arc<CircuitBreaker<ManualClock>> {
    Arc::new(
        CircuitBreaker::builder()
            .count_window(10)
            .minimum_calls(10)
            .failure_rate_threshold(50.0)
            .open_wait(open_wait)
            .half_open_calls(2)
            .clock(clock.clone())
            .build()
            .unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_refuses_with_its_hint_and_retry_waits_it_out() {
    let events = Events::default();
    let clock = ManualClock::new();
    let breaker = breaker(&clock, Duration::from_secs(3));
    breaker.trip();
    let pipeline = Pipeline::builder()
        .retry(Retry::builder().max_attempts(2).backoff(Backoff::constant(MS)).build().unwrap())
        .breaker(breaker.clone())
        .listener(events.listener())
        .clock(clock.clone())
        .build()
        .unwrap();
    let start = Instant::now();
    let ran_at = std::sync::Mutex::new(None);
    let out = pipeline
        .execute(|_| {
            *ran_at.lock().unwrap() = Some(start.elapsed());
            async { Ok::<_, ()>(7) }
        })
        .await;
    assert_eq!(out, Ok(7), "the retry waited until the circuit let a trial through");
    assert_eq!(*ran_at.lock().unwrap(), Some(Duration::from_secs(3)));
    assert!(matches!(
        events.all()[0],
        Event::CircuitRejected { retry_after: Some(d) } if d == Duration::from_secs(3)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_fails_with_retry_after_or_waits() {
    let clock = ManualClock::new();
    let limiter =
        Arc::new(RateLimiter::builder(Quota::per_second(2)).clock(clock.clone()).build().unwrap());
    let refusing =
        Pipeline::builder().limiter(limiter.clone()).clock(clock.clone()).build().unwrap();
    assert_eq!(refusing.execute(|_| async { Ok::<_, ()>(1) }).await, Ok(1));
    assert_eq!(refusing.execute(|_| async { Ok::<_, ()>(2) }).await, Ok(2));
    let refused = refusing.execute(|_| async { Ok::<_, ()>(3) }).await;
    assert_eq!(refused, Err(Error::RateLimited { retry_after: 500 * MS }));

    let waiting = Pipeline::builder()
        .policy(Limiter::new(limiter).max_wait(Duration::from_secs(1)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(waiting.execute(|_| async { Ok::<_, ()>(4) }).await, Ok(4));
    assert_eq!(start.elapsed(), 500 * MS);
    assert_eq!(clock.now(), 500_000_000, "the limiter's clock moved with the wait");
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_refuses_and_a_queue_waits() {
    let bulkhead = Arc::new(Bulkhead::new(1).unwrap());
    let pipeline = Pipeline::builder().bulkhead(bulkhead.clone()).build().unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let out = pipeline.execute(|_| async { Ok::<_, ()>(1) }).await;
    assert_eq!(out, Err(Error::BulkheadFull { max_concurrent: 1 }));
    drop(held);
    assert_eq!(pipeline.execute(|_| async { Ok::<_, ()>(2) }).await, Ok(2));

    let queued = Arc::new(
        Bulkhead::builder(1).max_queue(4).max_wait(Duration::from_secs(1)).build().unwrap(),
    );
    let pipeline = Pipeline::builder().bulkhead(queued.clone()).build().unwrap();
    let held = queued.try_acquire_owned().unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(100 * MS).await;
        drop(held);
    });
    let start = Instant::now();
    assert_eq!(pipeline.execute(|_| async { Ok::<_, ()>(3) }).await, Ok(3));
    assert_eq!(start.elapsed(), 100 * MS, "queued until the permit came back");
    release.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_leaks_no_bulkhead_permit_nor_trial_permit() {
    let clock = ManualClock::new();
    let bulkhead = Arc::new(Bulkhead::new(2).unwrap());
    let breaker = breaker(&clock, Duration::from_secs(1));
    let pipeline = Pipeline::builder()
        .bulkhead(bulkhead.clone())
        .breaker(breaker.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    // Open the circuit, then let it go half-open: two trial permits.
    breaker.trip();
    clock.sleep(Duration::from_secs(1)).await;
    let dropped = Arc::new(AtomicBool::new(false));
    for _ in 0..5 {
        let call = pipeline.execute(|_| {
            let guard = DropGuard(dropped.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, ()>(())
            }
        });
        // Give up on the call after 10 ms: the future is dropped mid-flight.
        assert!(tokio::time::timeout(10 * MS, call).await.is_err());
        assert!(dropped.swap(false, Ordering::SeqCst));
        assert_eq!(bulkhead.in_flight(), 0, "the bulkhead permit came back");
    }
    assert_eq!(breaker.state(), State::HalfOpen);
    // Both trials are still available: two successes close the circuit.
    for _ in 0..2 {
        assert_eq!(pipeline.execute(|_| async { Ok::<_, ()>(()) }).await, Ok(()));
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn blocking_calls_go_through_every_policy() {
    let clock = ManualClock::new();
    let breaker = Arc::new(CircuitBreaker::builder().clock(clock.clone()).build().unwrap());
    let limiter = Arc::new(RateLimiter::with_clock(Quota::per_second(100), clock.clone()).unwrap());
    let bulkhead = Arc::new(Bulkhead::builder(1).max_queue(1).build().unwrap());
    let pipeline = Pipeline::builder()
        .clock(clock)
        .retry(Retry::builder().max_attempts(2).backoff(Backoff::Immediate).build().unwrap())
        .breaker(breaker)
        .limiter(limiter)
        .bulkhead(bulkhead.clone())
        .build()
        .unwrap();
    assert_eq!(pipeline.call(|ctx| if ctx.attempt() == 0 { Err("once") } else { Ok(1) }), Ok(1));
    let _held = bulkhead.try_acquire().unwrap();
    assert_eq!(
        pipeline.call(|_| Ok::<_, ()>(2)),
        Err(Error::BulkheadFull { max_concurrent: 1 }),
        "a blocking call never queues"
    );
}

/// The scenario of the issue: a backend that fails half the calls and is slow on a tenth,
/// behind the full pipeline. The breaker must open, retries must stay within the budget,
/// and calls must succeed again once the backend recovers.
#[tokio::test(start_paused = true)]
async fn a_flaky_backend_behind_the_full_pipeline() {
    struct Backend {
        healthy: AtomicBool,
        calls: AtomicU64,
        clock: ManualClock,
    }
    impl Backend {
        async fn call(&self) -> Result<u64, &'static str> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.healthy.load(Ordering::SeqCst) {
                self.clock.sleep(5 * MS).await;
                return Ok(n);
            }
            // Deterministic "random": a multiplicative hash of the call number.
            let roll = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58; // 0..64
            if roll % 10 == 0 {
                self.clock.sleep(Duration::from_secs(2)).await; // slow: the attempt timeout cuts it
            } else {
                self.clock.sleep(5 * MS).await;
            }
            if roll % 2 == 0 { Err("backend error") } else { Ok(n) }
        }
    }

    let events = Events::default();
    let clock = ManualClock::new();
    let backend = Arc::new(Backend {
        healthy: AtomicBool::new(false),
        calls: AtomicU64::new(0),
        clock: clock.clone(),
    });
    let breaker = breaker(&clock, Duration::from_secs(5));
    let budget = Arc::new(
        RetryBudget::builder()
            .ratio(0.1)
            .min_per_sec(0)
            .window(Duration::from_secs(10))
            .build_with_clock(clock.clone())
            .unwrap(),
    );
    let limiter = Arc::new(
        RateLimiter::builder(Quota::per_second(1000)).clock(clock.clone()).build().unwrap(),
    );
    let bulkhead = Arc::new(Bulkhead::new(16).unwrap());
    let pipeline = Arc::new(
        Pipeline::builder()
            .fallback(Fallback::value(u64::MAX).on_kinds([ErrorKind::CircuitOpen]))
            .timeout(Duration::from_secs(1))
            .retry(
                Retry::builder()
                    .max_attempts(3)
                    .backoff(Backoff::exponential(10 * MS, 100 * MS).with_jitter(0.2))
                    .budget(budget.clone())
                    .max_retry_after(100 * MS)
                    .build()
                    .unwrap(),
            )
            .breaker(breaker.clone())
            .limiter(limiter)
            .bulkhead(bulkhead.clone())
            .timeout(200 * MS)
            .listener(events.listener())
            .clock(clock.clone())
            .build()
            .unwrap(),
    );

    // Phase 1: the outage. Four clients each send a request every 50 ms for 10 s.
    let requests = Arc::new(AtomicU64::new(0));
    let fallbacks = Arc::new(AtomicU64::new(0));
    let saw_open = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (pipeline, backend, breaker) = (pipeline.clone(), backend.clone(), breaker.clone());
        let (requests, fallbacks, saw_open) =
            (requests.clone(), fallbacks.clone(), saw_open.clone());
        let clock = clock.clone();
        clients.push(tokio::spawn(async move {
            let start = clock.now();
            while clock.elapsed_since(start) < 10_000_000_000 {
                requests.fetch_add(1, Ordering::SeqCst);
                let out = pipeline
                    .execute(|_| {
                        let backend = backend.clone();
                        async move { backend.call().await }
                    })
                    .await;
                if out == Ok(u64::MAX) {
                    fallbacks.fetch_add(1, Ordering::SeqCst);
                }
                if breaker.state() == State::Open {
                    saw_open.store(true, Ordering::SeqCst);
                }
                clock.sleep(50 * MS).await;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let requests = requests.load(Ordering::SeqCst);
    let fallbacks = fallbacks.load(Ordering::SeqCst);
    let saw_open = saw_open.load(Ordering::SeqCst);
    assert!(saw_open, "the breaker opened during the outage");
    assert!(fallbacks > 0, "open-circuit refusals fell back");
    let retries = events.count(|e| matches!(e, Event::Retry { .. })) as u64;
    // The budget allows 10 % of the requests (all within one 10 s window), plus at most one
    // overdraft per concurrent client.
    let allowed = requests / 10 + 4;
    assert!(retries <= allowed, "{retries} retries, budget allows {allowed}");
    assert!(events.count(|e| matches!(e, Event::RetryBudgetExhausted { .. })) > 0);
    assert!(backend.calls.load(Ordering::SeqCst) < requests / 4, "the breaker shed load");
    assert_eq!(bulkhead.in_flight(), 0);

    // Phase 2: recovery. Wait out the open state; trials succeed and the circuit closes.
    backend.healthy.store(true, Ordering::SeqCst);
    clock.sleep(Duration::from_secs(6)).await;
    for i in 0..20 {
        let out = pipeline
            .execute(|_| {
                let backend = backend.clone();
                async move { backend.call().await }
            })
            .await;
        assert!(matches!(out, Ok(n) if n != u64::MAX), "call {i} after recovery: {out:?}");
    }
    assert_eq!(breaker.state(), State::Closed);
}

/// The limiter stage takes any limiter of levee-limit's family: a sliding window here, on the
/// pipeline's manual clock, refusing with its hint and waiting it out.
#[tokio::test(start_paused = true)]
async fn any_limiter_of_the_family_is_a_stage() {
    use levee_limit::{SlidingWindowLimiter, WindowQuota};
    let clock = ManualClock::new();
    let window = SlidingWindowLimiter::builder(WindowQuota::per_second(1)).clock(clock.clone());
    let window = Arc::new(window.build().unwrap());
    let pipeline = Pipeline::builder()
        .policy(Limiter::new(window).max_wait(Duration::from_secs(2)))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(pipeline.execute(|_| async { Ok::<_, ()>(1) }).await, Ok(1));
    assert_eq!(pipeline.execute(|_| async { Ok::<_, ()>(2) }).await, Ok(2));
    assert_eq!(clock.now(), 1_000_000_000, "the second call waited for the window to slide");
}

/// A limiter that decides after a round trip (a stand-in for levee-redis): a GCRA behind one
/// yield, so the stage takes its remote path.
struct Remote(RateLimiter<ManualClock>);

impl levee_limit::AsyncRateLimit for Remote {
    async fn check_n(&self, n: u32) -> Result<(), levee_limit::CheckNError> {
        tokio::task::yield_now().await;
        levee_limit::RateLimit::check_n(&self.0, n)
    }

    fn stats(&self) -> levee_limit::RateStats {
        levee_limit::RateLimit::stats(&self.0)
    }
}

/// A remote limiter and one key of a keyed limiter are stages like any other: refused with
/// the same `RateLimited` and retry-after as the local GCRA above, and waited out on the
/// pipeline's clock when the stage may wait.
#[tokio::test(start_paused = true)]
async fn a_remote_limiter_and_one_key_are_stages_like_a_local_one() {
    use levee_limit::KeyedRateLimiter;
    let clock = ManualClock::new();
    let remote = Remote(RateLimiter::with_clock(Quota::per_second(2), clock.clone()).unwrap());
    let keyed = KeyedRateLimiter::<String>::builder(Quota::per_second(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    let remote = Arc::new(remote);
    let alice = Arc::new(keyed.key("alice"));

    let refusing = Pipeline::builder().limiter(remote.clone()).clock(clock.clone()).build();
    let refusing = refusing.unwrap();
    let per_key = Pipeline::builder().limiter(alice.clone()).clock(clock.clone()).build();
    let per_key = per_key.unwrap();
    for i in 0..2 {
        assert_eq!(refusing.execute(|_| async move { Ok::<_, ()>(i) }).await, Ok(i));
        assert_eq!(per_key.execute(|_| async move { Ok::<_, ()>(i) }).await, Ok(i));
    }
    let refused = Err(Error::RateLimited { retry_after: 500 * MS });
    assert_eq!(refusing.execute(|_| async { Ok::<_, ()>(2) }).await, refused);
    assert_eq!(per_key.execute(|_| async { Ok::<_, ()>(2) }).await, refused);
    assert!(keyed.key("bob").check().is_ok(), "other keys are untouched");

    let waiting = Pipeline::builder()
        .policy(Limiter::new(remote).max_wait(Duration::from_secs(1)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(waiting.execute(|_| async { Ok::<_, ()>(3) }).await, Ok(3));
    assert_eq!(start.elapsed(), 500 * MS, "slept until the remote limiter's retry-after");
    let waiting = Pipeline::builder()
        .policy(Limiter::new(alice).max_wait(Duration::from_secs(1)))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(waiting.execute(|_| async { Ok::<_, ()>(4) }).await, Ok(4));
    assert_eq!(clock.now(), 500_000_000, "alice's cell was back with the remote one's");
}
