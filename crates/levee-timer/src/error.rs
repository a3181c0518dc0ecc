//! The errors of the timer crate.

use std::fmt;

/// Why a wheel refused an operation.
///
/// [`TimingWheel::insert`](crate::TimingWheel::insert) only fails with
/// [`Full`](Self::Full), which hands the value back; [`reset`](crate::TimingWheel::reset)
/// only with [`StaleKey`](Self::StaleKey) or [`ForeignKey`](Self::ForeignKey) (its `T` is
/// `()`).
///
/// ```
/// use levee_timer::{TimerError, TimingWheel};
///
/// let mut wheel = TimingWheel::builder().max_pending(1).build().unwrap();
/// wheel.insert(10, "first").unwrap();
/// match wheel.insert(20, "second") {
///     Err(TimerError::Full { value, max_pending }) => assert_eq!((value, max_pending), ("second", 1)),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum TimerError<T = ()> {
    /// The wheel already holds `max_pending` timers; the value comes back unchanged.
    Full {
        /// The value that was not inserted.
        value: T,
        /// The configured bound that was reached.
        max_pending: usize,
    },
    /// The key's timer already fired or was cancelled (or the key was never valid).
    StaleKey,
    /// The key was issued by another wheel.
    ForeignKey,
}

impl<T> TimerError<T> {
    /// The value a [`Full`](Self::Full) error handed back, if any.
    pub fn into_value(self) -> Option<T> {
        match self {
            Self::Full { value, .. } => Some(value),
            Self::StaleKey | Self::ForeignKey => None,
        }
    }
}

impl<T> fmt::Debug for TimerError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { max_pending, .. } => {
                f.debug_struct("Full").field("max_pending", max_pending).finish_non_exhaustive()
            }
            Self::StaleKey => f.write_str("StaleKey"),
            Self::ForeignKey => f.write_str("ForeignKey"),
        }
    }
}

impl<T> fmt::Display for TimerError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { max_pending, .. } => {
                write!(f, "timer wheel is full: {max_pending} timers pending (max_pending)")
            }
            Self::StaleKey => f.write_str("timer key is stale: the timer fired or was cancelled"),
            Self::ForeignKey => f.write_str("timer key belongs to another wheel"),
        }
    }
}

impl<T> std::error::Error for TimerError<T> {}
