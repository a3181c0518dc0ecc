//! One of a subscription's competing consumers.

use std::sync::Arc;
use std::time::Duration;

use levee_core::{Clock, FastClock};

use super::super::delivery::Delivery;
use super::super::error::{BatchAckError, BrokerError};
use super::handle::Subscription;
use super::shared::SubShared;

/// One of a subscription's competing consumers.
///
/// Dropping it leaves its deliveries valid: they are settled (or, dropped, nacked) as usual.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u32>::new();
/// let sub = broker.subscribe("jobs", SubscriptionConfig::new("workers")).unwrap();
/// let (a, b) = (sub.consumer(), sub.consumer());
/// broker.try_publish("jobs", Message::new(7)).unwrap();
/// let got = a.try_receive(10).unwrap();
/// assert_eq!(got.len(), 1);
/// assert!(b.try_receive(10).unwrap().is_empty()); // leased to `a`
/// ```
pub struct Consumer<T, C: Clock = FastClock> {
    pub(super) owner: Arc<Owner<T, C>>,
}

/// What a delivery points back to: its consumer's own `Arc`, so that consumers on different
/// threads never contend on one reference count.
pub(crate) struct Owner<T, C> {
    pub(crate) sub: Arc<SubShared<T, C>>,
    pub(crate) index: u32,
}

impl<T, C: Clock> std::fmt::Debug for Consumer<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("subscription", &self.owner.sub.name)
            .field("index", &self.owner.index)
            .finish_non_exhaustive()
    }
}

impl<T, C: Clock> Drop for Consumer<T, C> {
    fn drop(&mut self) {
        self.owner.sub.lock().remove_consumer(self.owner.index);
    }
}

impl<T, C: Clock> Consumer<T, C> {
    /// The subscription this consumer belongs to.
    #[must_use]
    pub fn subscription(&self) -> Subscription<T, C> {
        Subscription { shared: Arc::clone(&self.owner.sub) }
    }

    /// Acks every delivery in `batch` (draining it) under one lock acquisition; see
    /// [`Subscription::ack_all`].
    ///
    /// # Errors
    /// As [`Subscription::ack_all`].
    pub fn ack_all(&self, batch: &mut Vec<Delivery<T, C>>) -> Result<usize, BatchAckError> {
        self.owner.sub.ack_all(batch)
    }

    /// Takes up to `max` deliverable messages without waiting (possibly none).
    ///
    /// # Errors
    /// [`BrokerError::Closed`] once the broker is closed; [`BrokerError::Config`] for a zero
    /// `max`.
    pub fn try_receive(&self, max: usize) -> Result<Vec<Delivery<T, C>>, BrokerError> {
        let mut out = Vec::new();
        self.owner.sub.try_receive_into(&self.owner, max, &mut out)?;
        Ok(out)
    }

    /// Like [`try_receive`](Self::try_receive), appending to `out` (reuse one `Vec` across
    /// calls to receive without allocating); returns how many were appended.
    ///
    /// # Errors
    /// As [`try_receive`](Self::try_receive).
    pub fn try_receive_into(
        &self,
        max: usize,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        self.owner.sub.try_receive_into(&self.owner, max, out)
    }

    /// Waits for at least one message and takes up to `max`.
    ///
    /// Cancel-safe: dropping the future before it completes receives nothing. While it waits
    /// it sleeps until the subscription's next timer (a delayed message, a backoff, a lease),
    /// so it needs a tokio runtime with time enabled when such a timer is pending.
    ///
    /// # Errors
    /// As [`try_receive`](Self::try_receive); a waiting receive returns `Closed` when the
    /// broker closes.
    ///
    /// # Panics
    /// When it must sleep outside a tokio runtime with time enabled (as `tokio::time` does).
    pub async fn receive(&self, max: usize) -> Result<Vec<Delivery<T, C>>, BrokerError> {
        let mut out = Vec::new();
        self.owner.sub.receive_into(&self.owner, max, None, &mut out).await?;
        Ok(out)
    }

    /// Like [`receive`](Self::receive), appending to `out`.
    ///
    /// # Errors
    /// As [`receive`](Self::receive).
    pub async fn receive_into(
        &self,
        max: usize,
        out: &mut Vec<Delivery<T, C>>,
    ) -> Result<usize, BrokerError> {
        self.owner.sub.receive_into(&self.owner, max, None, out).await
    }

    /// Waits at most `wait` (tokio time) for messages; the result may be empty.
    ///
    /// # Errors
    /// As [`receive`](Self::receive).
    ///
    /// # Panics
    /// Outside a tokio runtime with time enabled.
    pub async fn receive_timeout(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery<T, C>>, BrokerError> {
        let mut out = Vec::new();
        self.owner.sub.receive_into(&self.owner, max, Some(wait), &mut out).await?;
        Ok(out)
    }
}
