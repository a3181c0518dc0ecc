//! One in-flight load that many callers share: the state machine under `get_with` and
//! [`SingleFlight`](crate::SingleFlight).
//!
//! How it works. A flight is either *sync* (a thread runs the loader closure and publishes the
//! result) or *async* (the load is a `'static` future kept **in the flight**, not in any caller).
//! Every async caller holds a [`Join`] handle; polling any handle drives the shared future, with
//! a waker that wakes every handle, so whichever caller is polled next makes progress. The
//! leading caller is therefore not special: if it is cancelled, the others keep driving the load
//! (moka issue 240 is the bug this avoids). When the *last* handle goes away before the load
//! finishes, nobody wants the result, so the future is dropped and the flight is *abandoned*.
//!
//! A panic inside the loader is caught (`catch_unwind`) and also abandons the flight: its leader
//! gets the panic back to resume, every other waiter gets [`Outcome::Retry`] and takes over with
//! its own loader. Blocking waiters park their thread; they never poll an async load (it may need
//! a runtime they are not in), and retry if it is abandoned.
//!
//! Phases: `Running` -> `Done(value)` | `Abandoned(panic)`. Both ends are final.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use levee_core::sync::{Arc, AtomicBool, Mutex, Ordering, thread};
use slab::Slab;

/// A caught panic.
pub(crate) type Payload = Box<dyn Any + Send>;
/// The future an async flight drives: the value, or the panic its loader raised (caught right
/// around the loader, so the unwinding never crosses the flight's or the cache's state).
pub(crate) type LoadFuture<T> = Pin<Box<dyn Future<Output = Result<T, Payload>> + Send>>;
/// What an abandoned flight runs once (the cache removes it from its map); the argument says
/// whether the loader panicked.
pub(crate) type AbandonHook = Box<dyn FnOnce(bool) + Send>;

/// How a wait on a flight ended.
pub(crate) enum Outcome<T> {
    /// The load finished with this value.
    Value(T),
    /// The load was abandoned (its loader panicked, or every async caller went away): load
    /// again.
    Retry,
    /// The leader's own loader panicked; the leader resumes the panic.
    Panicked(Payload),
}

enum Phase<T> {
    Running,
    Done(T),
    Abandoned(Option<Payload>),
}

struct State<T> {
    phase: Phase<T>,
    /// The async load, when nobody is polling it right now.
    future: Option<LoadFuture<T>>,
    /// Parked blocking waiters.
    threads: Vec<thread::Thread>,
    on_abandon: Option<AbandonHook>,
}

/// One shared load.
pub(crate) struct Flight<T> {
    state: Mutex<State<T>>,
    /// Set (under `state`'s lock) once the phase is final. A burst's waiters read it rather
    /// than the lock: to see that the load still runs, and to leave a finished flight.
    ended: AtomicBool,
    /// An async load, which the last handle to leave abandons.
    is_async: bool,
    wakers: std::sync::Arc<Wakers>,
}

/// The async waiters' wakers, and which waiter drives the load. The load is polled with a
/// waker that wakes only its *driver* (the handle that polled it last), so a wake-up of the
/// load costs one task wake-up, not one per waiter; when the driver leaves, another waiter is
/// woken to take over. Everybody is woken only when the flight ends.
#[derive(Default)]
struct Wakers {
    table: Mutex<WakerTable>,
}

#[derive(Default)]
struct WakerTable {
    /// One slot per live [`Join`] handle (so its length is the number of handles).
    slots: Slab<Option<Waker>>,
    driver: Option<usize>,
}

impl WakerTable {
    /// Wakes one registered waiter other than `except` (it will poll and take the load over).
    fn wake_one(&mut self, except: Option<usize>) {
        if let Some(w) =
            self.slots.iter_mut().filter(|(i, _)| Some(*i) != except).find_map(|(_, w)| w.take())
        {
            w.wake();
        }
    }
}

impl Wakers {
    fn wake_all(&self) {
        let woken: Vec<Waker> = {
            let mut table = self.table.lock();
            table.driver = None;
            table.slots.iter_mut().filter_map(|(_, w)| w.take()).collect()
        };
        for w in woken {
            w.wake();
        }
    }

    /// The load was woken: wake its driver (if its waker is gone it is already scheduled), or
    /// someone who will become the driver.
    fn wake_driver(&self) {
        let mut table = self.table.lock();
        match table.driver {
            Some(d) => {
                if let Some(w) = table.slots.get_mut(d).and_then(Option::take) {
                    drop(table);
                    w.wake();
                }
            }
            None => table.wake_one(None),
        }
    }
}

impl Wake for Wakers {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_driver();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.wake_driver();
    }
}

