//! Loom: concurrent checks never admit more than the burst at one instant.

use levee_core::ManualClock;
use levee_core::sync::{Arc, AtomicUsize, Ordering, model, thread};
use levee_limit::{Quota, RateLimiter};

#[test]
fn concurrent_checks_admit_exactly_the_burst() {
    model(|| {
        // The clock stands still: exactly `burst` (2) of the 3 checks may pass.
        let limiter = Arc::new(
            RateLimiter::with_clock(Quota::per_second(1).with_burst(2), ManualClock::new())
                .unwrap(),
        );
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (limiter, admitted) = (limiter.clone(), admitted.clone());
                thread::spawn(move || {
                    if limiter.check().is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        if limiter.check().is_ok() {
            admitted.fetch_add(1, Ordering::Relaxed);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 2);
        assert!(limiter.check().is_err());
    });
}

#[test]
fn concurrent_batches_never_exceed_the_burst() {
    model(|| {
        let limiter = Arc::new(
            RateLimiter::with_clock(Quota::per_second(1).with_burst(3), ManualClock::new())
                .unwrap(),
        );
        let other = limiter.clone();
        let t = thread::spawn(move || if other.check_n(2).is_ok() { 2 } else { 0 });
        let mine = if limiter.check_n(2).is_ok() { 2 } else { 0 };
        let total = mine + t.join().unwrap();
        assert_eq!(total, 2, "two batches of two cannot both fit a burst of three");
        assert_eq!(limiter.available(), 1);
    });
}

/// A quota change racing a check: the check runs on the old quota (and its cell is carried
/// over) or on the new one, never on a mix, and the cell is counted exactly once.
#[test]
fn a_check_racing_a_reconfiguration_is_counted_once() {
    model(|| {
        let limiter = Arc::new(
            RateLimiter::with_clock(Quota::per_second(1).with_burst(2), ManualClock::new())
                .unwrap(),
        );
        let checker = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.check().is_ok())
        };
        let changer = {
            let limiter = limiter.clone();
            // Twice the rate, same burst: one cell owed is 500 ms under either quota's view
            // once translated.
            thread::spawn(move || limiter.reconfigure(Quota::per_second(2).with_burst(2)))
        };
        assert!(checker.join().unwrap(), "one cell always fits a burst of two");
        assert_eq!(changer.join().unwrap().unwrap(), Quota::per_second(1).with_burst(2));
        let state = limiter.state();
        assert_eq!(state.remaining, 1, "the cell is owed exactly once");
        assert_eq!(state.reset, std::time::Duration::from_millis(500));
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
    });
}

/// Two checks racing a change that shrinks the burst: never more admitted than the larger
/// burst, and after the change the debt is capped by the new burst.
#[test]
fn checks_racing_a_shrinking_burst_never_overshoot() {
    model(|| {
        let limiter = Arc::new(
            RateLimiter::with_clock(Quota::per_second(1).with_burst(2), ManualClock::new())
                .unwrap(),
        );
        let checkers: Vec<_> = (0..2)
            .map(|_| {
                let limiter = limiter.clone();
                thread::spawn(move || limiter.check().is_ok())
            })
            .collect();
        let changer = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.reconfigure(Quota::per_second(1).with_burst(1)))
        };
        let admitted = checkers.into_iter().map(|c| c.join().unwrap()).filter(|&ok| ok).count();
        changer.join().unwrap().unwrap();
        // At least the first check fits either burst; the second only the old one.
        assert!((1..=2).contains(&admitted), "{admitted} admitted");
        assert_eq!(limiter.available(), 0, "a burst of one owes its cell");
        assert_eq!(limiter.state().reset, std::time::Duration::from_secs(1), "capped by burst 1");
    });
}
