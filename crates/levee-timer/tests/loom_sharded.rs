//! Concurrency checks of `ShardedWheel`, the core of `TimerService`: schedule and cancel from
//! several threads against the poller (the service's driver). Plain `cargo test` runs each
//! body once; under `RUSTFLAGS="--cfg loom"` loom explores every interleaving.

use std::sync::atomic::AtomicBool;
use std::task::{Wake, Waker};

use levee_core::sync::{Arc, model, thread};
use levee_timer::{ShardedWheel, TimingWheel};

const MS: u64 = 1_000_000;

/// Two threads each schedule a timer and cancel it while the poller fires what is due: every
/// timer is either cancelled (cancel returned its value) or fired, never both, never neither.
#[test]
fn cancel_and_fire_are_exclusive() {
    model(|| {
        let wheel = Arc::new(ShardedWheel::new(2, TimingWheel::builder()).unwrap());
        let threads: Vec<_> = (0..2usize)
            .map(|t| {
                let wheel = wheel.clone();
                thread::spawn(move || {
                    let (handle, _) = wheel.insert_on(t, MS, t).unwrap();
                    wheel.cancel(handle)
                })
            })
            .collect();
        let mut fired = Vec::new();
        wheel.poll_expired(2 * MS, &mut fired, usize::MAX);
        let cancelled: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        // Whatever the first pass missed is due too; nothing may remain.
        wheel.poll_expired(2 * MS, &mut fired, usize::MAX);
        for (t, cancelled) in cancelled.into_iter().enumerate() {
            let was_fired = fired.iter().filter(|e| e.value == t).count();
            match cancelled {
                Some(v) => assert!(v == t && was_fired == 0, "timer {t} cancelled and fired"),
                None => assert_eq!(was_fired, 1, "timer {t} neither cancelled nor fired once"),
            }
        }
        assert!(wheel.is_empty());
    });
}

/// A timer scheduled while the poller computes its next wake-up is never missed: either the
/// poller's pass saw it (its `next` is no later than the timer), or the insert says "wake".
#[test]
fn an_earlier_timer_is_never_slept_through() {
    model(|| {
        let wheel = Arc::new(ShardedWheel::new(2, TimingWheel::builder()).unwrap());
        wheel.insert_on(0, 50 * MS, 0).unwrap();
        wheel.poll_expired(0, &mut Vec::new(), usize::MAX); // the poller plans to wake at 50 ms
        let inserter = {
            let wheel = wheel.clone();
            thread::spawn(move || wheel.insert_on(1, 5 * MS, 1).unwrap().1)
        };
        // The pass runs on a thread of its own: on the model's main thread loom ran this test
        // in one interleaving only (`LOOM_LOG=info`: "Completed in 1 iterations"), here 23.
        let poller = {
            let wheel = wheel.clone();
            thread::spawn(move || wheel.poll_expired(0, &mut Vec::new(), usize::MAX))
        };
        let (wake, polled) = (inserter.join().unwrap(), poller.join().unwrap());
        assert!(
            wake || polled.next.is_some_and(|n| n <= 5 * MS),
            "the poller would sleep until {:?} past the 5 ms timer",
            polled.next
        );
    });
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A sleeping task registers its waker while the poller fires the timer: if registration
/// found the timer still pending (the task returns `Pending`), the poller wakes that waker.
#[test]
fn a_registered_waker_is_never_lost() {
    model(|| {
        let wheel: Arc<ShardedWheel<Option<Waker>>> =
            Arc::new(ShardedWheel::new(1, TimingWheel::builder()).unwrap());
        let (handle, _) = wheel.insert_on(0, MS, None).unwrap();
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let sleeper = {
            let wheel = wheel.clone();
            let waker = Waker::from(flag.clone());
            thread::spawn(move || wheel.with_value(handle, |slot| *slot = Some(waker)).is_some())
        };
        let mut out = Vec::new();
        wheel.poll_expired(2 * MS, &mut out, usize::MAX);
        for waker in out.drain(..).filter_map(|e| e.value) {
            waker.wake();
        }
        let pending = sleeper.join().unwrap();
        if pending {
            assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst), "waker lost");
        }
    });
}

/// The poller skips a shard without its lock when nothing there was due as it last saw it.
/// A timer made due meanwhile (an insert into that shard, at a past deadline) is never
/// skipped silently: either the pass fires it, or the insert says "wake".
#[test]
fn a_skipped_shard_never_hides_a_due_timer() {
    model(|| {
        let wheel = Arc::new(ShardedWheel::new(2, TimingWheel::builder()).unwrap());
        wheel.insert_on(0, 50 * MS, 0).unwrap();
        wheel.poll_expired(0, &mut Vec::new(), usize::MAX); // shard 0 reported at 50 ms
        let inserter = {
            let wheel = wheel.clone();
            thread::spawn(move || wheel.insert_on(0, MS, 1).unwrap().1)
        };
        let poller = {
            let wheel = wheel.clone();
            thread::spawn(move || {
                let mut out = Vec::new();
                wheel.poll_expired(2 * MS, &mut out, usize::MAX);
                out.iter().any(|e| e.value == 1)
            })
        };
        // On threads of their own, as above (23 interleavings; one with the pass on the main
        // thread).
        let (wake, fired) = (inserter.join().unwrap(), poller.join().unwrap());
        assert!(wake || fired, "the due timer was neither fired nor signalled");
        if !fired {
            // The wake-up's pass finds it.
            let mut out = Vec::new();
            wheel.poll_expired(2 * MS, &mut out, usize::MAX);
            assert!(out.iter().any(|e| e.value == 1));
        }
    });
}
