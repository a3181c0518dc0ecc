//! What the wheel hands out: [`Expired`] timers and the [`Drain`] iterator of `advance`.

use std::iter::FusedIterator;

use super::TimingWheel;
use crate::key::TimerKey;

/// A due timer handed out by [`TimingWheel::poll_expired_entry`] (with a [`TimerKey`]) or
/// [`ShardedWheel::poll_expired`](crate::ShardedWheel::poll_expired) (with a
/// [`TimerHandle`](crate::TimerHandle)).
///
/// ```
/// use levee_timer::{Expired, TimingWheel};
///
/// let mut wheel = TimingWheel::new();
/// let key = wheel.insert(2_000_000, 'x').unwrap();
/// let Some(Expired { key: fired, deadline, value }) = wheel.poll_expired_entry(5_000_000) else { panic!() };
/// assert_eq!((fired, deadline, value), (key, 2_000_000, 'x'));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<T, K = TimerKey> {
    /// The key or handle the timer had (now stale).
    pub key: K,
    /// The deadline it was set for.
    pub deadline: u64,
    /// Its value.
    pub value: T,
}

/// The due timers of one [`TimingWheel::advance`], handed out in firing order.
///
/// Timers not taken when it is dropped stay due in the wheel.
///
/// ```
/// use levee_timer::TimingWheel;
///
/// let mut wheel = TimingWheel::new();
/// for ms in [1u64, 2, 3] {
///     wheel.insert(ms * 1_000_000, ms).unwrap();
/// }
/// let mut drain = wheel.advance(3_000_000);
/// assert_eq!(drain.next().map(|(_, v)| v), Some(1));
/// drop(drain); // the timers not taken stay due
/// assert_eq!(wheel.len(), 2);
/// ```
#[derive(Debug)]
pub struct Drain<'a, T> {
    pub(super) wheel: &'a mut TimingWheel<T>,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = (TimerKey, T);

    fn next(&mut self) -> Option<Self::Item> {
        let wheel = &mut *self.wheel;
        if !wheel.started() {
            return None; // timers due at `start` wait for a `now` that reaches it
        }
        let index = wheel.slab.pop_front(&mut wheel.due)?;
        let e = wheel.take_due(index);
        Some((e.key, e.value))
    }
}

impl<T> FusedIterator for Drain<'_, T> {}
