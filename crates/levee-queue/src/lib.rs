//! In-process queues: the transport under levee's topics, work queues and the shop's
//! order -> payment -> notification flow.
//!
//! - [`channel`]: a bounded lock-free MPMC channel (an array of stamped slots) with sync and
//!   async ends, an overflow policy, close semantics and statistics; and an unbounded variant
//!   that gives its memory back once a backlog drains.
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
#![deny(unsafe_op_in_unsafe_fn)]

pub mod channel;
