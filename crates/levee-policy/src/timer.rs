//! Where the policies get time and sleeps from: tokio's timer for async calls, the calling
//! thread for blocking ones.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use levee_core::Clock;

/// A source of time and sleeps for the policies (backoff delays, timeouts, hedge delays).
///
/// Zero-sized: policies name it as a type parameter and call its associated functions.
/// [`TokioTimer`] drives [`Pipeline::execute`](crate::Pipeline::execute);
/// [`BlockingTimer`] drives [`Pipeline::call`](crate::Pipeline::call).
pub trait Timer: Copy + Send + Sync + 'static {
    /// The future a sleep is.
    type Sleep: Future<Output = ()> + Send;

    /// True when calls run on a parked thread rather than an async runtime: policies then
    /// avoid waits that need a runtime (a bulkhead queue refuses instead of queueing).
    const BLOCKING: bool = false;

    /// The current instant on this timer's clock.
    fn now() -> Instant;

    /// A future that completes at `deadline`.
    fn sleep_until(deadline: Instant) -> Self::Sleep;
}

/// tokio's timer: follows `tokio::time::pause()` in tests. Needs a tokio runtime with the
/// time driver enabled when a sleep is actually polled; a call that completes at once never
/// touches the timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    type Sleep = tokio::time::Sleep;

    #[inline]
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[inline]
    fn sleep_until(deadline: Instant) -> Self::Sleep {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline))
    }
}

/// The calling thread as the timer: sleeps park the thread until the earliest deadline or a
/// wake-up, whichever comes first. Only meaningful inside [`block_on`], which is how
/// [`Pipeline::call`](crate::Pipeline::call) runs a blocking operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockingTimer;

/// A sleep on the [`BlockingTimer`].
#[derive(Debug)]
pub struct BlockingSleep {
    deadline: Instant,
}

thread_local! {
    /// The earliest deadline a sleep polled in the current `block_on` iteration asked for.
    static NEXT_WAKE: Cell<Option<Instant>> = const { Cell::new(None) };
    static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
}

impl Future for BlockingSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        NEXT_WAKE.with(|w| {
            let next = w.get().map_or(self.deadline, |d| d.min(self.deadline));
            w.set(Some(next));
        });
        Poll::Pending
    }
}

impl Timer for BlockingTimer {
    type Sleep = BlockingSleep;
    const BLOCKING: bool = true;

    #[inline]
    fn now() -> Instant {
        Instant::now()
    }

    fn sleep_until(deadline: Instant) -> BlockingSleep {
        BlockingSleep { deadline }
    }
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

/// Runs `future` to completion on the calling thread, parking it while nothing can progress:
/// until the earliest [`BlockingSleep`] deadline, or until a waker (a permit released on
/// another thread, say) unparks it.
///
/// No allocation per call: the thread's waker is made once per thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    // A nested block_on (a blocking call inside a blocking call) must not lose the outer
    // one's pending deadline.
    let outer = NEXT_WAKE.with(Cell::take);
    let output = WAKER.with(|waker| {
        let mut cx = std::task::Context::from_waker(waker);
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
    });
    NEXT_WAKE.with(|w| w.set(outer));
    output
}

/// A levee [`Clock`] that reads tokio's time, so primitives built on it (a rate limiter, a
/// circuit breaker, a retry budget) follow `tokio::time::pause()` and `advance()` in tests
/// together with the pipeline's timeouts and delays.
///
/// Readings count from a process-wide origin a year before the first time any `TokioClock`
/// is read. The margin matters when several runtimes share the process (tests, each with its
/// own paused clock): one whose time is behind the runtime that read first still reads a
/// moving clock, where an origin at the first reading would pin it at zero until its time
/// caught up.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

static TOKIO_ORIGIN: OnceLock<Instant> = OnceLock::new();

/// How far before the first reading the origin lies (less where the platform's `Instant`
/// cannot go back that far).
const ORIGIN_MARGIN: Duration = Duration::from_secs(365 * 24 * 3600);

impl Clock for TokioClock {
    fn now(&self) -> u64 {
        let now = tokio::time::Instant::now().into_std();
        let origin = *TOKIO_ORIGIN.get_or_init(|| {
            [ORIGIN_MARGIN, Duration::from_secs(24 * 3600), Duration::from_secs(3600)]
                .into_iter()
                .find_map(|margin| now.checked_sub(margin))
                .unwrap_or(now)
        });
        levee_core::nanos(now.saturating_duration_since(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two runtimes with their own paused clocks: the one behind still reads a moving clock
    /// after the one ahead has read first (the origin is shared by the process).
    #[test]
    fn a_runtime_behind_the_first_reader_still_reads_a_moving_clock() {
        let paused = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let behind = paused();
        let ahead = paused();
        ahead.block_on(async {
            tokio::time::advance(Duration::from_secs(10)).await;
            TokioClock.now()
        });
        let moved = behind.block_on(async {
            let before = TokioClock.now();
            tokio::time::advance(Duration::from_secs(1)).await;
            TokioClock.now() - before
        });
        assert_eq!(moved, 1_000_000_000);
    }

    #[test]
    fn blocking_sleep_registers_its_deadline_until_due() {
        let noop = Waker::noop();
        let mut cx = std::task::Context::from_waker(noop);
        let past = BlockingTimer::sleep_until(Instant::now() - Duration::from_millis(1));
        assert!(std::pin::pin!(past).poll(&mut cx).is_ready());

        let later = Instant::now() + Duration::from_secs(60);
        NEXT_WAKE.with(|w| w.set(None));
        assert!(std::pin::pin!(BlockingTimer::sleep_until(later)).poll(&mut cx).is_pending());
        assert_eq!(NEXT_WAKE.with(Cell::get), Some(later));
        NEXT_WAKE.with(|w| w.set(None));
        // An elapsed deadline resolves inside block_on without parking.
        block_on(BlockingTimer::sleep_until(Instant::now()));
    }

    #[test]
    fn block_on_wakes_on_another_threads_wake() {
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

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let a = TokioClock.now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(TokioClock.now() - a >= 3_000_000_000);
    }
}
