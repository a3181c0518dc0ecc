//! In-process queues: the transport under levee's topics, work queues and the shop's
//! order -> payment -> notification flow.
//!
//! - [`channel`]: a bounded lock-free MPMC channel (an array of stamped slots) with sync and
//!   async ends, an overflow policy, close semantics and statistics; and an unbounded variant
//!   that gives its memory back once a backlog drains.
//! - [`broker`]: topics, subscriptions and work queues with acks, lease redelivery, retries
//!   with backoff, dead letters, delays, ordering keys and deduplication, behind the async
//!   [`Broker`] trait and its conformance suite; [`broker::serve`] runs consumers with a
//!   handler on any broker.
//!
//! ```
//! use levee_queue::channel;
//!
//! let (tx, rx) = channel::bounded::<u64>(8)?;
//! tx.send(1)?;
//! drop(tx); // the last sender closes the channel; the receiver still drains it
//! assert_eq!(rx.recv(), Ok(1));
//! assert!(rx.recv().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
//!
//! let broker = InProcessBroker::<u32>::new();
//! let sub = broker.subscribe("jobs", SubscriptionConfig::new("workers")).unwrap();
//! let worker = sub.consumer();
//! broker.try_publish("jobs", Message::new(42)).unwrap();
//! for delivery in worker.try_receive(16).unwrap() {
//!     assert_eq!(*delivery.payload(), 42);
//!     delivery.ack().unwrap();
//! }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

#[forbid(unsafe_code)]
pub mod broker;
pub mod channel;
#[cfg(feature = "durable")]
#[forbid(unsafe_code)]
pub mod durable;

pub use broker::{Broker, BrokerError, InProcessBroker, Message, SubscriptionConfig};
