//! What a subscription's engine changed, message by message, for a durable log to record.
//!
//! [`Core`](super::core::Core) collects these only when journaling is on (the durable broker
//! turns it on; the in-process broker never pays for it). Each entry carries the values the
//! engine arrived at (counts, due times, reasons), so whoever folds them back, on recovery,
//! assigns rather than re-deciding: the delivery rules live in the engine alone.

use super::dead_letter::{AttemptRecord, DeadLetterReason};

/// One change to one message's delivery record in one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Leased to a consumer: this is delivery number `attempt`.
    Delivered { seq: u64, attempt: u32, at: u64 },
    /// Acked: gone for good.
    Acked { seq: u64 },
    /// A handler failure (nack or drop), the `failures`-th; a `Scheduled` or `DeadLettered`
    /// follows.
    Failed { seq: u64, failures: u32, record: AttemptRecord },
    /// Its lease ran out, the `expiries`-th time; a `Scheduled` or `DeadLettered` follows.
    Expired { seq: u64, expiries: u32, record: AttemptRecord },
    /// A handler terminated it; `DeadLettered` follows.
    Terminated { seq: u64, record: AttemptRecord },
    /// Waiting again, deliverable from `due`.
    Scheduled { seq: u64, due: u64 },
    /// Moved to the dead-letter queue.
    DeadLettered { seq: u64, reason: DeadLetterReason, at: u64 },
    /// Dropped from a full dead-letter queue: gone for good.
    DeadLetterDropped { seq: u64 },
    /// Put back from the dead-letter queue at `at` (failure and expiry counts reset).
    Replayed { seq: u64, at: u64 },
    /// Purged from the dead-letter queue: gone for good.
    Purged { seq: u64 },
}

impl Change {
    /// The message it is about.
    pub(crate) fn seq(&self) -> u64 {
        match *self {
            Self::Delivered { seq, .. }
            | Self::Acked { seq }
            | Self::Failed { seq, .. }
            | Self::Expired { seq, .. }
            | Self::Terminated { seq, .. }
            | Self::Scheduled { seq, .. }
            | Self::DeadLettered { seq, .. }
            | Self::DeadLetterDropped { seq }
            | Self::Replayed { seq, .. }
            | Self::Purged { seq } => seq,
        }
    }
}
