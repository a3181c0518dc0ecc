//! [`Sleep`]: the one future every levee clock sleeps with.
//!
//! A concrete type, so no crate has to name a clock's own sleep type: a real-time sleep (a
//! tokio timer inside a runtime, a parked thread inside [`block_on`](crate::block_on)), a
//! [`ManualClock`](crate::ManualClock) sleep (woken when the clock is moved), or a boxed
//! future for a clock with its own way of waiting. Dropping it cancels it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::PoisonError;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::block_on::{in_block_on, wake_by};
use crate::manual_clock::{ManualClock, Waiter};
use crate::timer_thread::Registration;

/// tokio's timer, for real-time sleeps inside a runtime. Under `--cfg loom` tokio is not
/// built: no runtime is ever found, and the type is a stand-in that is never made.
#[cfg(not(loom))]
mod rt {
    use std::time::Duration;

    pub(super) type TokioSleep = tokio::time::Sleep;

    /// True when a tokio runtime can serve real-time sleeps on this thread.
    pub(super) fn available() -> bool {
        !super::in_block_on() && tokio::runtime::Handle::try_current().is_ok()
    }

    pub(super) fn sleep(duration: Duration) -> TokioSleep {
        tokio::time::sleep(duration)
    }

    /// Time left until `sleep`'s deadline on tokio's (possibly paused) clock.
    pub(super) fn left(sleep: &TokioSleep) -> Duration {
        sleep.deadline().saturating_duration_since(tokio::time::Instant::now())
    }
}

#[cfg(loom)]
mod rt {
    use std::time::Duration;

    pub(super) type TokioSleep = std::future::Pending<()>;

    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn sleep(_duration: Duration) -> TokioSleep {
        std::future::pending()
    }

    pub(super) fn left(_sleep: &TokioSleep) -> Duration {
        Duration::ZERO
    }
}

