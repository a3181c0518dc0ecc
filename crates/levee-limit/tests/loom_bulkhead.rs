//! Loom: bulkhead permits never exceed the limit, and a releaser never misses a waiter.

use levee_core::ManualClock;
// The bulkhead itself is shared through std's `Arc` (its owned-permit API takes
// `self: &std::sync::Arc<Self>`); loom still models every atomic and lock inside it.
use std::sync::Arc;

use levee_core::sync::{AtomicUsize, Ordering, model, thread};
use levee_limit::Bulkhead;

#[cfg(not(loom))]
use futures::executor::block_on;
#[cfg(loom)]
use loom::future::block_on;

fn bulkhead(limit: usize, queue: usize) -> Arc<Bulkhead<ManualClock>> {
    Arc::new(Bulkhead::builder(limit).max_queue(queue).clock(ManualClock::new()).build().unwrap())
}

#[test]
fn permits_never_exceed_the_limit() {
    model(|| {
        let bulkhead = bulkhead(1, 0);
        let active = levee_core::sync::Arc::new(AtomicUsize::new(0));
        let work = |bulkhead: Arc<Bulkhead<ManualClock>>,
                    active: levee_core::sync::Arc<AtomicUsize>| {
            if let Ok(permit) = bulkhead.try_acquire() {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(now <= 1, "{now} holders of one permit");
                active.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }
        };
        let (b, a) = (bulkhead.clone(), active.clone());
        let t = thread::spawn(move || work(b, a));
        work(bulkhead.clone(), active);
        t.join().unwrap();
        assert_eq!(bulkhead.in_flight(), 0);
    });
}

#[test]
fn a_release_is_never_lost_by_a_waiter() {
    model(|| {
        let bulkhead = bulkhead(1, 1);
        let held = bulkhead.try_acquire_owned().unwrap();
        let waiter = bulkhead.clone();
        let t = thread::spawn(move || {
            // Blocks until the permit is handed over; loom reports a deadlock if the
            // release could miss this waiter.
            let permit = block_on(waiter.acquire()).unwrap();
            assert_eq!(waiter.in_flight(), 1);
            drop(permit);
        });
        drop(held);
        t.join().unwrap();
        assert_eq!(bulkhead.in_flight(), 0);
        assert_eq!(bulkhead.queued(), 0);
    });
}

#[test]
fn raising_the_limit_is_never_lost_by_a_waiter() {
    model(|| {
        let bulkhead = bulkhead(1, 1);
        let _held = bulkhead.try_acquire_owned().unwrap();
        let waiter = bulkhead.clone();
        let t = thread::spawn(move || {
            drop(block_on(waiter.acquire()).unwrap());
        });
        bulkhead.set_limit(2);
        t.join().unwrap();
        assert_eq!(bulkhead.in_flight(), 1);
    });
}

/// Shrinking the limit while a caller acquires: permits already out stay valid, and no new
/// one is granted until the bulkhead is under the new limit.
#[test]
fn a_shrinking_limit_admits_no_more_until_under_it() {
    model(|| {
        let bulkhead = bulkhead(2, 0);
        let held = bulkhead.try_acquire_owned().unwrap();
        let taker = {
            let bulkhead = bulkhead.clone();
            thread::spawn(move || bulkhead.try_acquire_owned().ok())
        };
        let shrinker = {
            let bulkhead = bulkhead.clone();
            thread::spawn(move || bulkhead.set_limit(1))
        };
        let taken = taker.join().unwrap();
        shrinker.join().unwrap();
        assert_eq!(bulkhead.in_flight(), 1 + usize::from(taken.is_some()));
        assert!(bulkhead.try_acquire().is_err(), "at or over the new limit of one");
        drop(held);
        if taken.is_some() {
            assert!(bulkhead.try_acquire().is_err(), "still at the limit of one");
            drop(taken);
        }
        let permit = bulkhead.try_acquire().unwrap();
        assert!(bulkhead.try_acquire().is_err());
        drop(permit);
    });
}
