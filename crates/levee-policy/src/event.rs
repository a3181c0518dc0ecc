//! What the policies report to listeners.

use std::time::Duration;

use crate::ErrorKind;

/// A notable thing a policy did, delivered through the [`EventHook`](levee_core::EventHook)
/// given to it (or to the whole pipeline with
/// [`PipelineBuilder::listener`](crate::PipelineBuilder::listener)).
///
/// Nothing is built or delivered when nobody listens, so the happy path pays one branch.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use levee_policy::{Backoff, Error, Event, Pipeline, Retry};
///
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let sink = events.clone();
/// let retry = Retry::builder().max_attempts(2).backoff(Backoff::constant(Duration::ZERO)).build()?;
/// let pipeline = Pipeline::builder()
///     .retry(retry)
///     .listener(move |e: &Event| sink.lock().unwrap().push(e.clone()))
///     .build()?;
/// let _: Result<(), Error<&str>> = pipeline.call(|_| Err("down"));
/// assert!(matches!(events.lock().unwrap()[..], [Event::Retry { attempt: 1, .. }, Event::RetriesExhausted { attempts: 2 }]));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A timeout expired and its attempt was cancelled.
    TimedOut {
        /// The timeout that expired.
        timeout: Duration,
    },
    /// A retry is scheduled.
    Retry {
        /// The attempt about to start (1 for the first retry).
        attempt: u32,
        /// How long the retry waits first.
        delay: Duration,
        /// What the failed attempt returned.
        cause: Option<ErrorKind>,
    },
    /// Every allowed attempt failed; the last outcome is returned.
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// A retry was wanted but the retry budget had nothing left.
    RetryBudgetExhausted {
        /// Attempts made.
        attempts: u32,
    },
    /// A retry was wanted but could not start in time: the deadline would pass first, or the
    /// error's retry-after hint was longer than allowed.
    RetryAbandoned {
        /// Attempts made.
        attempts: u32,
        /// The wait that was not possible.
        wait: Duration,
    },
    /// A hedged attempt started beside the ones still running.
    HedgeStarted {
        /// Its number (1 for the first hedge).
        hedge: u32,
    },
    /// A hedged attempt finished first; the others were cancelled.
    HedgeWon {
        /// Its number.
        hedge: u32,
    },
    /// A fallback replaced an error.
    FallbackUsed {
        /// The error it replaced.
        cause: ErrorKind,
    },
    /// A circuit breaker refused a call.
    CircuitRejected {
        /// How long until it may admit again, when known.
        retry_after: Option<Duration>,
    },
    /// A rate limiter refused a call.
    RateLimited {
        /// How long until it admits again.
        retry_after: Duration,
    },
    /// A call waited for the rate limiter before running.
    RateLimitWaited {
        /// How long it waited.
        waited: Duration,
    },
    /// A bulkhead refused a call.
    BulkheadRejected {
        /// The bulkhead's limit.
        max_concurrent: usize,
    },
}

impl Event {
    /// The name of the policy that emitted it: `timeout`, `retry`, `hedge`, `fallback`,
    /// `breaker`, `limiter` or `bulkhead`.
    #[must_use]
    pub fn policy(&self) -> &'static str {
        match self {
            Self::TimedOut { .. } => "timeout",
            Self::Retry { .. }
            | Self::RetriesExhausted { .. }
            | Self::RetryBudgetExhausted { .. }
            | Self::RetryAbandoned { .. } => "retry",
            Self::HedgeStarted { .. } | Self::HedgeWon { .. } => "hedge",
            Self::FallbackUsed { .. } => "fallback",
            Self::CircuitRejected { .. } => "breaker",
            Self::RateLimited { .. } | Self::RateLimitWaited { .. } => "limiter",
            Self::BulkheadRejected { .. } => "bulkhead",
        }
    }
}
