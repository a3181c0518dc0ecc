//! The broker's timers: delayed publishes and nack backoffs wait here until due.
//!
//! A [`levee_timer::TimingWheel`] with 1 ms ticks in exact mode: a timer is never handed out
//! early and less than one tick late, so a delay or backoff ends up to 1 ms after it was due.
//! Insert and removal are O(1) whatever the number of waiting messages.
//!
//! Ack deadlines do not use it: every lease of a subscription has the same length, so leases
//! expire in the order they were granted and a FIFO of `(deadline, slot)` keeps them sorted at
//! O(1) per delivery with no cancellation (see `core.rs`).

use std::collections::BTreeMap;

use levee_timer::{TimerError, TimingWheel};

/// Values waiting for a deadline (nanoseconds on the broker's clock).
#[derive(Debug)]
pub(crate) struct Timers<T> {
    wheel: TimingWheel<T>,
    /// Values the wheel refused (it holds at most `u32::MAX - 1` timers), by deadline, so
    /// that a full wheel loses nothing and fires nothing early.
    overflow: BTreeMap<(u64, u64), T>,
    overflow_seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self { wheel: TimingWheel::new(), overflow: BTreeMap::new(), overflow_seq: 0 }
    }
}

impl<T> Timers<T> {
    /// Arms a timer. A deadline in the past is due at once.
    pub(crate) fn insert(&mut self, deadline: u64, value: T) {
        if let Err(TimerError::Full { value, .. }) = self.wheel.insert(deadline, value) {
            self.overflow.insert((deadline, self.overflow_seq), value);
            self.overflow_seq += 1;
        }
    }

    /// The earliest time something may be due (the wheel may report an earlier time at which
    /// it only needs to cascade; polling then simply finds nothing).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let overflow = self.overflow.first_key_value().map(|(&(deadline, _), _)| deadline);
        match (self.wheel.next_deadline(), overflow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One value whose deadline is at or before `now`.
    pub(crate) fn poll_expired(&mut self, now: u64) -> Option<T> {
        if let Some(entry) = self.overflow.first_entry()
            && entry.key().0 <= now
        {
            return Some(entry.remove());
        }
        self.wheel.poll_expired(now).map(|(_, value)| value)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.wheel.len() + self.overflow.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn fires_when_due_never_early() {
        let mut t = Timers::default();
        t.insert(30 * MS, "c");
        t.insert(20 * MS, "b");
        t.insert(10 * MS, "a");
        assert_eq!(t.len(), 3);
        assert!(t.next_deadline().is_some_and(|d| d <= 10 * MS));
        assert!(t.poll_expired(10 * MS - 1).is_none());
        assert_eq!(t.poll_expired(10 * MS), Some("a"));
        let mut rest = vec![t.poll_expired(30 * MS).unwrap(), t.poll_expired(30 * MS).unwrap()];
        rest.sort_unstable();
        assert_eq!(rest, ["b", "c"]);
        assert!(t.poll_expired(u64::MAX).is_none());
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn past_deadlines_are_due_at_once() {
        let mut t = Timers::default();
        assert!(t.poll_expired(50 * MS).is_none());
        t.insert(MS, 1);
        assert_eq!(t.poll_expired(50 * MS), Some(1));
    }
}
