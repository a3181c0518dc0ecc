//! Loom: the keyed limiter's biased shard lock never lets a writer (a new key, a sweep)
//! touch a table while a reader (a check of a present key) is in it; loom tracks every
//! access to the table's cell and reports any overlap as a data race.

use std::time::Duration;

use levee_core::ManualClock;
use levee_core::sync::{Arc, model, thread};
use levee_limit::{KeyedRateLimiter, Quota};

fn limiter(clock: &ManualClock) -> KeyedRateLimiter<u32, ManualClock, foldhash::fast::FixedState> {
    KeyedRateLimiter::<u32>::builder(Quota::per_second(1).with_burst(2))
        .shards(1)
        .hasher(foldhash::fast::FixedState::with_seed(1)) // loom replays must be deterministic
        .sweep_interval(Duration::from_millis(1))
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn a_check_and_an_insert_never_overlap() {
    model(|| {
        let clock = ManualClock::new();
        let keyed = Arc::new(limiter(&clock));
        keyed.check(&1).unwrap(); // present: later checks of key 1 take the read path
        let _ = keyed.available(&1); // one unbiased read turns the bias back on (loom setting)
        let other = keyed.clone();
        let t = thread::spawn(move || other.check(&2).is_ok()); // a new key: the write path
        let mine = keyed.check(&1).is_ok();
        assert!(t.join().unwrap());
        assert!(mine, "key 1 has a burst of two");
        assert!(keyed.check(&1).is_err());
        assert_eq!(keyed.len(), 2);
    });
}

#[test]
fn a_sweep_never_drops_a_key_a_check_is_updating() {
    model(|| {
        let clock = ManualClock::new();
        let keyed = Arc::new(limiter(&clock));
        keyed.check(&1).unwrap();
        let _ = keyed.available(&1); // back to biased reads
        clock.advance(Duration::from_secs(1)); // key 1 has refilled; a sweep is due
        let other = keyed.clone();
        let t = thread::spawn(move || other.check(&1).is_ok()); // may run the sweep
        let reclaimed = keyed.reclaim(); // a sweep of its own
        assert!(t.join().unwrap());
        // Whatever the order, key 1's admission is not lost: either the sweep ran first and
        // the check re-added the key, or the check ran first and the key is not refilled.
        assert!(reclaimed <= 1);
        assert_eq!(keyed.len(), 1);
        assert!(keyed.check(&1).is_ok());
        assert!(keyed.check(&1).is_err(), "two cells used of a burst of two");
    });
}
