//! `serve`: a subscription's competing consumers run with an async handler (the public
//! docs are on [`serve`] itself). One concept per file: settings, the handler's `Failure`,
//! the consumer loop, one delivery's handler task, the run's shared control, the handle, and
//! the statistics.

mod config;
mod consumer;
mod control;
mod failure;
mod handle;
mod job;
mod stats;

use std::future::Future;
use std::sync::Arc;

pub use config::ServeConfig;
pub use failure::Failure;
pub use handle::ServeHandle;
pub use stats::ServeStats;

use super::error::BrokerError;
use super::traits::Broker;
use consumer::{Run, consume};
use control::Control;

/// Runs a subscription's competing consumers with an async handler, so no user writes the
/// receive / handle / settle loop again.
///
/// Each of `config.consumers` consumers receives as many messages as it has room for (at
/// most `config.concurrency` handlers of its own at once) and hands each to the handler in
/// its own task:
///
/// | the handler | the delivery |
/// |---|---|
/// | returns `Ok(())` | acked |
/// | returns `Err(e)` | nacked with `e`'s Display as the reason, on the backoff; or as the [`Failure`] asks: after a given delay, or terminated (dead-lettered now) |
/// | panics | nacked with the reason `panicked: <message>`; the consumer keeps running |
/// | outlives the drain deadline at shutdown | cancelled and nacked for redelivery at once |
///
/// Optionally a heartbeat extends the lease while a handler runs. [`ServeHandle::shutdown`]
/// stops receiving, drains running handlers with a deadline, and returns the final
/// [`ServeStats`]. `serve` works on any [`Broker`]: the in-process one, or an adapter for a
/// distributed engine.
///
/// Waits (receive, heartbeat, drain deadline) run on tokio's clock, so tests drive them with
/// a paused runtime; leases and backoffs stay on the broker's own clock.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{
///     Failure, InProcessBroker, Message, ServeConfig, SubscriptionConfig, serve,
/// };
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let broker = InProcessBroker::<i64>::new();
/// let payments = broker.subscribe("orders", SubscriptionConfig::new("payment")).unwrap();
///
/// let handle = serve(&broker, &payments, ServeConfig::new().consumers(2), |order| async move {
///     if *order.payload() < 0 {
///         return Err(Failure::term("negative amount"));
///     }
///     // charge the card...
///     Ok(())
/// })
/// .await
/// .unwrap();
///
/// broker.publish("orders", Message::new(1_250)).await.unwrap();
/// broker.publish("orders", Message::new(-5)).await.unwrap();
/// tokio::time::sleep(Duration::from_millis(10)).await; // let the consumers run
///
/// let stats = handle.shutdown().await;
/// assert_eq!((stats.handled, stats.failed), (1, 1));
/// assert_eq!(payments.dead_letters()[0].last_reason(), Some("negative amount"));
/// # });
/// ```
///
/// The handler gets the delivery in an `Arc` (it may keep a clone) and returns a future of
/// `Result<(), E>` where `E` is a [`Failure`], or any `Display` error (retried on the
/// backoff with its text as the reason). It does not settle the delivery itself: `serve`
/// does (a verb the handler gave first makes `serve`'s own refused, counted in
/// [`ServeStats::settle_errors`]).
///
/// Consumers are created here, so a broker that refuses one fails the call; from then on
/// they run on tokio tasks until [`ServeHandle::shutdown`], or until the broker closes.
///
/// # Errors
/// [`BrokerError::Config`] for invalid settings ([`ServeConfig::validate`]); whatever
/// [`Broker::consumer`] returns (e.g. [`BrokerError::Closed`]).
///
/// # Panics
/// When polled outside a tokio runtime (it spawns tasks).
pub async fn serve<B, H, Fut, E>(
    broker: &B,
    subscription: &B::Subscription,
    config: ServeConfig,
    handler: H,
) -> Result<ServeHandle, BrokerError>
where
    B: Broker + Clone,
    B::Consumer: 'static,
    B::Delivery: 'static,
    H: Fn(Arc<B::Delivery>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Failure> + 'static,
{
    config.validate()?;
    let mut consumers = Vec::with_capacity(config.consumers);
    for _ in 0..config.consumers {
        consumers.push(broker.consumer(subscription).await?);
    }
    let control = Arc::new(Control::new(config.drain_timeout));
    let run =
        Arc::new(Run { broker: broker.clone(), handler, config, control: Arc::clone(&control) });
    let consumers = consumers
        .into_iter()
        .map(|consumer| tokio::spawn(consume(Arc::clone(&run), consumer)))
        .collect();
    Ok(ServeHandle { control, consumers })
}
