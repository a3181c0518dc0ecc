//! The handle of a running [`serve`](super::serve).

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::control::{Control, Phase};
use super::stats::ServeStats;

/// A running [`serve`](super::serve): its statistics, and its graceful shutdown.
///
/// Dropping it without [`shutdown`](Self::shutdown) stops receiving too; handlers already
/// running then finish in the background, without a deadline.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{InProcessBroker, Message, ServeConfig, SubscriptionConfig, serve};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let broker = InProcessBroker::<u32>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("mail")).unwrap();
/// let handle = serve(&broker, &sub, ServeConfig::new(), |_order| async {
///     Ok::<(), std::io::Error>(())
/// })
/// .await
/// .unwrap();
/// broker.publish("orders", Message::new(1)).await.unwrap();
/// tokio::time::sleep(Duration::from_millis(10)).await;
///
/// assert_eq!(handle.stats().handled, 1);
/// let last = handle.shutdown().await; // stop receiving, drain, final counts
/// assert_eq!(last.received, 1);
/// # });
/// ```
#[must_use = "dropping the handle stops receiving at once"]
#[derive(Debug)]
pub struct ServeHandle {
    pub(crate) control: Arc<Control>,
    pub(crate) consumers: Vec<JoinHandle<()>>,
}

impl ServeHandle {
    /// What the run has done so far.
    #[must_use]
    pub fn stats(&self) -> ServeStats {
        self.control.stats.snapshot()
    }

    /// True once every consumer has stopped: the broker closed and their handlers are done.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.consumers.iter().all(JoinHandle::is_finished)
    }

    /// Stops receiving at once, lets running handlers finish for up to the configured
    /// [`drain_timeout`](super::ServeConfig::drain_timeout), then cancels the ones still
    /// running (their messages are nacked for redelivery at once, with a reason saying so).
    /// Returns when every delivery the run received is settled, with the final statistics.
    pub async fn shutdown(mut self) -> ServeStats {
        self.control.advance(Phase::Draining);
        let deadline = tokio::time::Instant::now() + self.control.drain_timeout;
        while let Some(consumer) = self.consumers.last_mut() {
            if tokio::time::timeout_at(deadline, consumer).await.is_err() {
                break;
            }
            self.consumers.pop();
        }
        self.control.advance(Phase::Abort);
        for consumer in self.consumers.drain(..) {
            // A consumer task only ends by returning (it catches its handlers' panics).
            let _ = consumer.await;
        }
        self.stats()
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.control.advance(Phase::Draining);
    }
}
