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
