//! Timeouts, hedging, fallback and cancellation on a `ManualClock` under paused tokio time:
//! the pipelines run on the test's manual clock, the operations' latency is a sleep on it, and
//! tokio's auto-advance moves it from one deadline to the next, so every timing is exact.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{Attempts, DropGuard, Events, MS, clock};
use levee_core::{Clock, ManualClock};
use levee_policy::{
    Backoff, Error, ErrorKind, Event, Fallback, Hedge, HedgeDelay, Pipeline, Retry, Timeout,
};
use tokio::time::Instant;

/// An operation's latency: a sleep on the test's clock.
async fn sleep(d: Duration) {
    clock().sleep(d).await;
}

fn retry(n: u32, backoff: Backoff) -> Retry {
    Retry::builder().max_attempts(n).backoff(backoff).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_cancels_each_slow_attempt() {
    let events = Events::default();
    let pipeline = Pipeline::builder()
        .clock(clock())
        .retry(retry(3, Backoff::Immediate))
        .timeout(100 * MS)
        .listener(events.listener())
        .build()
        .unwrap();
    let attempts = Attempts::new();
    let start = Instant::now();
    let out = pipeline
        .execute(|ctx| {
            attempts.mark();
            assert_eq!(ctx.remaining(), Some(100 * MS), "the attempt sees its deadline");
            async {
                sleep(Duration::from_secs(1)).await;
                Ok::<_, ()>(())
            }
        })
        .await;
    assert_eq!(out, Err(Error::Timeout { timeout: 100 * MS }));
    assert_eq!(attempts.times(), [Duration::ZERO, 100 * MS, 200 * MS]);
    assert_eq!(start.elapsed(), 300 * MS);
    assert_eq!(events.count(|e| matches!(e, Event::TimedOut { .. })), 3);
}

#[tokio::test(start_paused = true)]
async fn the_overall_deadline_bounds_retries_and_is_passed_down() {
    let pipeline = Pipeline::builder()
        .clock(clock())
        .timeout(250 * MS)
        .retry(retry(10, Backoff::Immediate))
        .timeout(100 * MS)
        .build()
        .unwrap();
    let attempts = Attempts::new();
    let seen = std::sync::Mutex::new(Vec::new());
    let start = Instant::now();
    let out = pipeline
        .execute(|ctx| {
            attempts.mark();
            seen.lock().unwrap().push(ctx.remaining().unwrap());
            async {
                sleep(Duration::from_secs(1)).await;
                Ok::<_, ()>(())
            }
        })
        .await;
    assert_eq!(out, Err(Error::Timeout { timeout: 250 * MS }), "the overall timeout fired");
    assert_eq!(start.elapsed(), 250 * MS);
    assert_eq!(attempts.count(), 3);
    // The third attempt gets only what is left of the overall deadline.
    assert_eq!(*seen.lock().unwrap(), [100 * MS, 100 * MS, 50 * MS]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_cannot_start_before_the_deadline_is_not_made() {
    let events = Events::default();
    let pipeline = Pipeline::builder()
        .clock(clock())
        .timeout(Duration::from_secs(1))
        .retry(retry(10, Backoff::constant(400 * MS)))
        .listener(events.listener())
        .build()
        .unwrap();
    let attempts = Attempts::new();
    let start = Instant::now();
    let out = pipeline
        .execute(|_| {
            attempts.mark();
            async { Err::<(), _>("fast failure") }
        })
        .await;
    // Attempts at 0, 400, 800 ms; a fourth at 1200 ms would be past the deadline.
    assert_eq!(out, Err(Error::Operation("fast failure")));
    assert_eq!(attempts.count(), 3);
    assert_eq!(start.elapsed(), 800 * MS, "returns at once instead of sleeping into the deadline");
    assert!(events.all().contains(&Event::RetryAbandoned { attempts: 3, wait: 400 * MS }));
}

/// A clock that counts the sleeps asked of it.
struct CountingClock {
    clock: levee_core::ManualClock,
    sleeps: Arc<AtomicU32>,
}

impl levee_core::Clock for CountingClock {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn sleep_until(&self, deadline: u64) -> levee_core::Sleep {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        self.clock.sleep_until(deadline)
    }
}

#[test]
fn a_fast_call_never_touches_the_timer() {
    // A ready call through two timeouts and a retry asks its clock for no sleep at all.
    let sleeps = Arc::new(AtomicU32::new(0));
    let counting = CountingClock { clock: ManualClock::new(), sleeps: sleeps.clone() };
    let pipeline = Pipeline::builder()
        .clock(clock())
        .timeout(Duration::from_secs(1))
        .retry(retry(3, Backoff::constant(MS)))
        .timeout(MS)
        .clock(counting)
        .build()
        .unwrap();
    let out = levee_core::block_on(pipeline.execute(|_| async { Ok::<_, ()>(5) }));
    assert_eq!(out, Ok(5));
    assert_eq!(pipeline.call(|_| Ok::<_, ()>(6)), Ok(6));
    assert_eq!(sleeps.load(Ordering::SeqCst), 0);
    // A failing call's backoff does sleep, on this clock (moved by the test's manual clock).
    let failing = Pipeline::builder()
        .clock(clock())
        .retry(retry(2, Backoff::constant(MS)))
        .clock(CountingClock { clock: ManualClock::new(), sleeps: sleeps.clone() })
        .build()
        .unwrap();
    let mover = failing.clock().clock.clone();
    let t = std::thread::spawn(move || {
        while mover.pending_sleeps() == 0 {
            std::thread::yield_now();
        }
        mover.advance(MS);
    });
    assert_eq!(failing.call(|ctx| if ctx.attempt() == 0 { Err(()) } else { Ok(7) }), Ok(7));
    t.join().unwrap();
    assert_eq!(sleeps.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn hedging_the_first_success_wins_and_the_loser_is_cancelled() {
    let events = Events::default();
    let hedge = Hedge::new(2, HedgeDelay::Fixed { delay: 50 * MS }).unwrap();
    let pipeline = Pipeline::builder()
        .clock(clock())
        .hedge(hedge)
        .listener(events.listener())
        .build()
        .unwrap();
    let primary_dropped = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let out = pipeline
        .execute(|ctx| {
            let guard = DropGuard(primary_dropped.clone());
            async move {
                if ctx.hedge() == 0 {
                    let _guard = guard;
                    sleep(Duration::from_secs(10)).await;
                }
                sleep(10 * MS).await;
                Ok::<_, ()>(ctx.hedge())
            }
        })
        .await;
    assert_eq!(out, Ok(1), "the hedge answered first");
    assert_eq!(start.elapsed(), 60 * MS);
    assert!(primary_dropped.load(Ordering::SeqCst), "the primary was cancelled");
    assert_eq!(events.all(), [Event::HedgeStarted { hedge: 1 }, Event::HedgeWon { hedge: 1 }]);
}

#[tokio::test(start_paused = true)]
async fn hedging_starts_at_most_max_hedges() {
    let hedge = Hedge::new(3, HedgeDelay::Fixed { delay: 10 * MS }).unwrap();
    let pipeline = Pipeline::builder()
        .clock(clock())
        .timeout(Duration::from_secs(1))
        .hedge(hedge)
        .build()
        .unwrap();
    let attempts = Attempts::new();
    let out = pipeline
        .execute(|_| {
            attempts.mark();
            async {
                sleep(Duration::from_secs(5)).await;
                Ok::<_, ()>(())
            }
        })
        .await;
    assert_eq!(out, Err(Error::Timeout { timeout: Duration::from_secs(1) }));
    assert_eq!(attempts.times(), [Duration::ZERO, 10 * MS, 20 * MS, 30 * MS]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_starts_the_next_hedge_at_once() {
    let hedge = Hedge::new(1, HedgeDelay::Fixed { delay: Duration::from_secs(1) }).unwrap();
    let pipeline = Pipeline::builder().clock(clock()).hedge(hedge).build().unwrap();
    let attempts = Attempts::new();
    let out = pipeline
        .execute(|ctx| {
            attempts.mark();
            async move { if ctx.hedge() == 0 { Err("refused") } else { Ok(ctx.hedge()) } }
        })
        .await;
    assert_eq!(out, Ok(1));
    assert_eq!(attempts.times(), [Duration::ZERO, Duration::ZERO]);

    // When every attempt fails, the last error is returned.
    let out = pipeline.execute(|_| async { Err::<(), _>("down") }).await;
    assert_eq!(out, Err(Error::Operation("down")));
}

#[tokio::test(start_paused = true)]
async fn a_refused_attempt_does_not_start_a_hedge() {
    let hedge = Hedge::new(2, HedgeDelay::Fixed { delay: Duration::from_secs(1) }).unwrap();
    let refusals = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .clock(clock())
        .hedge(hedge)
        .policy(RefuseAll(refusals.clone()))
        .build()
        .unwrap();
    let start = Instant::now();
    let out = pipeline.execute(|_| async { Ok::<_, ()>(()) }).await;
    assert_eq!(out, Err(Error::RateLimited { retry_after: MS }));
    assert_eq!(refusals.load(Ordering::SeqCst), 1, "no hedge after a refusal");
    assert_eq!(start.elapsed(), Duration::ZERO, "and no wait for the hedge timer");
}

/// Refuses every call as a rate limiter would.
struct RefuseAll(Arc<AtomicU32>);

impl levee_policy::Instrument for RefuseAll {
    fn instrument(&mut self, _hook: &levee_core::EventHook<Event>) {}
}

impl<'c, Op: levee_policy::Operation<'c>> levee_policy::Policy<'c, Op> for RefuseAll {
    async fn run<'s, I: levee_policy::Stage<'c, Op>>(
        &'s self,
        _inner: &'s I,
        _op: &'s Op,
        _ctx: levee_policy::Context<'c>,
    ) -> levee_policy::Outcome<'c, Op>
    where
        'c: 's,
    {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(Error::RateLimited { retry_after: MS })
    }
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_follows_observed_latency() {
    let delay = HedgeDelay::Percentile {
        quantile: 0.95,
        initial: Duration::from_secs(1),
        min: MS,
        min_samples: 20,
        refresh_every: 10,
    };
    let hedge = Hedge::new(1, delay).unwrap();
    let pipeline = Pipeline::builder().clock(clock()).hedge(hedge).build().unwrap();
    let hedge = &pipeline.stack().policy;
    assert_eq!(hedge.current_delay(), Duration::from_secs(1), "initial until 20 samples");
    for i in 0..20u64 {
        pipeline
            .execute(|_| async move {
                sleep(Duration::from_millis(10 + i % 2 * 10)).await;
                Ok::<_, ()>(())
            })
            .await
            .unwrap();
    }
    let p95 = hedge.current_delay();
    assert!((19 * MS..=21 * MS).contains(&p95), "p95 {p95:?}");
    assert_eq!(hedge.recorder().snapshot().count, 20);
}

#[tokio::test(start_paused = true)]
async fn fallback_replaces_only_the_chosen_errors() {
    let events = Events::default();
    let pipeline = Pipeline::builder()
        .clock(clock())
        .fallback(Fallback::value("cached").on_kinds([ErrorKind::Timeout]))
        .timeout(100 * MS)
        .listener(events.listener())
        .build()
        .unwrap();
    let slow = pipeline
        .execute(|_| async {
            sleep(Duration::from_secs(1)).await;
            Ok::<_, &str>("fresh")
        })
        .await;
    assert_eq!(slow, Ok("cached"));
    let failed = pipeline.execute(|_| async { Err::<&str, _>("boom") }).await;
    assert_eq!(failed, Err(Error::Operation("boom")), "not a timeout: no fallback");
    assert_eq!(events.count(|e| matches!(e, Event::FallbackUsed { cause: ErrorKind::Timeout })), 1);

    // A closure selector and an async fallback that sees the error.
    let pipeline = Pipeline::builder()
        .clock(clock())
        .fallback(
            Fallback::with(|e: Error<&'static str>| async move {
                sleep(5 * MS).await;
                Ok(format!("fallback for {e}"))
            })
            .on(|e: &Error<&'static str>| e.operation() == Some(&"boom")),
        )
        .build()
        .unwrap();
    let out = pipeline.execute(|_| async { Err::<String, _>("boom") }).await;
    assert_eq!(out.unwrap(), "fallback for operation failed: boom");
    let out = pipeline.execute(|_| async { Err::<String, _>("other") }).await;
    assert_eq!(out, Err(Error::Operation("other")));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_cancels_the_attempt_and_its_timers() {
    let pipeline = Pipeline::builder()
        .clock(clock())
        .timeout(Duration::from_secs(5))
        .retry(retry(3, Backoff::constant(MS)))
        .hedge(Hedge::new(1, HedgeDelay::Fixed { delay: 10 * MS }).unwrap())
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let call = pipeline.execute(|_| {
        let guard = DropGuard(dropped.clone());
        async move {
            let _guard = guard;
            sleep(Duration::from_secs(60)).await;
            Ok::<_, ()>(())
        }
    });
    // Poll for a while (the hedge has started), then give up on the call.
    let out = tokio::time::timeout(Duration::from_secs(1), call).await;
    assert!(out.is_err());
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn pipelines_run_on_a_multi_threaded_runtime() {
    let pipeline = Arc::new(
        Pipeline::builder()
            .timeout(Duration::from_secs(1))
            .retry(retry(2, Backoff::Immediate))
            .build()
            .unwrap(),
    );
    let p = pipeline.clone();
    let handle = tokio::spawn(async move { p.execute(|_| async { Ok::<_, ()>(1) }).await });
    assert_eq!(handle.await.unwrap(), Ok(1));
}

#[test]
fn invalid_timeouts_and_hedges_are_named() {
    assert_eq!(Timeout::new(Duration::ZERO).unwrap_err().setting, "timeout");
    assert_eq!(Pipeline::builder().timeout(Duration::ZERO).build().unwrap_err().setting, "timeout");
    assert_eq!(Hedge::new(0, HedgeDelay::Fixed { delay: MS }).unwrap_err().setting, "max_hedges");
    let e = Hedge::new(1, HedgeDelay::p95(MS).with_quantile_for_test(1.5)).unwrap_err();
    assert_eq!(e.setting, "quantile");
}

trait WithQuantile {
    fn with_quantile_for_test(self, q: f64) -> Self;
}

impl WithQuantile for HedgeDelay {
    fn with_quantile_for_test(mut self, q: f64) -> Self {
        if let HedgeDelay::Percentile { quantile, .. } = &mut self {
            *quantile = q;
        }
        self
    }
}
