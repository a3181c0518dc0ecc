//! `CircuitBreaker::reconfigure`: each documented rule (window and state kept, thresholds
//! at the next decision, open waits shortened at once and lengthened from the next opening,
//! trial counts, refused window changes), and a reconfigured idle breaker against a fresh one.

use std::time::Duration;

use levee_breaker::{BreakerSettings, CircuitBreaker, OpenWait, SlidingWindow, State};
use levee_core::ManualClock;
use proptest::prelude::*;

fn breaker(clock: &ManualClock, settings: BreakerSettings) -> CircuitBreaker<ManualClock> {
    CircuitBreaker::builder().settings(settings).clock(clock.clone()).build().unwrap()
}

fn base() -> BreakerSettings {
    BreakerSettings {
        window: SlidingWindow::count(10),
        minimum_calls: 4,
        failure_rate_threshold: 50.0,
        open_wait: OpenWait::fixed(Duration::from_secs(60)),
        half_open_calls: 2,
        ..Default::default()
    }
}

fn fail(b: &CircuitBreaker<ManualClock>) {
    b.try_acquire().unwrap().failure();
}

fn succeed(b: &CircuitBreaker<ManualClock>) {
    b.try_acquire().unwrap().success();
}

#[test]
fn thresholds_apply_at_the_next_decision_and_the_window_is_kept() {
    let clock = ManualClock::new();
    let b = breaker(&clock, BreakerSettings { failure_rate_threshold: 90.0, ..base() });
    for _ in 0..3 {
        fail(&b);
    }
    succeed(&b); // 75 %
    assert_eq!(b.metrics().calls, 4);
    let old = b.reconfigure(base()).unwrap();
    assert_eq!(old.failure_rate_threshold, 90.0);
    assert_eq!(b.settings().failure_rate_threshold, 50.0);
    assert_eq!((b.state(), b.metrics().calls), (State::Closed, 4), "kept until judged");
    succeed(&b); // a success never opens: judged at the next failure
    assert_eq!(b.state(), State::Closed);
    fail(&b); // 4 of 6 = 67 % >= 50 %
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_shorter_wait_ends_the_current_open_period_sooner() {
    let clock = ManualClock::new();
    let b = breaker(&clock, base());
    b.trip();
    clock.advance(Duration::from_secs(2));
    b.reconfigure(BreakerSettings { open_wait: OpenWait::fixed(Duration::from_secs(5)), ..base() })
        .unwrap();
    let refusal = b.try_acquire().unwrap_err();
    assert_eq!(refusal.retry_after(), Some(Duration::from_secs(3)), "entry + 5 s");
    clock.advance(Duration::from_secs(3));
    assert!(b.try_acquire().is_ok());
    assert_eq!(b.state(), State::HalfOpen);
}

#[test]
fn a_longer_wait_starts_with_the_next_opening() {
    let clock = ManualClock::new();
    let b = breaker(&clock, base());
    b.trip();
    b.reconfigure(BreakerSettings {
        open_wait: OpenWait::fixed(Duration::from_secs(600)),
        ..base()
    })
    .unwrap();
    assert_eq!(b.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(60)));
    clock.advance(Duration::from_secs(60));
    // Half-open; both trials fail: the next opening waits the new 600 s.
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(600)));
}

#[test]
fn exponential_backoff_continues_from_the_openings_counted() {
    let clock = ManualClock::new();
    let exp = |first| OpenWait::exponential(Duration::from_secs(first), Duration::from_secs(3600));
    let b = breaker(&clock, BreakerSettings { open_wait: exp(10), ..base() });
    b.trip(); // first opening: 10 s
    clock.advance(Duration::from_secs(10));
    fail(&b);
    fail(&b); // second opening: 20 s
    assert_eq!(b.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(20)));
    // Base 5 s: the second opening's wait is now 10 s, counted from its entry.
    b.reconfigure(BreakerSettings { open_wait: exp(5), ..base() }).unwrap();
    assert_eq!(b.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(10)));
    assert_eq!(b.metrics().consecutive_openings, 2);
}

#[test]
fn half_open_trials_follow_the_new_count() {
    let clock = ManualClock::new();
    let b = breaker(&clock, base());
    b.trip();
    clock.advance(Duration::from_secs(60));
    let first = b.try_acquire().unwrap();
    b.reconfigure(BreakerSettings { half_open_calls: 1, ..base() }).unwrap();
    assert!(b.try_acquire().is_err(), "one trial is out, the new count is one");
    first.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn the_window_cannot_change_and_bad_settings_are_refused() {
    let clock = ManualClock::new();
    let b = breaker(&clock, base());
    let err =
        b.reconfigure(BreakerSettings { window: SlidingWindow::count(20), ..base() }).unwrap_err();
    assert_eq!(err.setting, "window");
    let err = b.reconfigure(BreakerSettings { minimum_calls: 0, ..base() }).unwrap_err();
    assert_eq!(err.setting, "minimum_calls");
    assert_eq!(b.settings(), &base());
}

#[test]
fn forced_states_are_kept() {
    let clock = ManualClock::new();
    let b = breaker(&clock, base());
    b.force_open();
    b.reconfigure(BreakerSettings { open_wait: OpenWait::fixed(Duration::from_secs(1)), ..base() })
        .unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(b.try_acquire().unwrap_err().state(), State::ForcedOpen);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A breaker reconfigured before any call decides exactly like one built with the new
    /// settings, call after call.
    #[test]
    fn an_idle_breaker_reconfigured_is_a_fresh_one(
        threshold in 1.0f64..100.0,
        minimum in 1u32..10,
        wait_s in 1u64..100,
        calls in prop::collection::vec((any::<bool>(), 0u64..30), 1..60),
    ) {
        let settings = BreakerSettings {
            failure_rate_threshold: threshold,
            minimum_calls: minimum,
            open_wait: OpenWait::fixed(Duration::from_secs(wait_s)),
            ..base()
        };
        let clock = ManualClock::new();
        let changed = breaker(&clock, base());
        changed.reconfigure(settings.clone()).unwrap();
        let fresh = breaker(&clock, settings);
        for (ok, advance) in calls {
            clock.advance(Duration::from_secs(advance));
            match (changed.try_acquire(), fresh.try_acquire()) {
                (Ok(a), Ok(b)) => {
                    if ok { a.success(); b.success(); } else { a.failure(); b.failure(); }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a.is_ok(), b.is_ok()),
            }
            prop_assert_eq!(changed.state(), fresh.state());
        }
    }
}

/// A full count window already over a lowered threshold opens on the next failure even when
/// that failure evicts a failure (the window's tally does not move, the verdict does).
#[test]
fn a_lowered_threshold_opens_on_a_failure_that_evicts_a_failure() {
    let clock = ManualClock::new();
    let settings = |threshold| BreakerSettings {
        window: SlidingWindow::count(4),
        failure_rate_threshold: threshold,
        ..base()
    };
    let b = breaker(&clock, settings(100.0));
    for _ in 0..3 {
        fail(&b);
    }
    succeed(&b); // F F F S: 75 %
    b.reconfigure(settings(50.0)).unwrap();
    fail(&b); // F F S F: still 75 %, evicting a failure
    assert_eq!(b.state(), State::Open);
}
