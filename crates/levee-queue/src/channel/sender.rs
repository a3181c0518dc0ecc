//! The sending end.

use std::fmt;

use levee_core::sync::Arc;

use super::chan::Chan;
use super::error::{SendError, TrySendError};
use super::future::SendFuture;
use super::stats::{ChannelStats, CloseReason};

/// The sending end of a channel. Clone it for more producers; the last one dropped closes
/// the channel (receivers drain what is queued, then see it closed).
///
/// ```
/// use levee_queue::channel;
///
/// let (tx, rx) = channel::bounded(16)?;
/// let producers: Vec<_> = (0..4)
///     .map(|i| {
///         let tx = tx.clone();
///         std::thread::spawn(move || tx.send(i).unwrap())
///     })
///     .collect();
/// drop(tx);
/// producers.into_iter().for_each(|p| p.join().unwrap());
/// let mut got: Vec<_> = rx.iter().collect(); // ends when every sender is gone
/// got.sort();
/// assert_eq!(got, [0, 1, 2, 3]);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value` without waiting.
    ///
    /// Under [`OverflowPolicy::DropOldest`](super::OverflowPolicy::DropOldest) a full channel
    /// drops its oldest message to make room, so only `Closed` can come back.
    ///
    /// # Errors
    /// [`TrySendError::Full`] with the value when the channel is full (counted in
    /// `rejected`), [`TrySendError::Closed`] with the value when it is closed.
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(value)
    }

    /// Sends `value`, blocking the thread while the channel is full if the policy is
    /// [`Wait`](super::OverflowPolicy::Wait). Do not call it from async code: use
    /// [`send_async`](Self::send_async).
    ///
    /// # Errors
    /// [`SendError::Rejected`] with the value when the channel is full and the policy is
    /// `Reject`; [`SendError::Closed`] with the value when the channel is (or becomes, while
    /// waiting) closed.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.send(value)
    }

    /// Sends `value`, waiting asynchronously while the channel is full if the policy is
    /// [`Wait`](super::OverflowPolicy::Wait).
    ///
    /// Cancellation-safe: dropping the future before it completes leaves the channel
    /// untouched and drops the value with it; a completed future sent exactly once.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_async(&self, value: T) -> SendFuture<'_, T> {
        SendFuture::new(&self.chan, value)
    }

    /// Closes the channel for sending: every later send fails with its value, waiting senders
    /// and receivers wake up, and receivers still get the messages already queued. Returns
    /// true if this call closed it.
    pub fn close(&self) -> bool {
        self.chan.close(CloseReason::Explicit)
    }

    /// True once the channel is closed.
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

    /// True when a bounded channel holds `capacity` messages.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.chan.capacity().is_some_and(|c| self.len() >= c)
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

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Self { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("stats", &self.stats()).finish_non_exhaustive()
    }
}
