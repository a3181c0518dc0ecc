//! Events a breaker emits, and its metrics snapshot.

use std::sync::Arc;
use std::time::Duration;

use crate::State;

/// Why a breaker changed state.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_breaker::{BreakerEvent, CircuitBreaker, Reason, State};
///
/// let reasons = Arc::new(Mutex::new(Vec::new()));
/// let sink = reasons.clone();
/// let breaker = CircuitBreaker::builder()
///     .listener(move |e: &BreakerEvent| sink.lock().unwrap().push(e.reason))
///     .build()?;
/// breaker.trip();
/// assert_eq!(breaker.state(), State::Open);
/// assert_eq!(reasons.lock().unwrap()[..], [Reason::Manual]);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The window's failure rate reached the threshold.
    FailureRate,
    /// The window's slow-call rate reached the threshold.
    SlowCallRate,
    /// The window held as many failures as the absolute threshold.
    FailureCount,
    /// The open wait passed and a call asked for a permit.
    WaitElapsed,
    /// The half-open trials succeeded.
    TrialsPassed,
    /// The half-open trials failed.
    TrialsFailed,
    /// The breaker stayed half-open longer than `half_open_max_wait` without a decision.
    HalfOpenTimeout,
    /// An operator called `reset`, `trip`, `force_open` or `disable`.
    Manual,
    /// [`CircuitBreaker::probe`](crate::CircuitBreaker::probe) moved it to half-open (e.g.
    /// peers reported the dependency down or back up).
    Probe,
}

/// A state transition, delivered to the breaker's listeners on the thread that caused it.
/// Only transitions emit events, so listening costs nothing on the hot path.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_breaker::{BreakerEvent, CircuitBreaker, State};
///
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let sink = events.clone();
/// let breaker = CircuitBreaker::builder()
///     .name("search")
///     .listener(move |e: &BreakerEvent| sink.lock().unwrap().push(e.clone()))
///     .build()?;
/// breaker.trip();
/// let event = &events.lock().unwrap()[0];
/// assert_eq!((&*event.name, event.from, event.to), ("search", State::Closed, State::Open));
/// assert!(event.open_until.is_some());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerEvent {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// The generation of the state entered: one more (mod 2^25) at every transition, so
    /// events of one breaker delivered out of order can be put back in order with
    /// [`generation_is_newer`](crate::generation_is_newer).
    pub generation: u32,
    /// Why.
    pub reason: Reason,
    /// When, as a reading of the breaker's clock.
    pub at: u64,
    /// When the circuit will let trial calls through, if `to` is [`State::Open`].
    pub open_until: Option<u64>,
}

/// A snapshot of a breaker, for dashboards and health endpoints.
///
/// ```
/// use levee_breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().name("db").build()?;
/// let _ = breaker.call(|| Ok::<_, ()>(()));
/// let metrics = breaker.metrics();
/// assert_eq!((&*metrics.name, metrics.state, metrics.calls), ("db", State::Closed, 1));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The current state (an open breaker whose wait has passed still reads open until a
    /// call asks for a permit).
    pub state: State,
    /// Calls judged: in the window when closed, trials completed when half-open.
    pub calls: u64,
    /// Of those, failures.
    pub failed_calls: u64,
    /// Of those, slow calls.
    pub slow_calls: u64,
    /// Failure percentage, once there are enough calls to judge.
    pub failure_rate: Option<f64>,
    /// Slow-call percentage, once there are enough calls to judge.
    pub slow_call_rate: Option<f64>,
    /// Calls refused since the breaker was built.
    pub not_permitted: u64,
    /// How long the breaker has been in its state.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub time_in_state: Duration,
    /// When an open breaker lets trial calls through (a clock reading).
    pub open_until: Option<u64>,
    /// Consecutive openings without a close (the backoff exponent plus one; 0 when closed).
    pub consecutive_openings: u32,
    /// Half-open trial permits handed out and not yet completed.
    pub trials_in_flight: u32,
}
