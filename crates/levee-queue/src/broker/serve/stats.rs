//! What [`serve`](super::serve) has done.

use levee_core::Counter;

/// Counts of one [`serve`](super::serve) run since it started.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{Failure, InProcessBroker, Message, ServeConfig, SubscriptionConfig, serve};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let broker = InProcessBroker::<u32>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("mail")).unwrap();
/// let handle = serve(&broker, &sub, ServeConfig::new(), |order| async move {
///     if *order.payload() == 0 { Err(Failure::term("empty order")) } else { Ok(()) }
/// })
/// .await
/// .unwrap();
/// for n in [0, 1, 2] {
///     broker.publish("orders", Message::new(n)).await.unwrap();
/// }
/// tokio::time::sleep(Duration::from_millis(10)).await;
///
/// let stats = handle.shutdown().await;
/// assert_eq!((stats.received, stats.handled, stats.failed), (3, 2, 1));
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ServeStats {
    /// Deliveries received and handed to the handler.
    pub received: u64,
    /// Handlers that returned `Ok` (their delivery acked).
    pub handled: u64,
    /// Handlers that returned `Err` (their delivery nacked or terminated).
    pub failed: u64,
    /// Handlers that panicked (their delivery nacked with the reason `panicked`).
    pub panicked: u64,
    /// Handlers still running when the drain deadline passed: cancelled, their delivery
    /// nacked for redelivery at once.
    pub cancelled: u64,
    /// Verbs the broker refused after a handler finished (typically `LeaseExpired`: the
    /// handler outlived its lease and the message went to another consumer).
    pub settle_errors: u64,
    /// Receives the broker refused (other than by closing).
    pub receive_errors: u64,
    /// Handlers running now.
    pub in_flight: u64,
}

/// The live counters behind [`ServeStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: Counter,
    pub(crate) handled: Counter,
    pub(crate) failed: Counter,
    pub(crate) panicked: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) settle_errors: Counter,
    pub(crate) receive_errors: Counter,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ServeStats {
        // Outcomes are read before `received`, so `in_flight` never underflows.
        let handled = self.handled.get();
        let failed = self.failed.get();
        let panicked = self.panicked.get();
        let cancelled = self.cancelled.get();
        let received = self.received.get();
        ServeStats {
            received,
            handled,
            failed,
            panicked,
            cancelled,
            settle_errors: self.settle_errors.get(),
            receive_errors: self.receive_errors.get(),
            in_flight: received.saturating_sub(handled + failed + panicked + cancelled),
        }
    }
}
