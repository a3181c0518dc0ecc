//! Deduplication by message id within a window bounded by time and count.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct Dedup {
    window: u64,
    capacity: usize,
    seen: HashMap<Arc<str>, u64>,
    order: VecDeque<(u64, Arc<str>)>,
}

impl Dedup {
    /// `window` in nanoseconds (zero: off), `capacity` ids at most.
    pub(crate) fn new(window: u64, capacity: usize) -> Self {
        Self { window, capacity, seen: HashMap::new(), order: VecDeque::new() }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.window > 0 && self.capacity > 0
    }

    fn evict(&mut self, now: u64) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(self.window) > now && self.order.len() <= self.capacity {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.seen.remove(&id);
            }
        }
    }

    /// The sequence number of an earlier message with `id` still in the window.
    pub(crate) fn check(&mut self, id: &str, now: u64) -> Option<u64> {
        self.evict(now);
        self.seen.get(id).copied()
    }

    /// Remembers `id` (which [`check`](Self::check) just said is new) as message `seq`.
    pub(crate) fn record(&mut self, id: &str, seq: u64, now: u64) {
        self.record_shared(id.into(), seq, now);
    }

    /// [`record`](Self::record) for an id already shared (recovery reads them so).
    pub(crate) fn record_shared(&mut self, id: Arc<str>, seq: u64, now: u64) {
        self.seen.insert(Arc::clone(&id), seq);
        self.order.push_back((now, id));
        self.evict(now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_by_time_and_by_count() {
        let mut d = Dedup::new(100, 2);
        assert_eq!(d.check("a", 0), None);
        d.record("a", 1, 0);
        assert_eq!(d.check("a", 99), Some(1));
        assert_eq!(d.check("a", 100), None, "window passed");
        d.record("b", 2, 100);
        d.record("c", 3, 101);
        d.record("e", 4, 102);
        assert_eq!(d.len(), 2);
        assert_eq!(d.check("b", 102), None, "oldest forgotten at capacity");
        assert_eq!(d.check("c", 102), Some(3));
        assert!(d.enabled());
        assert!(!Dedup::new(0, 5).enabled());
    }
}
