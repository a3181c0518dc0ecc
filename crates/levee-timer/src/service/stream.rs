//! [`Expirations`]: the stream of a [`TimerService`](super::TimerService)'s due items.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;

use super::handoff::Receiver;
use crate::sharded::TimerHandle;

/// Due items of a [`TimerService`](super::TimerService), in firing order, with the handle
/// they were scheduled under. Ends when the service (every clone and sleep) is dropped.
///
/// Items wait here until taken; [`TimerStats::backlog`](super::TimerStats::backlog) counts
/// them, so a consumer that falls behind is visible.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_timer::TimerService;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let clock = ManualClock::new();
/// let timers: TimerService<&str, _> = TimerService::builder().clock(clock.clone()).build().unwrap();
/// let mut due = timers.expirations().unwrap(); // one consumer: a second call gets `None`
/// assert!(timers.expirations().is_none());
/// timers.schedule_after(Duration::from_secs(5), "expire cart").unwrap();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(due.recv().await.map(|(_, item)| item), Some("expire cart"));
/// # }
/// ```
pub struct Expirations<T> {
    rx: Receiver<T>,
}

impl<T> fmt::Debug for Expirations<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expirations").field("backlog", &self.rx.backlog()).finish_non_exhaustive()
    }
}

impl<T> Expirations<T> {
    pub(super) fn new(rx: Receiver<T>) -> Self {
        Self { rx }
    }

    /// The next due item; `None` once the service is gone.
    pub async fn recv(&mut self) -> Option<(TimerHandle, T)> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one is already due.
    pub fn try_recv(&mut self) -> Option<(TimerHandle, T)> {
        match self.rx.poll_recv(None) {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        }
    }

    /// Polls for the next item.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(TimerHandle, T)>> {
        // tokio's co-op budget, as a tokio channel's receiver spends it: a consumer that always
        // finds items still yields to the runtime now and then.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        match self.rx.poll_recv(Some(cx)) {
            Poll::Ready(item) => {
                coop.made_progress();
                Poll::Ready(item)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Stream for Expirations<T> {
    type Item = (TimerHandle, T);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}
