//! Multi-producer multi-consumer channels, bounded and unbounded, sync and async.
//!
//! - [`bounded`] / [`Builder::bounded`]: a fixed ring of stamped slots (Vyukov's bounded MPMC
//!   queue, laid out as crossbeam-channel's array flavour): lock-free, no allocation per
//!   message. What happens when it is full is the channel's [`OverflowPolicy`]: wait, reject,
//!   or drop the oldest message, and every drop is counted and reported.
//! - [`unbounded`] / [`Builder::unbounded`]: a linked list of blocks that are recycled or
//!   freed as they drain, so a backlog does not pin its memory after it is gone.
//!
//! Both ends work from threads ([`Sender::send`], [`Receiver::recv`] block) and from async
//! code ([`Sender::send_async`], [`Receiver::recv_async`]) on the same channel at the same
//! time. Blocked threads and tasks wait in one list per direction; when nobody waits, a send
//! or receive checks one flag and takes no lock.
//!
//! ## Closing
//!
//! - The last [`Sender`] dropped, or [`close`](Sender::close) called on either end, closes
//!   the channel: sends fail with their value, receivers drain what is queued and then get
//!   [`RecvError`] / [`TryRecvError::Closed`].
//! - The last [`Receiver`] dropped closes it too; the queued messages are dropped at once
//!   and counted as [`ChannelStats::discarded`].
//! - Closing wakes every blocked sender and receiver.
//!
//! ## Zero capacity
//!
//! A capacity of zero is a [`ConfigError`] naming `capacity`: there
//! is no rendezvous mode.
//!
//! ```
//! use levee_queue::channel::{self, OverflowPolicy, TrySendError};
//!
//! let (tx, rx) = channel::bounded::<&str>(1)?;
//! tx.try_send("a")?;
//! assert_eq!(tx.try_send("b"), Err(TrySendError::Full("b"))); // the value comes back
//!
//! let consumer = std::thread::spawn(move || rx.iter().collect::<Vec<_>>());
//! tx.send("b")?; // waits for room
//! drop(tx); // closes: the consumer drains, then its iterator ends
//! assert_eq!(consumer.join().unwrap(), ["a", "b"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod array;
mod chan;
mod config;
mod error;
mod flavor;
mod future;
mod list;
mod receiver;
mod sender;
mod stats;
mod waiters;

pub use config::{Builder, ChannelConfig, MAX_CAPACITY, OverflowPolicy};
pub use error::{RecvError, SendError, TryRecvError, TrySendError};
pub use future::{RecvFuture, SendFuture};
pub use receiver::Receiver;
pub use sender::Sender;
pub use stats::{ChannelEvent, ChannelStats, CloseReason};

use levee_core::ConfigError;

/// A bounded channel of `capacity` messages whose senders wait for room.
///
/// # Errors
/// [`ConfigError`] naming `capacity` when it is zero, above [`MAX_CAPACITY`], or cannot be
/// allocated.
pub fn bounded<T>(capacity: usize) -> Result<(Sender<T>, Receiver<T>), ConfigError> {
    Builder::bounded(capacity).build()
}

/// An unbounded channel: sends never wait, and memory shrinks again after a backlog.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let flavor = flavor::Flavor::List(list::List::new());
    chan::handles(chan::Chan::new(flavor, OverflowPolicy::Wait, levee_core::EventHook::none()))
}
