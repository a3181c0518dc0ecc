//! One family of rate limiters: every limiter (and one key of a keyed limiter) behaves the
//! same through `RateLimit`, is an `AsyncRateLimit` with ready futures, and drops into the
//! tower layer; a remote limiter does too. Time is a `ManualClock` (with paused tokio time
//! where something awaits).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use levee_core::{Clock, ManualClock};
use levee_limit::tower::{LimitError, RateLimitLayer};
use levee_limit::{
    AsyncRateLimit, CheckNError, FixedWindowLimiter, KeyedRateLimiter, LimitPolicy, LimitState,
    Pacer, Quota, RateLimit, RateLimiter, RateStats, SlidingWindowLimiter, WarmUpLimiter,
    WindowQuota,
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// What every limiter of the family does with a limit of 3 at once: three cells pass, the
/// fourth is refused with a time to come back, more than 3 at once never fit, the wait ends
/// when the clock gets there, and the refusal was counted.
async fn behaves_as_a_limit_of_three(limiter: &impl RateLimit, clock: &ManualClock) {
    assert!(limiter.check_n(2).is_ok());
    assert!(limiter.check().is_ok());
    let refusal = limiter.check().unwrap_err();
    assert!(refusal.retry_after() > Duration::ZERO);
    assert!(matches!(limiter.check_n(4), Err(CheckNError::InsufficientCapacity(_))));
    assert!(limiter.until_n_ready(4).await.is_err(), "waiting would never end");
    let before = clock.now();
    limiter.until_ready().await;
    assert!(clock.now() >= refusal.earliest().max(before), "woke when the clock got there");
    let RateStats { rejected, .. } = limiter.stats();
    assert_eq!(rejected, 2, "the refused check and the oversized batch");
}

#[tokio::test(start_paused = true)]
async fn every_limiter_is_one_kind_of_limit() {
    let clock = ManualClock::new();
    let quota = Quota::per_second(3);
    let window = WindowQuota::per_second(3);
    let gcra = RateLimiter::builder(quota).clock(clock.clone()).build().unwrap();
    behaves_as_a_limit_of_three(&gcra, &clock).await;
    let fixed = FixedWindowLimiter::builder(window).clock(clock.clone()).build().unwrap();
    behaves_as_a_limit_of_three(&fixed, &clock).await;
    let sliding = SlidingWindowLimiter::builder(window).clock(clock.clone()).build().unwrap();
    behaves_as_a_limit_of_three(&sliding, &clock).await;
    let warm = WarmUpLimiter::builder(quota).cold_factor(1.0).clock(clock.clone()).build().unwrap();
    behaves_as_a_limit_of_three(&warm, &clock).await;
    let pacer = Pacer::builder(quota).clock(clock.clone()).build().unwrap();
    behaves_as_a_limit_of_three(&pacer, &clock).await;
    let keyed = KeyedRateLimiter::<String>::builder(quota).clock(clock.clone()).build().unwrap();
    behaves_as_a_limit_of_three(&keyed.key("alice"), &clock).await;
    assert!(keyed.key("bob").check_n(3).is_ok(), "each key its own limit");
}

const MS: Duration = Duration::from_millis(1);

fn state(remaining: u32, reset: Duration) -> LimitState {
    LimitState { remaining, reset }
}

/// Takes two of the four cells, then reports the state at once and 250 ms later.
fn states_after_two(limiter: &impl RateLimit, clock: &ManualClock) -> (LimitState, LimitState) {
    limiter.check_n(2).unwrap();
    let first = limiter.state();
    clock.advance(250 * MS);
    let later = limiter.state();
    clock.advance(Duration::from_secs(10)); // full again for the next limiter
    (first, later)
}

/// Each algorithm's state, as its documented meaning says: GCRA's refills continuously
/// and is full again when its theoretical arrival time comes; a window's is full when the
/// cells it counts have left it.
#[test]
fn every_limiter_reports_its_state_and_policy() {
    let clock = ManualClock::new();
    let (quota, window) = (Quota::per_second(4), WindowQuota::per_second(4));
    let per_second = LimitPolicy { quota: 4, window: Duration::from_secs(1) };
    let gcra_like = (state(2, 500 * MS), state(3, 250 * MS));

    let gcra = RateLimiter::with_clock(quota, clock.clone()).unwrap();
    assert_eq!(RateLimit::state(&gcra), state(4, Duration::ZERO), "fresh: full");
    assert_eq!(states_after_two(&gcra, &clock), gcra_like);
    assert_eq!(RateLimit::policy(&gcra), per_second);
    let pacer = Pacer::builder(quota).clock(clock.clone()).build().unwrap();
    assert_eq!(states_after_two(&pacer, &clock), gcra_like);
    let warm = WarmUpLimiter::builder(quota).cold_factor(1.0).clock(clock.clone()).build();
    assert_eq!(states_after_two(&warm.unwrap(), &clock), gcra_like);
    let keyed = KeyedRateLimiter::<String>::builder(quota).clock(clock.clone()).build().unwrap();
    assert_eq!(states_after_two(&keyed.key("alice"), &clock), gcra_like);
    assert_eq!(keyed.key("bob").state(), state(4, Duration::ZERO), "an unknown key is full");
    assert_eq!(RateLimit::policy(&keyed.key("bob")), per_second);

    // Windows are aligned on the clock: start on a whole second.
    clock.advance_nanos(1_000_000_000 - clock.now() % 1_000_000_000);
    let fixed = FixedWindowLimiter::builder(window).clock(clock.clone()).build().unwrap();
    assert_eq!(states_after_two(&fixed, &clock), (state(2, 1000 * MS), state(2, 750 * MS)));
    assert_eq!(RateLimit::policy(&fixed), per_second);
    clock.advance(750 * MS);
    let sliding = SlidingWindowLimiter::builder(window).clock(clock.clone()).build().unwrap();
    assert_eq!(states_after_two(&sliding, &clock), (state(2, 1000 * MS), state(2, 750 * MS)));
    assert_eq!(RateLimit::state(&fixed), state(4, Duration::ZERO), "long after: full");
}

/// While cold, the warm-up limiter's `remaining` is a lower bound: every cell it promises
/// is admitted one at a time (and a few more may be, each cheaper than the last).
#[test]
fn a_cold_warm_up_limiter_promises_no_more_than_it_admits() {
    let clock = ManualClock::new();
    let limiter = WarmUpLimiter::builder(Quota::per_second(100).with_burst(10))
        .cold_factor(3.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    let promised = limiter.state().remaining;
    let admitted = std::iter::from_fn(|| limiter.check().ok()).take(100).count() as u32;
    assert!(promised >= 2 && promised <= admitted, "promised {promised}, admitted {admitted}");
    assert!(admitted < 10, "cold: fewer than the burst ({admitted})");
    assert_eq!(limiter.state().remaining, 0);
}

#[test]
fn a_local_limiter_reports_its_state_with_its_decision() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::per_minute(2), clock).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let first = pin!(limiter.check_n_with_state(1)).poll(&mut cx);
    assert_eq!(first, Poll::Ready(Ok(Some(state(1, Duration::from_secs(30))))));
    assert_eq!(
        limiter.try_decide_now_with_state(1),
        Some(Ok(Some(state(0, Duration::from_secs(60)))))
    );
    assert!(matches!(limiter.try_decide_now_with_state(1), Some(Err(CheckNError::Throttled(_)))));
    assert_eq!(AsyncRateLimit::policy(&limiter), Some(LimitPolicy::from(Quota::per_minute(2))));
}

