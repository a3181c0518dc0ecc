//! Leasing messages to a consumer: at once, or after waiting for one.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use levee_core::Clock;

use super::super::delivery::Delivery;
use super::super::error::BrokerError;
use super::consumer::Owner;
use super::shared::SubShared;
use super::wait::WaitGuard;

impl<T, C: Clock> SubShared<T, C> {
    pub(crate) fn try_receive_into(
        &self,
        owner: &Arc<Owner<T, C>>,
        max: usize,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        if max == 0 {
            return Err(levee_core::ConfigError::new("max", "must be greater than zero").into());
        }
        let (n, events) = {
            let mut core = self.lock();
            let now = core.now();
            core.sweep(now);
            let n = core.receive(owner.index, max, now, |grant| {
                out.push(Delivery::new(Arc::clone(owner), grant));
            });
            (n, core.take_events())
        };
        self.emit(events);
        // The sweep may have dead-lettered expired leases and so made room.
        self.wake_publishers();
        Ok(n)
    }

    /// Waits until at least one message is received, the broker closes, or `wait` passes
    /// (`None`: no limit).
    pub(crate) async fn receive_into(
        &self,
        owner: &Arc<Owner<T, C>>,
        max: usize,
        wait: Option<Duration>,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        let n = self.try_receive_into(owner, max, out)?;
        if n > 0 {
            return Ok(n);
        }
        let give_up = wait.map(|w| tokio::time::Instant::now() + w);
        let _waiting = WaitGuard::new(&self.receivers_waiting);
        loop {
            let mut notified = pin!(self.ready.notified());
            notified.as_mut().enable();
            let n = self.try_receive_into(owner, max, out)?;
            if n > 0 {
                return Ok(n);
            }
            let timer = self.next_wake().map(|d| tokio::time::Instant::now() + d);
            let wake = match (timer, give_up) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, notified).await;
                }
                None => notified.await,
            }
            if give_up.is_some_and(|g| tokio::time::Instant::now() >= g) {
                return self.try_receive_into(owner, max, out);
            }
        }
    }
}
