//! What a send or a receive can fail with. Every send error hands the value back.

use std::fmt;

/// Why [`Sender::try_send`](super::Sender::try_send) did not send; the value comes back.
///
/// ```
/// use levee_queue::channel::{self, TrySendError};
///
/// let (tx, rx) = channel::bounded(1)?;
/// tx.try_send("a").unwrap();
/// assert_eq!(tx.try_send("b"), Err(TrySendError::Full("b"))); // the value comes back
/// drop(rx);
/// assert_eq!(tx.try_send("c").unwrap_err().into_inner(), "c");
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full (and its policy is not [`DropOldest`](super::OverflowPolicy::DropOldest)).
    Full(T),
    /// The channel is closed: `close()` was called or every receiver is gone.
    Closed(T),
}

/// Why [`Sender::send`](super::Sender::send) (or `send_async`) did not send; the value comes back.
///
/// ```
/// use levee_queue::channel::{self, SendError};
///
/// let (tx, rx) = channel::unbounded();
/// tx.send(1).unwrap();
/// rx.close();
/// assert_eq!(tx.send(2), Err(SendError::Closed(2)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendError<T> {
    /// The channel was full and its policy is [`Reject`](super::OverflowPolicy::Reject).
    Rejected(T),
    /// The channel is closed: `close()` was called or every receiver is gone.
    Closed(T),
}

/// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no message.
///
/// ```
/// use levee_queue::channel::{self, TryRecvError};
///
/// let (tx, rx) = channel::unbounded::<u8>();
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// tx.send(7).unwrap();
/// drop(tx);
/// assert_eq!(rx.try_recv(), Ok(7)); // queued messages are still delivered
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// No message right now; senders may still send.
    #[error("channel is empty")]
    Empty,
    /// The channel is closed and drained: no message will ever arrive.
    #[error("channel is closed and empty")]
    Closed,
}

/// The channel is closed and drained: no message will ever arrive.
///
/// ```
/// use levee_queue::channel::{self, RecvError};
///
/// let (tx, rx) = channel::unbounded::<u8>();
/// drop(tx);
/// assert_eq!(rx.recv(), Err(RecvError)); // closed and drained: recv does not block
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("channel is closed and empty")]
pub struct RecvError;

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(v) | Self::Closed(v) => v,
        }
    }

    /// True for [`TrySendError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// True for [`TrySendError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Rejected(v) | Self::Closed(v) => v,
        }
    }

    /// True for [`SendError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Rejected(v) => Self::Full(v),
            SendError::Closed(v) => Self::Closed(v),
        }
    }
}

// Debug and Display leave the value out, so errors of non-Debug payloads still print
// (`?` into `Box<dyn Error>` works for any `T`).
impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("channel is full"),
            Self::Closed(_) => f.write_str("channel is closed"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(_) => f.write_str("Rejected(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(_) => f.write_str("channel is full and rejects new messages"),
            Self::Closed(_) => f.write_str("channel is closed"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_hand_the_value_back_and_print_without_it() {
        let e = TrySendError::Full(String::from("a"));
        assert!(e.is_full() && !e.is_closed());
        assert_eq!(e.to_string(), "channel is full");
        assert_eq!(format!("{e:?}"), "Full(..)");
        assert_eq!(e.into_inner(), "a");
        let e = SendError::Closed(3);
        assert!(e.is_closed());
        assert_eq!(TrySendError::from(e), TrySendError::Closed(3));
        assert_eq!(TrySendError::from(SendError::Rejected(4)), TrySendError::Full(4));
        assert_eq!(SendError::Rejected(5).to_string(), "channel is full and rejects new messages");
        assert_eq!(RecvError.to_string(), "channel is closed and empty");
        assert_eq!(TryRecvError::Empty.to_string(), "channel is empty");
    }
}
