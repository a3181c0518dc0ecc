//! Rate limiters, keyed limits, bulkheads and adaptive concurrency.
#![forbid(unsafe_code)]

mod error;
mod gcra;
mod pacer;
mod quota;
mod rate;
mod stats;
mod wait;
mod warmup;
mod window;

pub use error::{CheckNError, InsufficientCapacity, RetryAfter, Throttled};
pub use pacer::{Pacer, PacerBuilder, Reservation};
pub use quota::{Gcra, MAX_SPAN, Quota};
pub use rate::{RateLimiter, RateLimiterBuilder};
pub use stats::{RateEvent, RateStats};
pub use wait::{AsyncClock, Jitter};
pub use warmup::{WarmUpBuilder, WarmUpLimiter};
pub use window::{
    FixedWindowBuilder, FixedWindowLimiter, MAX_BUCKETS, MAX_WINDOW_LIMIT, SlidingWindowBuilder,
    SlidingWindowLimiter, WindowQuota,
};