#[test]
fn a_local_limiter_is_an_async_one_whose_answer_is_ready_at_once() {
    let limiter = RateLimiter::builder(Quota::per_minute(1)).clock(ManualClock::new()).build();
    let limiter = limiter.unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let first = pin!(AsyncRateLimit::check_n(&limiter, 1)).poll(&mut cx);
    assert_eq!(first, Poll::Ready(Ok(())));
    let second = pin!(AsyncRateLimit::check_n(&limiter, 1)).poll(&mut cx);
    assert!(matches!(second, Poll::Ready(Err(CheckNError::Throttled(_)))));
    assert_eq!(AsyncRateLimit::stats(&limiter).rejected, 1);
    assert_eq!(limiter.try_decide_now(1).map(|r| r.is_err()), Some(true));
}

/// Sends `n` requests through a tower service guarded by `limiter`; returns how many passed.
async fn passed_through_the_layer<L: AsyncRateLimit + 'static>(limiter: Arc<L>, n: u32) -> u32 {
    let inner = service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) });
    let mut svc = RateLimitLayer::new(limiter).layer(inner);
    let mut passed = 0;
    for i in 0..n {
        match svc.ready().await.unwrap().call(i).await {
            Ok(_) => passed += 1,
            Err(LimitError::Throttled(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    passed
}

/// The swap a user makes: the same guarded service, GCRA in one test and a sliding window in
/// the other; the only difference is the line that builds the limiter.
#[tokio::test]
async fn swapping_gcra_for_a_sliding_window_is_one_line() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(Quota::per_second(5)).clock(clock.clone()).build();
    assert_eq!(passed_through_the_layer(Arc::new(limiter.unwrap()), 8).await, 5);

    let clock = ManualClock::new();
    let limiter =
        SlidingWindowLimiter::builder(WindowQuota::per_second(5)).clock(clock.clone()).build();
    assert_eq!(passed_through_the_layer(Arc::new(limiter.unwrap()), 8).await, 5);
}

/// A stand-in for a remote limiter: each decision takes a round trip (one `Pending`), and it
/// admits its first `allow` cells.
struct Remote {
    allow: u32,
    asked: AtomicU32,
}

impl AsyncRateLimit for Remote {
    async fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
        let before = self.asked.fetch_add(n, Ordering::SeqCst);
        if before + n <= self.allow {
            Ok(())
        } else {
            Err(levee_limit::Throttled::new(0, 1_000_000).into())
        }
    }

    fn stats(&self) -> RateStats {
        RateStats::default()
    }
}

#[tokio::test]
async fn a_remote_limiter_drops_into_the_same_layer() {
    let remote = Arc::new(Remote { allow: 2, asked: AtomicU32::new(0) });
    assert_eq!(passed_through_the_layer(remote.clone(), 4).await, 2);
    assert_eq!(remote.asked.load(Ordering::SeqCst), 4, "one decision per request");
}
