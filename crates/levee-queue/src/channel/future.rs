//! The async ends: futures that wait in the same waiter lists as blocked threads.
//!
//! Both futures do their whole operation inside one `poll`: a message is taken, or a value
//! placed, in the poll that returns `Ready`. So dropping a pending future never loses a
//! message and never sends twice. A dropped future that had been notified hands the
//! notification to the next waiter (see `waiters.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::chan::{Attempt, Chan};
use super::config::OverflowPolicy;
use super::error::{RecvError, SendError, TryRecvError};
use super::waiters::{WaitList, Wake, fence_after_register};

/// Whether a pending future may sleep now, or must try again because it was notified.
enum Registration {
    Sleep,
    Retry,
}

/// Registers `waiter` (or refreshes its waker). Returns `Retry` when the entry was consumed by
/// a notification, or was just created (the caller must re-check before sleeping).
fn register(list: &WaitList, waiter: &mut Option<u64>, cx: &Context<'_>) -> Registration {
    match *waiter {
        Some(id) if list.update(id, cx.waker()) => Registration::Sleep,
        Some(_) => {
            // Notified: the entry is gone. Try again, and register anew if still blocked.
            *waiter = None;
            Registration::Retry
        }
        None => {
            *waiter = Some(list.register(Wake::Task(cx.waker().clone())));
            fence_after_register();
            Registration::Retry
        }
    }
}

/// Leaves the list after the operation completed. If a notification had already taken the
/// entry, it was meant for this waiter and was used.
fn finish(list: &WaitList, waiter: &mut Option<u64>) {
    if let Some(id) = waiter.take() {
        list.cancel(id);
    }
}

/// Leaves the list without completing: a notification already received goes to the next
/// waiter.
fn abandon(list: &WaitList, waiter: &mut Option<u64>) {
    if let Some(id) = waiter.take() {
        if !list.cancel(id) {
            list.notify_one();
        }
    }
}

/// The future of [`Sender::send_async`](super::Sender::send_async).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (tx, rx) = levee_queue::channel::bounded::<u32>(1)?;
/// tx.send_async(1).await?; // room: ready at once
/// let pending = tx.send_async(2); // a SendFuture: waits for room, gives the value back on close
/// assert_eq!(rx.try_recv(), Ok(1));
/// pending.await?;
/// assert_eq!(rx.try_recv(), Ok(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    waiter: Option<u64>,
}

// The value is moved in and out, never pinned.
impl<T> Unpin for SendFuture<'_, T> {}

impl<'a, T> SendFuture<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>, value: T) -> Self {
        Self { chan, value: Some(value), waiter: None }
    }
}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    /// # Panics
    /// When polled again after it returned `Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut value = this.value.take().expect("SendFuture polled after completion");
        loop {
            match this.chan.attempt_send(value) {
                Attempt::Sent => {
                    finish(&this.chan.send_waiters, &mut this.waiter);
                    return Poll::Ready(Ok(()));
                }
                Attempt::Closed(v) => {
                    finish(&this.chan.send_waiters, &mut this.waiter);
                    return Poll::Ready(Err(SendError::Closed(v)));
                }
                Attempt::Full(v) if this.chan.policy() == OverflowPolicy::Reject => {
                    this.chan.note_rejected();
                    return Poll::Ready(Err(SendError::Rejected(v)));
                }
                Attempt::Full(v) => match register(&this.chan.send_waiters, &mut this.waiter, cx) {
                    Registration::Sleep => {
                        this.value = Some(v);
                        return Poll::Pending;
                    }
                    Registration::Retry => value = v,
                },
            }
        }
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        abandon(&self.chan.send_waiters, &mut self.waiter);
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("done", &self.value.is_none())
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// The future of [`Receiver::recv_async`](super::Receiver::recv_async).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (tx, rx) = levee_queue::channel::unbounded::<&str>();
/// let next = rx.recv_async(); // a RecvFuture: waits for a message, or for every sender to go
/// tx.try_send("order 1").unwrap();
/// assert_eq!(next.await, Ok("order 1"));
/// drop(tx);
/// assert!(rx.recv_async().await.is_err()); // closed and empty
/// # });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'a, T> {
    chan: &'a Chan<T>,
    waiter: Option<u64>,
}

impl<T> Unpin for RecvFuture<'_, T> {}

impl<'a, T> RecvFuture<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>) -> Self {
        Self { chan, waiter: None }
    }
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this.chan.try_recv() {
                Ok(v) => {
                    finish(&this.chan.recv_waiters, &mut this.waiter);
                    return Poll::Ready(Ok(v));
                }
                Err(TryRecvError::Closed) => {
                    finish(&this.chan.recv_waiters, &mut this.waiter);
                    return Poll::Ready(Err(RecvError));
                }
                Err(TryRecvError::Empty) => {
                    match register(&this.chan.recv_waiters, &mut this.waiter, cx) {
                        Registration::Sleep => return Poll::Pending,
                        Registration::Retry => {}
                    }
                }
            }
        }
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        abandon(&self.chan.recv_waiters, &mut self.waiter);
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFuture").field("waiting", &self.waiter.is_some()).finish()
    }
}
