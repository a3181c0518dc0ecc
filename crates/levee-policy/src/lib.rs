//! Retry, timeout, fallback and hedging, and the [`Pipeline`] that composes them with
//! levee's rate limiters, bulkheads and circuit breakers.
//!
//! ```
//! use std::time::Duration;
//! use levee_policy::{Backoff, Error, Pipeline, Retry};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let pipeline = Pipeline::builder()
//!     .timeout(Duration::from_secs(1))
//!     .retry(Retry::builder().max_attempts(3).backoff(Backoff::constant(Duration::from_millis(10))).build().unwrap())
//!     .build()
//!     .unwrap();
//! let out: Result<u32, Error<&str>> = pipeline.execute(|ctx| async move {
//!     if ctx.attempt() == 0 { Err("flaky") } else { Ok(7) }
//! }).await;
//! assert_eq!(out, Ok(7));
//! # }
//! ```
//!
//! # Design
//! - **Static composition.** A pipeline is a nested type (`Layered<Timeout, Layered<Retry,
//!   Leaf>>`), generic over the operation. A call is one future of known size: nothing is
//!   boxed, nothing allocated when nothing fails (`benches/policy.rs` counts allocations).
//! - **Order is meaning.** Policies apply in the order written: a timeout before the retry
//!   is the overall deadline, one after it the per-attempt timeout.
//! - **One error.** [`Error`] says which policy refused, or carries the operation's error.
//! - **Deadlines travel.** The [`Context`] handed to each attempt carries the tightest
//!   deadline in force, for the operation to pass to the next hop.
//! - **Hints are honoured.** A refusal's [`RetryAfter`] hint is the least wait before the
//!   next retry: a retry never runs into an open circuit before it may close.
//! - **Time is the pipeline's clock.** A [`Pipeline`] owns a [`Clock`](levee_core::Clock)
//!   instance ([`FastClock`](levee_core::FastClock) by default, [`PipelineBuilder::clock`]
//!   to choose): timeouts, backoff, hedge delays and limiter waits read it and sleep on it,
//!   and the [`Context`]'s deadline is one of its readings. Tests use a
//!   [`ManualClock`](levee_core::ManualClock), moved by hand or following paused tokio time.
//! - **Async and blocking.** [`Pipeline::execute`] runs async operations (a real-time clock
//!   sleeps on tokio's timer); [`Pipeline::call`] runs blocking ones on the calling thread,
//!   under [`levee_core::block_on`] on the same clock.
//! - **Cancellation-safe.** Dropping a call's future drops the attempt, its timers and
//!   every permit it holds.
#![forbid(unsafe_code)]

mod breaker;
mod context;
mod error;
mod event;
pub mod fallback;
mod hedge;
mod limit;
mod operation;
mod pipeline;
mod retry;
pub mod settings;
mod stage;
mod timeout;
#[cfg(feature = "tower")]
pub mod tower;

pub use breaker::{BackendFailures, Breaker, ClassifyOutcome, ClassifyWith};
pub use context::Context;
pub use error::{Error, ErrorKind, RetryAfter};
pub use event::Event;
pub use fallback::{Fallback, FallbackHandler};
pub use hedge::{Hedge, HedgeDelay};
pub use limit::{BulkheadPolicy, Limiter};
pub use operation::{Operation, SyncOperation};
pub use pipeline::{Chain, Identity, Pipeline, PipelineBuilder, Wrap};
pub use retry::{
    AnyError, Backoff, OnError, OnOutcome, Retry, RetryBudget, RetryBudgetBuilder, RetryBuilder,
    RetryOn, WithHint,
};
pub use settings::{
    BulkheadSettings, HedgeSettings, PipelineSettings, RateLimitSettings, RetrySettings,
    StandardPipeline, StandardStack,
};
pub use stage::{Instrument, Layered, Leaf, Outcome, Policy, Stage};
pub use timeout::Timeout;
