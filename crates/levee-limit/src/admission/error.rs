//! Why the admission controller refused a request. Apart so that the tower layer's error
//! family ([`LimitError::Shed`](crate::tower::LimitError)) names it on its own.

use std::time::Duration;

use crate::error::RetryAfter;

/// The admission controller shed a request: more were in flight than the estimated capacity.
///
/// ```
/// use levee_limit::{RetryAfter, Shed};
///
/// let shed = Shed { in_flight: 41, capacity: 40 };
/// assert_eq!(shed.to_string(), "load shed: 41 requests in flight over an estimated capacity of 40");
/// assert_eq!(shed.retry_after(), None); // capacity frees up as requests complete
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("load shed: {in_flight} requests in flight over an estimated capacity of {capacity}")]
pub struct Shed {
    /// Requests in flight when this one arrived (itself included).
    pub in_flight: usize,
    /// The estimated capacity at the time (requests in flight).
    pub capacity: usize,
}

/// A shed carries no time: capacity frees up as requests in flight complete.
impl RetryAfter for Shed {
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}
