//! What a channel counts and reports.

/// A snapshot of a channel's counters.
///
/// `sent` and `received` come from the head and tail positions themselves, so the hot path
/// pays nothing for them. Taken while senders and receivers are busy, a snapshot is
/// approximate; once the channel is quiet it balances:
/// `sent == received + dropped + discarded + depth`.
///
/// ```
/// use levee_queue::channel;
///
/// let (tx, rx) = channel::bounded(4)?;
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// rx.recv().unwrap();
/// let stats = tx.stats();
/// assert_eq!((stats.sent, stats.received, stats.depth, stats.capacity), (2, 1, 1, Some(4)));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ChannelStats {
    /// Messages accepted by the channel.
    pub sent: u64,
    /// Messages handed to receivers.
    pub received: u64,
    /// Messages evicted by [`OverflowPolicy::DropOldest`](super::OverflowPolicy::DropOldest)
    /// to make room.
    pub dropped: u64,
    /// Sends refused because the channel was full (the sender got the value back).
    pub rejected: u64,
    /// Messages still queued when the last receiver went away, dropped with it.
    pub discarded: u64,
    /// Messages queued now.
    pub depth: usize,
    /// The bound, or `None` for an unbounded channel.
    pub capacity: Option<usize>,
}

/// Why a channel closed.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_queue::channel::{Builder, ChannelEvent, CloseReason};
///
/// let closed = Arc::new(Mutex::new(None));
/// let sink = closed.clone();
/// let (tx, rx) = Builder::unbounded()
///     .listener(move |e: &ChannelEvent| {
///         if let ChannelEvent::Closed { reason } = e {
///             *sink.lock().unwrap() = Some(*reason);
///         }
///     })
///     .build::<u8>()?;
/// drop(tx);
/// assert_eq!(*closed.lock().unwrap(), Some(CloseReason::SendersGone));
/// # drop(rx);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// `close()` was called.
    Explicit,
    /// The last sender was dropped.
    SendersGone,
    /// The last receiver was dropped.
    ReceiversGone,
}

/// Notable things a channel does, delivered to its [`Listener`](levee_core::Listener)s.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_queue::channel::{Builder, ChannelEvent};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let (tx, _rx) = Builder::bounded(1)
///     .listener(move |e: &ChannelEvent| sink.lock().unwrap().push(*e))
///     .build::<u8>()?;
/// tx.try_send(1).unwrap();
/// assert!(tx.try_send(2).is_err()); // full: refused, and reported
/// assert_eq!(*seen.lock().unwrap(), [ChannelEvent::Rejected { capacity: 1 }]);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelEvent {
    /// The oldest message was dropped to make room for a new one.
    Dropped {
        /// The channel's capacity.
        capacity: usize,
    },
    /// A send was refused because the channel was full.
    Rejected {
        /// The channel's capacity.
        capacity: usize,
    },
    /// The channel closed; receivers drain what is left.
    Closed {
        /// What closed it.
        reason: CloseReason,
    },
    /// The last receiver went away; these queued messages were dropped.
    Discarded {
        /// How many.
        count: u64,
    },
}