impl<T: Clone> Flight<T> {
    fn with_state(
        is_async: bool,
        future: Option<LoadFuture<T>>,
        hook: Option<AbandonHook>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Running,
                future,
                threads: Vec::new(),
                on_abandon: hook,
            }),
            ended: AtomicBool::new(false),
            is_async,
            wakers: std::sync::Arc::default(),
        }
    }

    /// A flight whose leader runs the loader on its own thread and then calls
    /// [`finish`](Self::finish) or [`abandon`](Self::abandon).
    pub(crate) fn new_sync() -> Arc<Self> {
        Arc::new(Self::with_state(false, None, None))
    }

    /// A flight that drives `future`; the returned handle is the leader's. `on_abandon` runs
    /// once if the flight is abandoned (panic or every handle dropped).
    pub(crate) fn new_async(
        future: LoadFuture<T>,
        on_abandon: Option<AbandonHook>,
    ) -> (Arc<Self>, Join<T>) {
        let flight = Arc::new(Self::with_state(true, Some(future), on_abandon));
        let join = Join::new(flight.clone(), true);
        (flight, join)
    }

    /// True while the load has not finished.
    pub(crate) fn is_running(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
    }

    /// Publishes the result of a sync load.
    pub(crate) fn finish(&self, value: T) {
        self.end(Phase::Done(value));
    }

    /// Abandons a sync load whose loader panicked; waiters retry.
    pub(crate) fn abandon(&self) {
        self.end(Phase::Abandoned(None));
    }

    /// Moves to a final phase and wakes everybody. Returns false if the flight had already
    /// ended.
    fn end(&self, phase: Phase<T>) -> bool {
        let (threads, hook, future) = {
            let mut st = self.state.lock();
            if !matches!(st.phase, Phase::Running) {
                return false;
            }
            let hook = match &phase {
                Phase::Abandoned(payload) => st.on_abandon.take().map(|h| (h, payload.is_some())),
                _ => None,
            };
            st.phase = phase;
            self.ended.store(true, Ordering::Release);
            st.on_abandon = None;
            (std::mem::take(&mut st.threads), hook, st.future.take())
        };
        // Outside the lock: the future's drop and the hook may take other locks.
        drop(future);
        if let Some((hook, panicked)) = hook {
            hook(panicked);
        }
        for t in threads {
            t.unpark();
        }
        self.wakers.wake_all();
        true
    }

    /// A handle for an async caller joining this flight.
    pub(crate) fn join(this: &Arc<Self>) -> Join<T> {
        Join::new(this.clone(), false)
    }

    /// Blocks the calling thread until the flight ends. Never drives an async load.
    pub(crate) fn wait(&self) -> Outcome<T> {
        let mut registered = false;
        loop {
            {
                let mut st = self.state.lock();
                match &st.phase {
                    Phase::Done(v) => return Outcome::Value(v.clone()),
                    Phase::Abandoned(_) => return Outcome::Retry,
                    Phase::Running if !registered => {
                        st.threads.push(thread::current());
                        registered = true;
                    }
                    Phase::Running => {}
                }
            }
            // An unpark that came before this park makes it return at once, so no wake-up
            // is lost; spurious returns just loop.
            thread::park();
        }
    }
}

/// An async caller's share of a flight: a future that drives the load when polled, and counts
/// as one of the callers still interested in it until dropped.
#[must_use = "a Join does nothing unless polled"]
pub(crate) struct Join<T: Clone> {
    flight: Arc<Flight<T>>,
    slot: usize,
    leader: bool,
    done: bool,
}

impl<T: Clone> Join<T> {
    fn new(flight: Arc<Flight<T>>, leader: bool) -> Self {
        let slot = flight.wakers.table.lock().slots.insert(None);
        Self { flight, slot, leader, done: false }
    }

    fn outcome(leader: bool, phase: &mut Phase<T>) -> Option<Outcome<T>> {
        let out = match phase {
            Phase::Running => return None,
            Phase::Done(v) => Outcome::Value(v.clone()),
            Phase::Abandoned(payload) => match payload.take() {
                Some(p) if leader => Outcome::Panicked(p),
                other => {
                    *payload = other;
                    Outcome::Retry
                }
            },
        };
        Some(out)
    }

    /// Leaves the flight: the last async caller to leave a running async load abandons it.
    /// Leaving a finished flight costs nothing (its handles no longer matter).
    fn leave(&mut self) {
        if std::mem::replace(&mut self.done, true) || self.flight.ended.load(Ordering::Acquire) {
            return;
        }
        let last = {
            let mut table = self.flight.wakers.table.lock();
            table.slots.try_remove(self.slot);
            if table.driver == Some(self.slot) {
                // The driver is leaving: hand the load to another waiter.
                table.driver = None;
                table.wake_one(None);
            }
            table.slots.is_empty()
        };
        // (If the load ends meanwhile, `end` finds it final and does nothing.)
        if last && self.flight.is_async {
            self.flight.end(Phase::Abandoned(None));
        }
    }
}

