//! The verbs that settle a delivery (ack, nack, term, drop), lease extension, and batch acks.

use levee_core::Clock;

use super::super::core::{Settled, Verb};
use super::super::delivery::Delivery;
use super::super::error::{BatchAckError, BrokerError};
use super::super::slots::{Ended, Holder, Stale};
use super::shared::SubShared;

impl<T, C: Clock> SubShared<T, C> {
    /// Applies `verb` to the delivery `(slot, token)`, given by its handle or by someone else
    /// (a receipt).
    pub(crate) fn settle(
        &self,
        slot: u32,
        token: u64,
        seq: u64,
        verb: Verb,
        holder: Holder,
    ) -> Result<(), BrokerError> {
        let (result, events, now) = {
            let mut core = self.lock();
            let now = core.now();
            let r = core.settle(slot, token, verb, holder, now);
            (r, core.take_events(), now)
        };
        self.emit(events);
        match result {
            Ok(Settled::Acked { ready_at }) => {
                self.latency.record_nanos(now.saturating_sub(ready_at))
            }
            Ok(Settled::Done) => {}
            Err(stale) => return Err(stale_error(stale, seq)),
        }
        self.wake_receivers();
        self.wake_publishers();
        Ok(())
    }

    /// Acks a batch under one lock acquisition. Deliveries of other subscriptions are acked
    /// through their own.
    pub(crate) fn ack_all(&self, batch: &mut Vec<Delivery<T, C>>) -> Result<usize, BatchAckError> {
        let mut failed = Vec::new();
        let (events, now) = {
            let mut core = self.lock();
            let now = core.now();
            for d in batch.iter_mut() {
                if d.owner.sub.id != self.id {
                    continue;
                }
                let seq = d.msg.seq();
                if std::mem::replace(d.settled.get_mut(), true) {
                    failed.push((seq, BrokerError::AlreadySettled { seq }));
                    continue;
                }
                match core.settle(d.slot, d.token, Verb::Ack, Holder::Handle, now) {
                    Ok(_) => d.acked = true,
                    Err(stale) => failed.push((seq, stale_error(stale, seq))),
                }
            }
            (core.take_events(), now)
        };
        self.emit(events);
        let mut acked = 0;
        for d in batch.drain(..) {
            if d.acked {
                acked += 1;
                self.latency.record_nanos(now.saturating_sub(d.msg.ready_at));
            } else if d.owner.sub.id != self.id {
                match d.ack() {
                    Ok(()) => acked += 1,
                    Err(e) => failed.push((d.seq(), e)),
                }
            }
        }
        self.wake_receivers();
        self.wake_publishers();
        if failed.is_empty() { Ok(acked) } else { Err(BatchAckError { acked, failed }) }
    }

    pub(crate) fn settle_dropped(&self, slot: u32, token: u64) -> Result<(), BrokerError> {
        self.settle(slot, token, 0, Verb::Drop, Holder::Handle)
    }

    pub(crate) fn extend(&self, slot: u32, token: u64, seq: u64) -> Result<u64, BrokerError> {
        let mut core = self.lock();
        let now = core.now();
        core.extend(slot, token, now).map_err(|s| stale_error(s, seq))
    }
}

pub(crate) fn stale_error(stale: Stale, seq: u64) -> BrokerError {
    match stale {
        Stale::Ended(Ended::Settled) => BrokerError::AlreadySettled { seq },
        Stale::Ended(Ended::Expired) => BrokerError::LeaseExpired { seq },
        Stale::Unknown => BrokerError::NotInFlight { seq },
    }
}
