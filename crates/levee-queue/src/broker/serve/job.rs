//! One delivery's handler task: run the handler (catching panics, heartbeating, giving up
//! when the drain deadline passes), then settle the delivery by the outcome.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::super::nack::Nack;
use super::super::traits::Broker;
use super::consumer::Run;
use super::control::Phase;
use super::failure::{Failure, Settlement};

/// The reason a handler cancelled at the drain deadline is nacked with.
pub(crate) const CANCELLED: &str = "cancelled: shut down before the handler finished";

/// How a handler ended.
enum Outcome {
    Done(Result<(), Failure>),
    Panicked(String),
    Cancelled,
}

/// Handles `delivery` and settles it; `_permit` frees the consumer's room when done.
pub(crate) async fn job<B, H, Fut, E>(
    run: Arc<Run<B, H>>,
    delivery: B::Delivery,
    _permit: OwnedSemaphorePermit,
) where
    B: Broker,
    H: Fn(Arc<B::Delivery>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Failure>,
{
    let delivery = Arc::new(delivery);
    let outcome = handle(&run, &delivery).await;
    let (broker, stats) = (&run.broker, &run.control.stats);
    let (settled, counter) = match outcome {
        Outcome::Done(Ok(())) => (broker.ack(&delivery).await, &stats.handled),
        Outcome::Done(Err(failure)) => {
            let settled = match failure.into_settlement() {
                Settlement::Nack(nack) => broker.nack(&delivery, nack).await,
                Settlement::Term(reason) => broker.term(&delivery, &reason).await,
            };
            (settled, &stats.failed)
        }
        Outcome::Panicked(reason) => {
            (broker.nack(&delivery, Nack::new().reason(reason)).await, &stats.panicked)
        }
        Outcome::Cancelled => {
            let nack = Nack::new().delay(Duration::ZERO).reason(CANCELLED);
            (broker.nack(&delivery, nack).await, &stats.cancelled)
        }
    };
    if settled.is_err() {
        stats.settle_errors.incr();
    }
    counter.incr();
}

/// One step of a running handler.
enum Step {
    Ended(Outcome),
    Heartbeat,
}

/// Runs the handler on `delivery` until it returns, panics, or the run aborts, extending
/// the lease every heartbeat meanwhile.
async fn handle<B, H, Fut, E>(run: &Run<B, H>, delivery: &Arc<B::Delivery>) -> Outcome
where
    B: Broker,
    H: Fn(Arc<B::Delivery>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Failure>,
{
    // Calling the handler may panic too, before it returns a future.
    let started = catch_unwind(AssertUnwindSafe(|| (run.handler)(Arc::clone(delivery))));
    let handler = match started {
        Ok(future) => future,
        Err(panic) => return Outcome::Panicked(panic_reason(&*panic)),
    };
    let mut handler = pin!(handler);
    let mut abort = pin!(run.control.reached(Phase::Abort));
    let every = run.config.heartbeat;
    let mut heartbeat = pin!(every.map(tokio::time::sleep));
    loop {
        let step = std::future::poll_fn(|cx| {
            // A panic inside `poll` unwinds to here; the handler is never polled again.
            match catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))) {
                Ok(Poll::Ready(result)) => {
                    return Poll::Ready(Step::Ended(Outcome::Done(result.map_err(Into::into))));
                }
                Ok(Poll::Pending) => {}
                Err(panic) => {
                    return Poll::Ready(Step::Ended(Outcome::Panicked(panic_reason(&*panic))));
                }
            }
            if abort.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Step::Ended(Outcome::Cancelled));
            }
            if let Some(beat) = heartbeat.as_mut().as_pin_mut()
                && beat.poll(cx).is_ready()
            {
                return Poll::Ready(Step::Heartbeat);
            }
            Poll::Pending
        })
        .await;
        match step {
            Step::Ended(outcome) => return outcome,
            Step::Heartbeat => {
                let extended = run.broker.in_progress(delivery).await;
                match (extended, every) {
                    (Ok(()), Some(every)) => {
                        if let Some(beat) = heartbeat.as_mut().as_pin_mut() {
                            beat.reset(tokio::time::Instant::now() + every);
                        }
                    }
                    // The lease is gone (or the broker refused): stop extending it.
                    _ => heartbeat.set(None),
                }
            }
        }
    }
}

/// "panicked", with the panic's message when it has one.
fn panic_reason(panic: &(dyn Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str));
    match message {
        Some(message) => format!("panicked: {message}"),
        None => "panicked".to_owned(),
    }
}
