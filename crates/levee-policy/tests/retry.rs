//! Retry with paused tokio time: counts, delays, jitter bounds, predicates, hints, budget.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Attempts, Events, MS, clock};
use levee_core::ManualClock;
use levee_policy::{Backoff, Error, ErrorKind, Event, Pipeline, Retry, RetryAfter, RetryBudget};

#[tokio::test(start_paused = true)]
async fn retries_up_to_max_attempts_with_constant_delays() {
    let events = Events::default();
    let retry =
        Retry::builder().max_attempts(4).backoff(Backoff::constant(100 * MS)).build().unwrap();
    let pipeline = Pipeline::builder()
        .clock(clock())
        .retry(retry)
        .listener(events.listener())
        .build()
        .unwrap();
    let attempts = Attempts::new();
    let out = pipeline
        .execute(|ctx| {
            let n = attempts.mark();
            assert_eq!(ctx.attempt(), n);
            async { Err::<(), _>("down") }
        })
        .await;
    assert_eq!(out, Err(Error::Operation("down")));
    assert_eq!(attempts.count(), 4);
    assert_eq!(attempts.gaps(), [100 * MS; 3]);
    assert_eq!(events.count(|e| matches!(e, Event::Retry { .. })), 3);
    assert_eq!(events.all().last(), Some(&Event::RetriesExhausted { attempts: 4 }));
    assert!(matches!(
        events.all()[0],
        Event::Retry { attempt: 1, delay, cause: Some(ErrorKind::Operation) } if delay == 100 * MS
    ));
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_doubles_and_caps() {
    let retry = Retry::builder()
        .max_attempts(6)
        .backoff(Backoff::exponential(10 * MS, 50 * MS))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder().clock(clock()).retry(retry).build().unwrap();
    let attempts = Attempts::new();
    let _ = pipeline
        .execute(|_| {
            attempts.mark();
            async { Err::<(), _>(()) }
        })
        .await;
    assert_eq!(attempts.gaps(), [10 * MS, 20 * MS, 40 * MS, 50 * MS, 50 * MS]);
}

#[tokio::test(start_paused = true)]
async fn a_success_ends_the_retries() {
    let retry = Retry::builder().max_attempts(5).backoff(Backoff::constant(MS)).build().unwrap();
    let pipeline = Pipeline::builder().clock(clock()).retry(retry).build().unwrap();
    let attempts = Attempts::new();
    let out = pipeline
        .execute(|_| {
            let n = attempts.mark();
            async move { if n < 2 { Err("flaky") } else { Ok(n) } }
        })
        .await;
    assert_eq!(out, Ok(2));
    assert_eq!(attempts.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_bounds() {
    let base = 10 * MS;
    let max = 200 * MS;
    for backoff in
        [Backoff::decorrelated_jitter(base, max), Backoff::exponential(base, max).with_jitter(0.5)]
    {
        for _ in 0..20 {
            let retry = Retry::builder().max_attempts(8).backoff(backoff).build().unwrap();
            let pipeline = Pipeline::builder().clock(clock()).retry(retry).build().unwrap();
            let attempts = Attempts::new();
            let _ = pipeline
                .execute(|_| {
                    attempts.mark();
                    async { Err::<(), _>(()) }
                })
                .await;
            let gaps = attempts.gaps();
            assert_eq!(gaps.len(), 7);
            let mut previous = Duration::ZERO;
            for (i, gap) in gaps.iter().enumerate() {
                // Paused time advances to the exact deadline, which tokio rounds up to 1 ms.
                let gap = *gap;
                match backoff {
                    Backoff::DecorrelatedJitter { .. } => {
                        assert!(gap >= base && gap <= max + MS, "{backoff:?} gap {gap:?}");
                        assert!(gap <= previous.max(base) * 3 + MS, "{gap:?} after {previous:?}");
                    }
                    _ => {
                        let exact = (base * 2u32.pow(i as u32)).min(max);
                        assert!(
                            gap >= exact / 2 && gap <= (exact * 3 / 2).min(max) + MS,
                            "{gap:?}"
                        );
                    }
                }
                previous = gap;
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum HttpError {
    Unavailable,
    NotFound,
    TooManyRequests(Duration),
}

impl RetryAfter for HttpError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManyRequests(d) => Some(*d),
            _ => None,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_predicate_chooses_what_is_retried() {
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(Backoff::Immediate)
        .retry_on_error(|e: &Error<HttpError>| !matches!(e, Error::Operation(HttpError::NotFound)))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder().clock(clock()).retry(retry).build().unwrap();
    let attempts = Attempts::new();
    let out = pipeline
        .execute(|_| {
            attempts.mark();
            async { Err::<(), _>(HttpError::NotFound) }
        })
        .await;
    assert_eq!(out, Err(Error::Operation(HttpError::NotFound)));
    assert_eq!(attempts.count(), 1, "a 404 is not retried");

    let attempts = Attempts::new();
    let _ = pipeline
        .execute(|_| {
            attempts.mark();
            async { Err::<(), _>(HttpError::Unavailable) }
        })
        .await;
    assert_eq!(attempts.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn responses_can_be_retried_too() {
    let retry = Retry::builder()
        .max_attempts(4)
        .backoff(Backoff::constant(5 * MS))
        .retry_on(|outcome: &Result<u16, Error<()>>| matches!(outcome, Ok(503) | Err(_)))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder().clock(clock()).retry(retry).build().unwrap();
    let attempts = Attempts::new();
    let out = pipeline
        .execute(|_| {
            let n = attempts.mark();
            async move { Ok(if n < 2 { 503 } else { 200 }) }
        })
        .await;
    assert_eq!(out, Ok(200));
    assert_eq!(attempts.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_operation_errors_retry_after_hint_is_honoured() {
    let retry = Retry::builder()
        .max_attempts(2)
        .backoff(Backoff::constant(10 * MS))
        .honour_retry_after()
        .build()
        .unwrap();
    let pipeline = Pipeline::builder().clock(clock()).retry(retry).build().unwrap();
    let attempts = Attempts::new();
    let _ = pipeline
        .execute(|_| {
            attempts.mark();
            async { Err::<(), _>(HttpError::TooManyRequests(Duration::from_secs(2))) }
        })
        .await;
    assert_eq!(attempts.gaps(), [Duration::from_secs(2)], "the hint, not the 10 ms backoff");
}

#[tokio::test(start_paused = true)]
async fn refusal_hints_are_waited_out_and_too_long_hints_end_retries() {
    // A refusal from an inner policy (here simulated by the operation's pipeline error
    // through a fallback-free stack) carries a hint: the retry waits at least that long.
    let events = Events::default();
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(MS))
        .max_retry_after(Duration::from_secs(5))
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .clock(clock())
        .retry(retry)
        .policy(common_refuser::Refuse::new([Duration::from_secs(1), Duration::from_secs(9)]))
        .listener(events.listener())
        .build()
        .unwrap();
    let attempts = Attempts::new();
    let out = pipeline
        .execute(|_| {
            attempts.mark();
            async { Ok::<_, ()>(()) }
        })
        .await;
    assert_eq!(out, Err(Error::CircuitOpen { retry_after: Some(Duration::from_secs(9)) }));
    assert_eq!(attempts.count(), 0, "refused before the operation ran");
    let all = events.all();
    assert!(
        matches!(all[0], Event::Retry { attempt: 1, delay, .. } if delay == Duration::from_secs(1))
    );
    assert_eq!(all[1], Event::RetryAbandoned { attempts: 2, wait: Duration::from_secs(9) });
}

/// A test policy that refuses with the given retry-after hints, one per call.
mod common_refuser {
    use std::sync::Mutex;
    use std::time::Duration;

    use levee_core::EventHook;
    use levee_policy::{Context, Error, Event, Instrument, Operation, Outcome, Policy, Stage};

    pub(crate) struct Refuse(Mutex<Vec<Duration>>);

    impl Refuse {
        pub(crate) fn new<const N: usize>(hints: [Duration; N]) -> Self {
            let mut v = hints.to_vec();
            v.reverse();
            Self(Mutex::new(v))
        }
    }

    impl Instrument for Refuse {
        fn instrument(&mut self, _hook: &EventHook<Event>) {}
    }

    impl<'c, Op: Operation<'c>> Policy<'c, Op> for Refuse {
        async fn run<'s, I: Stage<'c, Op>>(
            &'s self,
            inner: &'s I,
            op: &'s Op,
            ctx: Context<'c>,
        ) -> Outcome<'c, Op>
        where
            'c: 's,
        {
            let hint = self.0.lock().unwrap().pop();
            match hint {
                Some(retry_after) => Err(Error::CircuitOpen { retry_after: Some(retry_after) }),
                None => inner.run(op, ctx).await,
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_retries_during_an_outage() {
    let events = Events::default();
    let clock = ManualClock::new();
    // No ratio, a floor of 1 per second over 10 s: 10 retries in all.
    let budget = Arc::new(
        RetryBudget::builder()
            .ratio(0.0)
            .min_per_sec(1)
            .window(Duration::from_secs(10))
            .build_with_clock(clock.clone())
            .unwrap(),
    );
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(Backoff::Immediate)
        .budget(budget.clone())
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .retry(retry)
        .listener(events.listener())
        .clock(clock.clone())
        .build()
        .unwrap();
    let attempts = Attempts::new();
    for _ in 0..20 {
        let _ = pipeline
            .execute(|_| {
                attempts.mark();
                async { Err::<(), _>(()) }
            })
            .await;
    }
    assert_eq!(attempts.count(), 20 + 10, "20 first attempts, 10 retries from the budget");
    assert_eq!(budget.available(), 0);
    assert!(events.count(|e| matches!(e, Event::RetryBudgetExhausted { .. })) >= 14);
    // Once the window has passed the floor is available again.
    clock.advance(Duration::from_secs(11));
    assert_eq!(budget.available(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_budget_grows_with_successful_traffic() {
    let budget = Arc::new(
        RetryBudget::builder().ratio(0.5).min_per_sec(0).build_with_clock(clock()).unwrap(),
    );
    let retry = Retry::builder()
        .max_attempts(2)
        .backoff(Backoff::Immediate)
        .budget(budget.clone())
        .build()
        .unwrap();
    let pipeline = Pipeline::builder().clock(clock()).retry(retry).build().unwrap();
    for _ in 0..10 {
        pipeline.execute(|_| async { Ok::<_, ()>(()) }).await.unwrap();
    }
    assert_eq!(budget.available(), 5, "ten requests at 50 %");
}

#[test]
fn blocking_calls_retry_on_the_calling_thread() {
    let retry = Retry::builder().max_attempts(3).backoff(Backoff::Immediate).build().unwrap();
    let pipeline = Pipeline::builder().retry(retry).build().unwrap();
    let out = pipeline.call(|ctx| if ctx.attempt() < 2 { Err("flaky") } else { Ok(ctx.attempt()) });
    assert_eq!(out, Ok(2));
}

#[test]
fn invalid_retry_settings_are_named() {
    assert_eq!(Retry::builder().max_attempts(0).build().unwrap_err().setting, "max_attempts");
    let e = Retry::builder().backoff(Backoff::exponential(MS, Duration::ZERO)).build().unwrap_err();
    assert_eq!(e.setting, "backoff.max");
    let e = Retry::builder().max_retry_after(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting, "max_retry_after");
}
