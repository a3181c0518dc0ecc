//! Keys naming one timer in one wheel.

use std::sync::atomic::{AtomicU32, Ordering};

/// Names one pending timer of one [`TimingWheel`](crate::TimingWheel).
///
/// Small and `Copy` (12 bytes). A key is generational: once its timer fired or was
/// cancelled, the key is stale and every operation with it is refused (`None` or
/// [`TimerError::StaleKey`](crate::TimerError::StaleKey)), even after the wheel reuses the
/// timer's storage for a new timer. A key also names its wheel, so a key used on another
/// wheel is refused ([`TimerError::ForeignKey`](crate::TimerError::ForeignKey)).
///
/// ```
/// use levee_timer::TimingWheel;
///
/// let mut wheel = TimingWheel::new();
/// let key = wheel.insert(5_000_000, "retry")?;
/// assert_eq!(wheel.deadline(key), Some(5_000_000));
/// assert_eq!(wheel.cancel(key), Some("retry"));
/// assert_eq!(wheel.cancel(key), None); // a stale key touches nothing
/// # Ok::<(), levee_timer::TimerError<&str>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerKey {
    pub(crate) wheel: u32,
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl TimerKey {
    /// The id of the wheel that issued this key.
    #[must_use]
    pub fn wheel_id(&self) -> u32 {
        self.wheel
    }
}

/// A fresh wheel id. A plain std atomic even under loom: ids only need to differ.
pub(crate) fn next_wheel_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
