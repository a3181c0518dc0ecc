//! The receiving end.

use std::fmt;

use levee_core::sync::Arc;

use super::chan::Chan;
use super::error::{RecvError, TryRecvError};
use super::future::RecvFuture;
use super::stats::{ChannelStats, CloseReason};

/// The receiving end of a channel. Clone it for competing consumers: each message goes to
/// exactly one receiver. When the last one is dropped the channel closes and the messages
/// still queued are dropped (counted in [`ChannelStats::discarded`]).
///
/// ```
/// use levee_queue::channel;
///
/// # futures::executor::block_on(async {
/// let (tx, rx) = channel::bounded::<String>(8).unwrap();
/// let worker = rx.clone(); // receivers compete: each message goes to one of them
/// tx.send_async("job".to_string()).await.unwrap();
/// assert_eq!(worker.recv_async().await.unwrap(), "job");
/// assert!(rx.is_empty());
/// # });
/// ```
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Takes a message if one is queued.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when nothing is queued, [`TryRecvError::Closed`] when the
    /// channel is closed and drained.
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Takes a message, blocking the thread until one arrives. Do not call it from async
    /// code: use [`recv_async`](Self::recv_async).
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and drained.
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv()
    }

    /// Takes a message, waiting asynchronously until one arrives.
    ///
    /// Cancellation-safe: a message is taken only in the poll that returns it, so dropping
    /// the future never loses one (and hands any wake-up it received to another receiver).
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and drained.
    pub fn recv_async(&self) -> RecvFuture<'_, T> {
        RecvFuture::new(&self.chan)
    }

    /// A blocking iterator over messages; it ends when the channel is closed and drained.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }

    /// An iterator over the messages queued now; it never blocks.
    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// Closes the channel for sending (see [`Sender::close`](super::Sender::close)); this
    /// receiver can still drain it. Returns true if this call closed it.
    pub fn close(&self) -> bool {
        self.chan.close(CloseReason::Explicit)
    }

    /// True once the channel is closed (messages may still be queued).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Messages queued now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True when no message is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound, or `None` for an unbounded channel.
    #[must_use]
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// The channel's counters.
    #[must_use]
    pub fn stats(&self) -> ChannelStats {
        self.chan.stats()
    }

    /// Live sender handles.
    #[must_use]
    pub fn sender_count(&self) -> usize {
        self.chan.sender_count()
    }

    /// Live receiver handles.
    #[must_use]
    pub fn receiver_count(&self) -> usize {
        self.chan.receiver_count()
    }

    /// True if both handles belong to the same channel.
    #[must_use]
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.add_receiver();
        Self { chan: self.chan.clone() }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("stats", &self.stats()).finish_non_exhaustive()
    }
}
