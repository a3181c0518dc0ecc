//! One consumer's loop: receive as many messages as it has room for, hand each to a handler
//! task, and on shutdown stop receiving and wait for its handlers.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::super::error::BrokerError;
use super::super::traits::Broker;
use super::ServeConfig;
use super::control::{Control, Either, Phase, first};
use super::failure::Failure;
use super::job::job;

/// What every consumer and handler task of one run shares.
pub(crate) struct Run<B, H> {
    pub(crate) broker: B,
    pub(crate) handler: H,
    pub(crate) config: ServeConfig,
    pub(crate) control: Arc<Control>,
}

/// Runs one consumer until the run stops receiving or the broker closes, then waits until
/// every handler it started has finished.
pub(crate) async fn consume<B, H, Fut, E>(run: Arc<Run<B, H>>, consumer: B::Consumer)
where
    B: Broker,
    B::Consumer: 'static,
    B::Delivery: 'static,
    H: Fn(Arc<B::Delivery>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Failure> + 'static,
{
    let control = &run.control;
    let concurrency = run.config.concurrency;
    // One permit per handler this consumer may run; a handler task holds its permit until
    // its delivery is settled. Never closed.
    let permits = Arc::new(Semaphore::new(concurrency));
    while control.is(Phase::Running) {
        let stop = control.reached(Phase::Draining);
        let room = match first(stop, Arc::clone(&permits).acquire_owned()).await {
            Either::Right(Ok(permit)) => permit,
            Either::Right(Err(_)) | Either::Left(()) => break,
        };
        let max = 1 + permits.available_permits();
        let stop = control.reached(Phase::Draining);
        let receive = run.broker.receive(&consumer, max, run.config.receive_wait);
        let batch = match first(stop, receive).await {
            Either::Left(()) | Either::Right(Err(BrokerError::Closed)) => break,
            Either::Right(Ok(batch)) => batch,
            Either::Right(Err(_)) => {
                control.stats.receive_errors.incr();
                drop(room);
                let stop = control.reached(Phase::Draining);
                let _ = first(stop, tokio::time::sleep(run.config.retry_delay)).await;
                continue;
            }
        };
        let mut room = Some(room);
        for delivery in batch {
            // A broker hands out at most `max`, so the permits are there; one that hands out
            // more has its extra deliveries wait for room rather than be dropped.
            let permit = match room.take() {
                Some(permit) => permit,
                None => match Arc::clone(&permits).acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => break, // never closed
                },
            };
            control.stats.received.incr();
            tokio::spawn(job(Arc::clone(&run), delivery, permit));
        }
    }
    // Every permit back: every handler this consumer started has settled its delivery.
    // (`concurrency` fits a u32: `ServeConfig::validate` bounds it.)
    let _ = permits.acquire_many(concurrency as u32).await;
}
