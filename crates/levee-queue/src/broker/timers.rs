//! The broker's timers: delayed publishes and nack backoffs wait here until due.
//!
//! A stand-in with the shape of `levee_timer::TimingWheel` (`insert`, `cancel`,
//! `next_deadline`, `poll_expired`), kept in a `BTreeMap` until that crate lands; swapping it
//! changes this file only.
//!
//! Ack deadlines do not use it: every lease of a subscription has the same length, so leases
//! expire in the order they were granted and a FIFO of `(deadline, slot)` keeps them sorted at
//! O(1) per delivery with no cancellation (see `core.rs`).

use std::collections::BTreeMap;

/// Identifies an armed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TimerKey {
    deadline: u64,
    id: u64,
}

/// Values waiting for a deadline (nanoseconds on the broker's clock).
#[derive(Debug)]
pub(crate) struct Timers<T> {
    entries: BTreeMap<TimerKey, T>,
    next_id: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self { entries: BTreeMap::new(), next_id: 0 }
    }
}

impl<T> Timers<T> {
    /// Arms a timer. Never fails: a deadline in the past is simply due at once.
    pub(crate) fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let key = TimerKey { deadline, id: self.next_id };
        self.next_id += 1;
        self.entries.insert(key, value);
        key
    }

    /// Disarms a timer, giving its value back if it had not fired.
    #[allow(dead_code)]
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.entries.remove(&key)
    }

    /// The earliest deadline armed.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.entries.first_key_value().map(|(k, _)| k.deadline)
    }

    /// One value whose deadline is at or before `now`, earliest first.
    pub(crate) fn poll_expired(&mut self, now: u64) -> Option<(TimerKey, T)> {
        if self.next_deadline()? <= now { self.entries.pop_first() } else { None }
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_and_cancels() {
        let mut t = Timers::default();
        t.insert(30, "c");
        let b = t.insert(20, "b");
        t.insert(10, "a");
        assert_eq!(t.next_deadline(), Some(10));
        assert_eq!(t.cancel(b), Some("b"));
        assert_eq!(t.cancel(b), None);
        assert!(t.poll_expired(9).is_none());
        assert_eq!(t.poll_expired(30).map(|(_, v)| v), Some("a"));
        assert_eq!(t.poll_expired(30).map(|(_, v)| v), Some("c"));
        assert!(t.poll_expired(u64::MAX).is_none());
        assert_eq!(t.len(), 0);
    }
}
