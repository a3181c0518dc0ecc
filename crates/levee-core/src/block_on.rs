//! Running a future on the calling thread: [`block_on`], and the thread-park deadline that a
//! real-time [`Sleep`](crate::Sleep) registers while it runs.
//!
//! The thread's waker unparks the thread; a real-time sleep polled inside `block_on` records
//! its deadline in a thread-local, and `block_on` parks until the earliest such deadline or a
//! wake-up, whichever comes first. So a blocking caller waits on the same futures as async
//! code, without a runtime and without an allocation per call.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

thread_local! {
    /// The earliest real-time deadline a sleep polled in the current `block_on` pass asked for.
    static NEXT_WAKE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// How many `block_on` calls are running on this thread (nested calls count).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The thread's waker, made once per thread.
    static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// True while the calling thread runs [`block_on`]: real-time sleeps then wait by parking the
/// thread rather than on a tokio timer (which a blocked runtime thread could not drive).
pub(crate) fn in_block_on() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// Asks the running [`block_on`] to wake up by `deadline` at the latest.
pub(crate) fn wake_by(deadline: Instant) {
    NEXT_WAKE.with(|w| w.set(Some(w.get().map_or(deadline, |d| d.min(deadline)))));
}

/// Restores the outer `block_on`'s state when a nested one ends, also on unwind.
struct Nesting {
    outer_wake: Option<Instant>,
}

impl Drop for Nesting {
    fn drop(&mut self) {
        NEXT_WAKE.with(|w| w.set(self.outer_wake));
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Runs `future` to completion on the calling thread, parking it while nothing can progress:
/// until the earliest real-time [`Sleep`](crate::Sleep) deadline polled in the last pass, or
/// until a waker (a permit released on another thread, a [`ManualClock`](crate::ManualClock)
/// advanced by another thread) unparks it.
///
/// Real-time sleeps polled inside it park the thread even inside a tokio runtime, so a
/// blocking call made from a runtime thread does not wait on a timer that the blocked thread
/// itself would have to drive. Do not call it from an async task: it blocks the executor
/// thread. No allocation per call: the thread's waker is made once per thread.
///
/// ```
/// use std::time::Duration;
/// use levee_core::{Clock, SystemClock, block_on};
///
/// let clock = SystemClock;
/// let start = clock.now();
/// block_on(clock.sleep(Duration::from_millis(2)));
/// assert!(clock.now() - start >= 2_000_000);
/// assert_eq!(block_on(async { 7 }), 7);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    DEPTH.with(|d| d.set(d.get() + 1));
    // A nested block_on (a blocking call inside a blocking call) must not lose the outer
    // one's pending deadline.
    let _nesting = Nesting { outer_wake: NEXT_WAKE.with(Cell::take) };
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            NEXT_WAKE.with(|w| w.set(None));
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            match NEXT_WAKE.with(Cell::get) {
                Some(deadline) => {
                    let now = Instant::now();
                    if deadline > now {
                        std::thread::park_timeout(deadline - now);
                    }
                }
                None => std::thread::park(),
            }
        }
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_on_another_threads_wake() {
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let t = std::thread::spawn(move || rx.recv().unwrap().wake());
        let mut sent = Some(tx);
        let mut polls = 0;
        block_on(std::future::poll_fn(|cx| {
            polls += 1;
            match sent.take() {
                Some(tx) => {
                    tx.send(cx.waker().clone()).unwrap();
                    Poll::Pending
                }
                None => Poll::Ready(()),
            }
        }));
        t.join().unwrap();
        assert!(polls >= 2);
    }

    #[test]
    fn parks_until_the_earliest_deadline_and_restores_the_outer_one() {
        assert!(!in_block_on());
        let outer = block_on(async {
            assert!(in_block_on());
            let deadline = Instant::now() + Duration::from_secs(60);
            wake_by(deadline);
            // A nested call runs its own passes and leaves the outer deadline in place.
            assert_eq!(block_on(async { 3 }), 3);
            assert!(in_block_on());
            NEXT_WAKE.with(Cell::get) == Some(deadline)
        });
        assert!(outer);
        assert!(!in_block_on());
        // A deadline in the past does not park at all.
        let mut first = true;
        block_on(std::future::poll_fn(|_| {
            if std::mem::take(&mut first) {
                wake_by(Instant::now() - Duration::from_millis(1));
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
    }
}
