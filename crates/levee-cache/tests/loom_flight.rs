//! Model checks of the single-flight state machine (leader, waiters, cancellation, panics)
//! and of the invalidation-vs-load race. `cargo test` runs each body once;
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_flight` explores every interleaving
//! (bounded by `LOOM_MAX_PREEMPTIONS`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use levee_cache::{Cache, SingleFlight};
use levee_core::ManualClock;
use levee_core::sync::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, model, thread};

#[cfg(not(loom))]
use futures::{executor::block_on, task::AtomicWaker};
#[cfg(loom)]
use loom::future::{AtomicWaker, block_on};

/// A door a load waits behind until another thread opens it.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.waker.wake();
    }
}

struct Wait(Arc<Gate>);

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        #[cfg(loom)]
        self.0.waker.register_by_ref(cx.waker());
        #[cfg(not(loom))]
        self.0.waker.register(cx.waker());
        if self.0.open.load(Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
    }
}

/// Polls `f` to the end on this thread, sleeping between polls until woken; a panic in `poll`
/// comes back as `None`. (Unwinding through loom's `block_on` would poison loom's own state.)
///
/// The waker sets a flag under a mutex and signals a condition variable rather than unparking
/// the thread: loom 0.7 does not always keep std's unpark token (one stored while the thread
/// is not parked yet is dropped if the thread then blocks on a mutex, and even a plain "set a
/// flag, unpark; swap the flag, park while clear" deadlocks under `LOOM_MAX_PREEMPTIONS=3`),
/// so a wake-up that came while the poll was still finishing was lost to the model.
fn drive_catching<F: Future>(f: F) -> Option<F::Output> {
    #[derive(Default)]
    struct Signal {
        woken: Mutex<bool>,
        cond: Condvar,
    }
    impl std::task::Wake for Signal {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            *self.woken.lock() = true;
            self.cond.notify_all();
        }
    }
    let mut f = std::pin::pin!(f);
    let signal = std::sync::Arc::new(Signal::default());
    let waker = std::task::Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(v)) => return Some(v),
            Ok(Poll::Pending) => {
                let mut woken = signal.woken.lock();
                while !*woken {
                    woken = signal.cond.wait(woken);
                }
                *woken = false;
            }
            Err(_) => return None,
        }
    }
}

fn gated_load(
    gate: &Arc<Gate>,
    runs: &Arc<AtomicUsize>,
) -> impl Future<Output = u32> + Send + use<> {
    let (gate, runs) = (gate.clone(), runs.clone());
    async move {
        runs.fetch_add(1, Ordering::SeqCst);
        Wait(gate).await;
        7
    }
}

/// The leader starts a load and is cancelled; a waiter arrives meanwhile. Whatever the order,
/// the waiter gets the value (by driving the leader's load or by loading itself), nobody hangs,
/// and nothing is left registered.
#[test]
fn cancelled_leader_never_strands_a_waiter() {
    model(|| {
        let group: SingleFlight<u8, u32> = SingleFlight::new();
        let (gate, runs) = (Arc::new(Gate::default()), Arc::new(AtomicUsize::new(0)));

        let leader = {
            let (group, load) = (group.clone(), gated_load(&gate, &runs));
            thread::spawn(move || {
                let mut call = Box::pin(group.run_async(1, load));
                let waker = futures::task::noop_waker();
                let polled = call.as_mut().poll(&mut Context::from_waker(&waker));
                drop(call); // cancelled (whether or not it had finished)
                polled
            })
        };
        let waiter = {
            let (group, load) = (group.clone(), gated_load(&gate, &runs));
            thread::spawn(move || block_on(group.run_async(1, load)))
        };
        gate.open();
        assert_eq!(waiter.join().unwrap(), 7);
        let _ = leader.join().unwrap();
        assert!((1..=2).contains(&runs.load(Ordering::SeqCst)));
        assert_eq!(group.in_flight(), 0);
    });
}

/// A blocking caller and an async caller miss the same key: one load, both get its value.
#[test]
fn blocking_and_async_callers_share_a_load() {
    model(|| {
        let group: SingleFlight<u8, u32> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let blocking = {
            let (group, runs) = (group.clone(), runs.clone());
            thread::spawn(move || {
                group.run(1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    7
                })
            })
        };
        let r = runs.clone();
        let got = block_on(group.run_async(1, async move {
            r.fetch_add(1, Ordering::SeqCst);
            7
        }));
        assert_eq!(got, 7);
        assert_eq!(blocking.join().unwrap(), 7);
        // Two runs only if the calls did not overlap.
        assert_eq!(runs.load(Ordering::SeqCst), 2 - group.coalesced() as usize);
        assert_eq!(group.in_flight(), 0);
    });
}

/// The leader's loader panics while a waiter waits: the panic stays with the leader and the
/// waiter loads by itself.
#[test]
fn a_panicking_leader_hands_over_to_its_waiter() {
    // Thousands of interleavings each panic once on purpose: keep the output readable.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"loader bug") {
            default_hook(info);
        }
    }));
    model(|| {
        let group: SingleFlight<u8, u32> = SingleFlight::new();
        let gate = Arc::new(Gate::default());
        let leader = {
            let (group, gate) = (group.clone(), gate.clone());
            thread::spawn(move || {
                let call = group.run_async(1, async move {
                    Wait(gate).await;
                    panic!("loader bug")
                });
                drive_catching(call)
            })
        };
        let waiter = {
            let group = group.clone();
            thread::spawn(move || block_on(group.run_async(1, async { 9 })))
        };
        gate.open();
        let got = waiter.join().unwrap();
        let leader_got = leader.join().unwrap();
        // The waiter either led its own load from the start or took over after the panic.
        assert_eq!(got, 9);
        // The "leader" either led and got its own panic, or came second and shared the
        // waiter's load.
        assert!(matches!(leader_got, None | Some(9)), "{leader_got:?}");
        assert_eq!(group.in_flight(), 0);
    });
}

/// A load reads a version while another thread bumps it and invalidates: the cache never ends
/// holding the version read before the invalidation.
#[test]
fn invalidation_beats_an_overlapping_load() {
    model(|| {
        let cache: Cache<u8, usize, ManualClock> =
            Cache::builder().max_capacity(4).shards(1).clock(ManualClock::new()).build().unwrap();
        let version = Arc::new(AtomicUsize::new(0));
        let loader = {
            let (cache, version) = (cache.clone(), version.clone());
            thread::spawn(move || cache.get_with(1, || version.load(Ordering::SeqCst)))
        };
        version.store(1, Ordering::SeqCst);
        cache.invalidate(&1);
        let loaded = loader.join().unwrap();
        assert!(loaded <= 1);
        assert_ne!(cache.get(&1), Some(0), "the pre-invalidation value survived");
    });
}

/// A reader racing a writer on one shard sees the old value or the new one.
#[test]
fn a_reader_sees_a_whole_write() {
    model(|| {
        let cache: Cache<u8, (u32, u32), ManualClock> =
            Cache::builder().max_capacity(4).shards(1).clock(ManualClock::new()).build().unwrap();
        cache.insert(1, (1, 1));
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || cache.insert(1, (2, 2)))
        };
        let seen = cache.get(&1).unwrap();
        assert!(seen == (1, 1) || seen == (2, 2), "torn read {seen:?}");
        writer.join().unwrap();
        assert_eq!(cache.get(&1), Some((2, 2)));
    });
}