impl<T: Clone> Future for Join<T> {
    type Output = Outcome<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        let this = &mut *self;
        assert!(!this.done, "Join polled after it finished");
        let mut future = {
            let mut st = this.flight.state.lock();
            if let Some(out) = Self::outcome(this.leader, &mut st.phase) {
                drop(st);
                this.leave();
                return Poll::Ready(out);
            }
            // Register before looking at the future: a wake-up of the load from now on
            // reaches us, so if someone else is polling it and gets Pending we hear about it.
            let mut table = this.flight.wakers.table.lock();
            if let Some(slot) = table.slots.get_mut(this.slot) {
                *slot = Some(cx.waker().clone());
            }
            match st.future.take() {
                Some(f) => {
                    table.driver = Some(this.slot);
                    f
                }
                // Another caller is polling the load, or it runs on a thread: wait.
                None => return Poll::Pending,
            }
        };
        let waker = Waker::from(this.flight.wakers.clone());
        let polled = catch_unwind(AssertUnwindSafe(|| {
            future.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        match polled {
            Ok(Poll::Pending) => {
                this.flight.state.lock().future = Some(future);
                Poll::Pending
            }
            Ok(Poll::Ready(Ok(value))) => {
                drop(future);
                this.flight.end(Phase::Done(value));
                let out = Self::outcome(this.leader, &mut this.flight.state.lock().phase);
                this.leave();
                Poll::Ready(out.unwrap_or(Outcome::Retry))
            }
            // A panic the future caught itself, or (a safety net) one that escaped its poll.
            Ok(Poll::Ready(Err(payload))) | Err(payload) => {
                drop(future);
                // The panic goes to the leader; if that is us, it comes straight back.
                this.flight.end(Phase::Abandoned(Some(payload)));
                let out = Self::outcome(this.leader, &mut this.flight.state.lock().phase);
                this.leave();
                Poll::Ready(out.unwrap_or(Outcome::Retry))
            }
        }
    }
}

impl<T: Clone> Drop for Join<T> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn sync_flight_reaches_blocking_and_async_waiters() {
        let flight = Flight::<u32>::new_sync();
        let join = Flight::join(&flight);
        let f2 = flight.clone();
        let t = std::thread::spawn(move || f2.wait());
        flight.finish(7);
        assert!(matches!(t.join().unwrap(), Outcome::Value(7)));
        assert!(matches!(futures::executor::block_on(join), Outcome::Value(7)));
        assert!(!flight.is_running());
    }

    #[test]
    fn async_flight_is_driven_by_any_handle() {
        let polls = std::sync::Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let fut = async move {
            p.fetch_add(1, Ordering::SeqCst);
            Ok(5u32)
        };
        let (flight, leader) = Flight::new_async(Box::pin(fut), None);
        let waiter = Flight::join(&flight);
        drop(leader); // the leader is cancelled before it ever polls
        assert!(matches!(futures::executor::block_on(waiter), Outcome::Value(5)));
        assert_eq!(polls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn last_handle_leaving_abandons_and_runs_the_hook() {
        let hooked = std::sync::Arc::new(AtomicUsize::new(0));
        let h = hooked.clone();
        let (flight, leader) = Flight::<u32>::new_async(
            Box::pin(futures::future::pending::<Result<u32, Payload>>()),
            Some(Box::new(move |panicked| {
                assert!(!panicked);
                h.fetch_add(1, Ordering::SeqCst);
            })),
        );
        let mut waiter = Flight::join(&flight);
        assert!((&mut waiter).now_or_never().is_none());
        drop(leader);
        assert!(flight.is_running(), "one handle is still interested");
        drop(waiter);
        assert!(!flight.is_running());
        assert_eq!(hooked.load(Ordering::SeqCst), 1);
        assert!(matches!(flight.wait(), Outcome::Retry));
    }

    #[test]
    fn a_panic_goes_to_the_leader_and_others_retry() {
        let (flight, leader) =
            Flight::<u32>::new_async(Box::pin(async { panic!("loader panics") }), None);
        // (Here the panic escapes the future's poll: the safety net catches it.)
        let waiter = Flight::join(&flight);
        assert!(matches!(futures::executor::block_on(waiter), Outcome::Retry));
        assert!(matches!(futures::executor::block_on(leader), Outcome::Panicked(_)));
    }
}
