//! What the client can tell about each endpoint, for metrics and health pages.

use std::time::Duration;

use levee_breaker::{BreakerMetrics, State};
use levee_core::Clock;

use crate::Endpoint;
use crate::balance::EndpointState;

/// A snapshot of one endpoint.
///
/// ```
/// use levee_client::{Client, Endpoint};
///
/// let client = Client::builder().endpoints([Endpoint::new("http://127.0.0.1:8081")?]).build()?;
/// for s in client.stats() {
///     println!("{}: {} in flight, ~{:?}, breaker {:?}", s.endpoint.authority(), s.in_flight, s.latency, s.breaker.state);
///     assert!(!s.is_ejected());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint, with its current priority group and health.
    pub endpoint: Endpoint,
    /// Requests sent and not yet answered.
    pub in_flight: u32,
    /// The peak-EWMA latency estimate (decayed to now).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub latency: Duration,
    /// Its breaker's state and window.
    pub breaker: BreakerMetrics,
    /// Requests sent to it since it joined the set.
    pub requests: u64,
    /// Of those, failures (error statuses, transport errors, timeouts).
    pub failures: u64,
}

impl EndpointStats {
    pub(crate) fn of<C: Clock>(state: &EndpointState<C>, priority: u8, now: u64) -> Self {
        Self {
            endpoint: state.endpoint.clone().with_priority(priority).healthy(state.is_healthy()),
            in_flight: state.load.in_flight(),
            latency: Duration::from_nanos(state.load.estimate(now) as u64),
            breaker: state.breaker.metrics(),
            requests: state.requests.get(),
            failures: state.failures.get(),
        }
    }

    /// True when the endpoint takes no requests now: unhealthy, or its breaker open (and
    /// its wait not over) or forced open.
    #[must_use]
    pub fn is_ejected(&self) -> bool {
        !self.endpoint.is_healthy()
            || self.breaker.state == State::ForcedOpen
            || (self.breaker.state == State::Open && self.breaker.open_until.is_some())
    }
}
