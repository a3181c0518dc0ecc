//! [`Sleep`] and [`Timeout`]: tokio-style futures on a [`TimerService`](super::TimerService)'s
//! wheels.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::SleepBackend;
use crate::sharded::TimerHandle;

enum State {
    Armed(TimerHandle),
    Done,
    Rejected,
}

/// A future that completes at its deadline, from
/// [`TimerService::sleep`](super::TimerService::sleep). Dropping it cancels its timer.
///
/// When the service is full (`max_pending`), the sleep is *rejected*: it completes at once
/// and [`is_rejected`](Self::is_rejected) says so. A bounded service sheds load rather than
/// growing without limit.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_timer::TimerService;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let clock = ManualClock::new();
/// let timers: TimerService<(), _> = TimerService::builder().clock(clock.clone()).build().unwrap();
/// let sleep = timers.sleep(Duration::from_millis(250));
/// assert!(!sleep.is_rejected());
/// clock.advance(Duration::from_millis(250));
/// sleep.await;
/// # }
/// ```
pub struct Sleep {
    backend: Arc<dyn SleepBackend>,
    deadline: u64,
    state: State,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.is_elapsed())
            .field("rejected", &self.is_rejected())
            .finish()
    }
}

impl Sleep {
    /// A sleep until `deadline`, which the caller knows to be after `now` or not.
    pub(super) fn new(backend: Arc<dyn SleepBackend>, deadline: u64, future: bool) -> Self {
        let state = if future { Self::arm_future(&*backend, deadline) } else { State::Done };
        Self { backend, deadline, state }
    }

    fn arm(backend: &dyn SleepBackend, deadline: u64) -> State {
        if deadline <= backend.now() {
            return State::Done; // already due: no timer needed
        }
        Self::arm_future(backend, deadline)
    }

    fn arm_future(backend: &dyn SleepBackend, deadline: u64) -> State {
        match backend.arm(deadline) {
            Some(handle) => State::Armed(handle),
            None => State::Rejected,
        }
    }

    /// The reading of the service's clock at which the sleep completes.
    #[must_use]
    pub fn deadline(&self) -> u64 {
        self.deadline
    }

    /// True once the deadline passed and the sleep completed (or will complete on its next
    /// poll without waiting).
    #[must_use]
    pub fn is_elapsed(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// True when the service was full and the sleep was never armed.
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        matches!(self.state, State::Rejected)
    }

    /// Moves the deadline (earlier or later), re-arming a completed sleep.
    pub fn reset(&mut self, deadline: u64) {
        self.deadline = deadline;
        if let State::Armed(handle) = self.state {
            if deadline > self.backend.now() && self.backend.rearm(handle, deadline) {
                return;
            }
            self.backend.disarm(handle);
        }
        self.state = Self::arm(&*self.backend, deadline);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.state {
            State::Armed(handle) => {
                let poll = this.backend.poll_fired(handle, cx);
                if poll.is_ready() {
                    this.state = State::Done;
                }
                poll
            }
            State::Done | State::Rejected => Poll::Ready(()),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let State::Armed(handle) = self.state {
            self.backend.disarm(handle);
        }
    }
}

/// The error of a [`Timeout`] whose deadline passed first.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_timer::{Elapsed, TimerService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let clock = ManualClock::new();
/// let timers: TimerService<(), _> = TimerService::builder().clock(clock.clone()).build().unwrap();
/// let slow = timers.timeout(Duration::from_secs(1), std::future::pending::<()>());
/// clock.advance(Duration::from_secs(1));
/// let err: Elapsed = slow.await.unwrap_err();
/// assert_eq!(err.to_string(), "deadline has elapsed");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

pin_project! {
    /// A future with a deadline, from [`TimerService::timeout`](super::TimerService::timeout):
    /// `Ok` with the future's output if it completes first, `Err(Elapsed)` otherwise (or at
    /// once when the service was full, see [`Sleep`]). Dropping it cancels the timer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_core::ManualClock;
    /// use levee_timer::{Elapsed, TimerService};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let clock = ManualClock::new();
    /// let timers: TimerService<(), _> = TimerService::builder().clock(clock.clone()).build().unwrap();
    ///
    /// let fast = timers.timeout(Duration::from_secs(1), async { 7 });
    /// assert_eq!(fast.await, Ok(7)); // finished first: the timer is cancelled
    ///
    /// let slow = timers.timeout(Duration::from_secs(1), std::future::pending::<u32>());
    /// clock.advance(Duration::from_secs(1));
    /// let elapsed: Elapsed = slow.await.unwrap_err();
/// assert_eq!(elapsed.to_string(), "deadline has elapsed");
    /// # }
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    pub(super) fn new(future: F, sleep: Sleep) -> Self {
        Self { future, sleep }
    }

    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// Gives the wrapped future back (its timer is cancelled).
    pub fn into_inner(self) -> F {
        self.future
    }

    /// The reading of the service's clock at which the timeout elapses.
    #[must_use]
    pub fn deadline(&self) -> u64 {
        self.sleep.deadline()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}