pin_project_lite::pin_project! {
    /// A future that completes once its clock reads at least a deadline, from
    /// [`Clock::sleep_until`](crate::Clock::sleep_until) or [`Clock::sleep`](crate::Clock::sleep).
    /// Dropping it cancels it: nothing stays registered anywhere.
    ///
    /// **Real time** (the default of every clock that follows real time): inside a tokio
    /// runtime it is a `tokio::time::Sleep` for the time that remained when it was made, so
    /// it follows `tokio::time::pause()`; the runtime needs its time driver enabled
    /// (`enable_time`, or `enable_all`), as for tokio's own sleeps. Inside
    /// [`block_on`](crate::block_on) it parks the thread until the deadline. Polled under
    /// any other executor, a helper thread (started on first need) wakes it.
    ///
    /// **[`ManualClock`]**: completes when the clock is moved to the deadline
    /// ([`advance`](ManualClock::advance) or [`set`](ManualClock::set), from any thread).
    /// Polled inside a tokio runtime it also arms a tokio sleep for the remaining time and,
    /// when that fires, sets the manual clock to the deadline, so under paused tokio time
    /// (`start_paused = true`) tokio's auto-advance moves the manual clock as well.
    ///
    /// **Your own clock**: [`Sleep::from_future`] wraps any `Send` future.
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_core::{Clock, ManualClock, block_on};
    ///
    /// let clock = ManualClock::new();
    /// let mover = clock.clone();
    /// let t = std::thread::spawn(move || {
    ///     while mover.pending_sleeps() == 0 {
    ///         std::thread::yield_now();
    ///     }
    ///     mover.advance(Duration::from_secs(60)); // wakes the sleeper at once
    /// });
    /// block_on(clock.sleep(Duration::from_secs(30)));
    /// assert_eq!(clock.now(), 60_000_000_000);
    /// t.join().unwrap();
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Sleep {
        #[pin]
        state: State,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State {
        Done,
        // Real time, waiting by parking a thread (inside `block_on`) or on the timer thread.
        Park { deadline: Instant, fallback: Registration },
        // Real time inside a tokio runtime.
        Tokio { #[pin] sleep: rt::TokioSleep },
        // A manual clock: registered with the clock, and following tokio's time if any.
        Manual { waiter: Waiter, #[pin] tokio: Option<rt::TokioSleep> },
        // A clock's own future. The lock only makes `Sleep` `Sync`; polling uses `get_mut`.
        Custom { future: std::sync::Mutex<Pin<Box<dyn Future<Output = ()> + Send>>> },
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.state {
            State::Done => "elapsed",
            State::Park { .. } | State::Tokio { .. } => "real time",
            State::Manual { .. } => "manual clock",
            State::Custom { .. } => "custom",
        };
        f.debug_tuple("Sleep").field(&kind).finish()
    }
}

/// `Instant::now() + d`, or a deadline decades away when that does not fit.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl Sleep {
    /// A sleep that has already elapsed: ready on its first poll.
    pub fn ready() -> Self {
        Self { state: State::Done }
    }

    /// A sleep of `duration` of real time (what every clock that follows real time returns
    /// from [`Clock::sleep_until`](crate::Clock::sleep_until) by default). See the type's
    /// docs for where it can be polled.
    pub fn real_time(duration: Duration) -> Self {
        if duration.is_zero() {
            return Self::ready();
        }
        let state = if rt::available() {
            State::Tokio { sleep: rt::sleep(duration) }
        } else {
            State::Park { deadline: deadline_after(duration), fallback: Registration::default() }
        };
        Self { state }
    }

    /// A sleep that is `future`: for a clock with its own way of waiting (a simulation, a
    /// remote time source). The future must complete once the clock reads the deadline.
    ///
    /// ```
    /// use levee_core::{Sleep, block_on};
    ///
    /// block_on(Sleep::from_future(Box::pin(async {})));
    /// ```
    pub fn from_future(future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Self {
        Self { state: State::Custom { future: std::sync::Mutex::new(future) } }
    }

    /// A sleep until `clock` reads `deadline`.
    pub(crate) fn manual(clock: &ManualClock, deadline: u64) -> Self {
        if clock.now_nanos() >= deadline {
            return Self::ready();
        }
        Self { state: State::Manual { waiter: Waiter::new(clock.clone(), deadline), tokio: None } }
    }

    /// True once the sleep has completed.
    #[must_use]
    pub fn is_elapsed(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Done => return Poll::Ready(()),
                StateProj::Park { deadline, fallback } => {
                    let now = Instant::now();
                    if now >= *deadline {
                        state.set(State::Done);
                        return Poll::Ready(());
                    }
                    if in_block_on() {
                        wake_by(*deadline);
                    } else if rt::available() {
                        let sleep = rt::sleep(*deadline - now);
                        state.set(State::Tokio { sleep });
                        continue;
                    } else {
                        fallback.register(*deadline, cx);
                    }
                    return Poll::Pending;
                }
                StateProj::Tokio { sleep } => {
                    if in_block_on() {
                        // Polled by a blocked thread: a tokio timer might never be driven.
                        let deadline = deadline_after(rt::left(&sleep));
                        state.set(State::Park { deadline, fallback: Registration::default() });
                        continue;
                    }
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    state.set(State::Done);
                    return Poll::Ready(());
                }
                StateProj::Manual { waiter, mut tokio } => {
                    if waiter.poll(cx).is_ready() {
                        state.set(State::Done);
                        return Poll::Ready(());
                    }
                    if tokio.is_none() && rt::available() {
                        let left = waiter.remaining();
                        tokio.set(Some(rt::sleep(Duration::from_nanos(left))));
                    }
                    if let Some(sleep) = tokio.as_pin_mut() {
                        if sleep.poll(cx).is_ready() {
                            // tokio's time reached the deadline: so does the manual clock.
                            waiter.fire();
                            state.set(State::Done);
                            return Poll::Ready(());
                        }
                    }
                    return Poll::Pending;
                }
                StateProj::Custom { future } => {
                    let future = future.get_mut().unwrap_or_else(PoisonError::into_inner);
                    if future.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    state.set(State::Done);
                    return Poll::Ready(());
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Clock, CoarseClock, FastClock, SystemClock, block_on};

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn is_send_and_sync() {
        assert_send_sync::<Sleep>();
    }

    #[tokio::test(start_paused = true)]
    async fn real_time_follows_paused_tokio_time() {
        let start = tokio::time::Instant::now();
        FastClock.sleep(Duration::from_secs(3600)).await;
        assert!(start.elapsed() >= Duration::from_secs(3600));
        // Made outside the runtime's view (in a plain thread) and polled inside: still tokio's.
        let sleep =
            std::thread::spawn(|| Sleep::real_time(Duration::from_secs(60))).join().unwrap();
        let start = tokio::time::Instant::now();
        sleep.await;
        assert!(start.elapsed() >= Duration::from_secs(59));
    }

    #[test]
    fn block_on_parks_for_real_time_even_on_a_runtime_thread() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let _inside = rt.enter();
        let start = SystemClock.now();
        // A tokio timer here would never fire: this thread is the one that drives it.
        block_on(SystemClock.sleep(Duration::from_millis(3)));
        assert!(SystemClock.now() - start >= 3_000_000);
        let coarse = CoarseClock::new().unwrap();
        let deadline = coarse.now() + 2_000_000;
        block_on(coarse.sleep_until(deadline));
        assert!(coarse.now() >= deadline, "a coarse sleep lasts until the reading gets there");
    }

    #[test]
    fn under_another_executor_the_timer_thread_wakes_it() {
        // A minimal executor: poll, then wait for a wake-up on a channel.
        struct Signal(std::sync::Mutex<std::sync::mpsc::Sender<()>>);
        impl std::task::Wake for Signal {
            fn wake(self: std::sync::Arc<Self>) {
                let _ = self.0.lock().unwrap().send(());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let waker = std::task::Waker::from(std::sync::Arc::new(Signal(std::sync::Mutex::new(tx))));
        let mut cx = Context::from_waker(&waker);
        let start = Instant::now();
        let mut sleep = Box::pin(Sleep::real_time(Duration::from_millis(3)));
        while sleep.as_mut().poll(&mut cx).is_pending() {
            rx.recv().unwrap();
        }
        assert!(start.elapsed() >= Duration::from_millis(3));
        // A dropped sleep leaves the queue.
        let mut dropped = Box::pin(Sleep::real_time(Duration::from_secs(3600)));
        assert!(dropped.as_mut().poll(&mut cx).is_pending());
        drop(dropped);
    }

    #[test]
    fn custom_and_ready_sleeps() {
        let mut polled = false;
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = flag.clone();
        block_on(Sleep::from_future(Box::pin(async move {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        })));
        polled |= flag.load(std::sync::atomic::Ordering::SeqCst);
        assert!(polled);
        assert!(Sleep::ready().is_elapsed());
        assert!(Sleep::real_time(Duration::ZERO).is_elapsed());
        assert_eq!(format!("{:?}", Sleep::ready()), "Sleep(\"elapsed\")");
    }
}
