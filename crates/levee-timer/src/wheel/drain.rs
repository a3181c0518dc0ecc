//! What the wheel hands out: [`Expired`] timers and the [`Drain`] iterator of `advance`.

use std::iter::FusedIterator;

use super::TimingWheel;
use crate::key::TimerKey;

/// A due timer handed out by [`TimingWheel::poll_expired_entry`] (with a [`TimerKey`]) or
/// [`ShardedWheel::poll_expired`](crate::ShardedWheel::poll_expired) (with a
/// [`TimerHandle`](crate::TimerHandle)).
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
