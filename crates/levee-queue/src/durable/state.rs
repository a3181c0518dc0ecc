//! Folding records back into state: one message's record in one subscription, updated by
//! each [`Change`] the engine journaled. The same fold runs on recovery (over the whole log)
//! and while the broker runs (so compaction can copy a message's current state forward).

use super::record::{Place, SubMsg};
use crate::broker::core::push_history;
use crate::broker::journal::Change;

impl SubMsg {
    /// A message that just entered the subscription (published or replayed at `entered`),
    /// deliverable from `due`.
    pub(crate) fn new(entered: u64, due: u64) -> Self {
        Self {
            attempt: 0,
            failures: 0,
            expiries: 0,
            first_delivered: None,
            history: Vec::new(),
            entered,
            place: Place::Waiting { due },
        }
    }

    /// Applies `change`, recorded at `lsn`; `false` when the message left for good.
    pub(crate) fn apply(&mut self, lsn: u64, change: &Change) -> bool {
        match change {
            Change::Delivered { attempt, at, .. } => {
                self.attempt = *attempt;
                self.first_delivered.get_or_insert(*at);
                self.place = Place::InFlight { delivered_at: *at };
            }
            Change::Failed { failures, record, .. } => {
                self.failures = *failures;
                push_history(&mut self.history, record.clone());
            }
            Change::Expired { expiries, record, .. } => {
                self.expiries = *expiries;
                push_history(&mut self.history, record.clone());
            }
            Change::Terminated { record, .. } => push_history(&mut self.history, record.clone()),
            Change::Scheduled { due, .. } => self.place = Place::Waiting { due: *due },
            Change::DeadLettered { reason, at, .. } => {
                self.place = Place::Dead { reason: reason.clone(), at: *at, order: lsn };
            }
            Change::Replayed { at, .. } => {
                self.failures = 0;
                self.expiries = 0;
                self.first_delivered = None;
                self.entered = lsn;
                self.place = Place::Waiting { due: *at };
            }
            Change::Acked { .. } | Change::DeadLetterDropped { .. } | Change::Purged { .. } => {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{AttemptOutcome, AttemptRecord, DeadLetterReason};

    #[test]
    fn a_message_through_failure_dead_letter_and_replay() {
        let mut m = SubMsg::new(10, 5);
        assert!(m.apply(11, &Change::Delivered { seq: 1, attempt: 1, at: 6 }));
        assert_eq!(m.place, Place::InFlight { delivered_at: 6 });
        let record = AttemptRecord {
            attempt: 1,
            delivered_at: 6,
            ended_at: 7,
            outcome: AttemptOutcome::Dropped,
        };
        assert!(m.apply(12, &Change::Failed { seq: 1, failures: 1, record }));
        let reason = DeadLetterReason::MaxDeliveries { failures: 1 };
        assert!(m.apply(12, &Change::DeadLettered { seq: 1, reason: reason.clone(), at: 7 }));
        assert_eq!(m.place, Place::Dead { reason, at: 7, order: 12 });
        assert!(m.apply(20, &Change::Replayed { seq: 1, at: 30 }));
        assert_eq!((m.failures, m.attempt, m.entered, m.history.len()), (0, 1, 20, 1));
        assert_eq!(m.place, Place::Waiting { due: 30 });
        assert!(!m.apply(21, &Change::Acked { seq: 1 }));
    }
}
