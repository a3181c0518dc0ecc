//! A map from sequence numbers to values, for keys that arrive in increasing order and mostly
//! leave in the same order: a topic's live messages, a subscription's messages. Recovery
//! inserts a million of them and the broker one per publish, so a lookup is an index into
//! an array rather than a hash and a probe.
//!
//! How it works. `window[i]` holds key `base + i` (or a hole). An insert past the end pads
//! the gap with holes, unless the gap is wider than the window: then the entries still in
//! the window move to `behind`, an ordered map, and the window starts over at the new key.
//! Removing leaves a hole; holes at the front are popped, and once the window is less than a
//! quarter full, entries at its front move to `behind` until it is dense again. So the
//! few keys that stay while later ones come and go (dead letters, a message of a slow
//! subscription, every key of a subscription whose filter skips most messages) end up in
//! `behind`, and memory follows the number of entries, not the span of their keys.
//!
//! Each key moves to `behind` at most once and each slot is pushed and popped once, so every
//! operation is O(1) amortized, O(log n) for keys in `behind`. Iteration is in key order.

use std::collections::{BTreeMap, VecDeque};

/// Below this length the window is left alone however sparse it is.
const MIN_WINDOW: usize = 64;

/// An ordered map from `u64` keys to `V`, fast for keys that come in increasing order.
#[derive(Debug, Clone)]
pub(crate) struct SeqMap<V> {
    /// The key of `window[0]`.
    base: u64,
    window: VecDeque<Option<V>>,
    /// Entries in `window`.
    in_window: usize,
    /// Entries below `base`.
    behind: BTreeMap<u64, V>,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        Self { base: 0, window: VecDeque::new(), in_window: 0, behind: BTreeMap::new() }
    }
}

impl<V> SeqMap<V> {
    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.in_window + self.behind.len()
    }

    fn index(&self, key: u64) -> Option<usize> {
        let i = usize::try_from(key.checked_sub(self.base)?).ok()?;
        (i < self.window.len()).then_some(i)
    }

    pub(crate) fn get(&self, key: u64) -> Option<&V> {
        if key < self.base {
            return self.behind.get(&key);
        }
        self.window.get(self.index(key)?)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        if key < self.base {
            return self.behind.get_mut(&key);
        }
        let i = self.index(key)?;
        self.window.get_mut(i)?.as_mut()
    }

    /// Inserts `value` at `key`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: u64, value: V) -> Option<V> {
        if key < self.base {
            return self.behind.insert(key, value);
        }
        if let Some(i) = self.index(key) {
            let old = self.window[i].replace(value);
            if old.is_none() {
                self.in_window += 1;
            }
            return old;
        }
        let end = self.base + self.window.len() as u64;
        if key == end && self.in_window > 0 {
            // The common case: the next key. The density only improves, but the window may
            // just have outgrown MIN_WINDOW while still sparse.
            self.window.push_back(Some(value));
            self.in_window += 1;
            if self.in_window * 4 < self.window.len() {
                self.tidy();
            }
            return None;
        }
        let gap = key - end;
        if self.in_window == 0 || gap > self.window.len().max(MIN_WINDOW) as u64 {
            self.spill_all();
            self.base = key;
        } else {
            // At most the window's length (or MIN_WINDOW), so the window at most doubles.
            self.window.extend((0..gap).map(|_| None));
        }
        self.window.push_back(Some(value));
        self.in_window += 1;
        self.tidy();
        None
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: u64) -> Option<V> {
        if key < self.base {
            return self.behind.remove(&key);
        }
        let i = self.index(key)?;
        let old = self.window[i].take()?;
        self.in_window -= 1;
        self.tidy();
        Some(old)
    }

    /// Keeps only the entries for which `keep` returns true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64, &mut V) -> bool) {
        self.behind.retain(|k, v| keep(*k, v));
        let base = self.base;
        for (i, slot) in self.window.iter_mut().enumerate() {
            if let Some(v) = slot
                && !keep(base + i as u64, v)
            {
                *slot = None;
                self.in_window -= 1;
            }
        }
        self.tidy();
    }

    /// Every entry in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let base = self.base;
        self.behind.iter().map(|(k, v)| (*k, v)).chain(
            self.window
                .iter()
                .enumerate()
                .filter_map(move |(i, v)| v.as_ref().map(|v| (base + i as u64, v))),
        )
    }

    /// Every key in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Moves every entry of the window to `behind` and empties it.
    fn spill_all(&mut self) {
        let base = self.base;
        for (i, slot) in self.window.drain(..).enumerate() {
            if let Some(v) = slot {
                self.behind.insert(base + i as u64, v);
            }
        }
        self.in_window = 0;
    }

    /// Pops holes at the front, and entries too while the window is less than a quarter full.
    fn tidy(&mut self) {
        loop {
            let sparse = self.window.len() > MIN_WINDOW && self.in_window * 4 < self.window.len();
            match self.window.front() {
                Some(None) => {}
                Some(Some(_)) if sparse => {}
                _ => break,
            }
            if let Some(Some(v)) = self.window.pop_front() {
                self.behind.insert(self.base, v);
                self.in_window -= 1;
            }
            self.base += 1;
        }
        if self.window.is_empty() && self.window.capacity() > 4 * MIN_WINDOW {
            // A drained backlog gives its memory back.
            self.window = VecDeque::new();
        }
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.in_window, self.window.iter().filter(|s| s.is_some()).count());
        assert!(self.behind.keys().all(|&k| k < self.base));
        assert!(self.window.front().is_none_or(Option::is_some), "front is an entry");
        assert!(
            self.window.len() <= MIN_WINDOW.max(4 * self.in_window),
            "window {} for {} entries",
            self.window.len(),
            self.in_window
        );
    }
}

impl<V> FromIterator<(u64, V)> for SeqMap<V> {
    fn from_iter<I: IntoIterator<Item = (u64, V)>>(iter: I) -> Self {
        let mut map = Self::default();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Insert at the next key plus a gap.
        Push { gap: u64 },
        /// Insert at any key (a copy forward of an old message, a replay).
        Insert { key: u64 },
        /// Remove the entry at this rank among the present keys.
        Remove { rank: usize },
        /// Remove every entry whose key is a multiple of this.
        RetainNot { modulo: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => prop_oneof![3 => Just(0u64), 1 => 0u64..4, 1 => 0u64..300, 1 => Just(1 << 40)]
                .prop_map(|gap| Op::Push { gap }),
            1 => (0u64..2000).prop_map(|key| Op::Insert { key }),
            5 => any::<usize>().prop_map(|rank| Op::Remove { rank }),
            1 => (2u64..7).prop_map(|modulo| Op::RetainNot { modulo }),
        ]
    }

    proptest! {
        /// Against a `BTreeMap`: the same answers after every operation, and the window
        /// never more than four times the entries it holds.
        #[test]
        fn behaves_like_a_btreemap(ops in prop::collection::vec(op(), 1..400)) {
            let mut map = SeqMap::default();
            let mut model = BTreeMap::new();
            let mut next = 0u64;
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Push { gap } => {
                        next += gap;
                        prop_assert_eq!(map.insert(next, n), model.insert(next, n));
                        next += 1;
                    }
                    Op::Insert { key } => {
                        prop_assert_eq!(map.insert(key, n), model.insert(key, n));
                        next = next.max(key + 1);
                    }
                    Op::Remove { rank } => {
                        if let Some(&key) = model.keys().nth(rank % model.len().max(1)) {
                            prop_assert_eq!(map.remove(key), model.remove(&key));
                        }
                        prop_assert_eq!(map.remove(next + 5), None);
                    }
                    Op::RetainNot { modulo } => {
                        map.retain(|k, _| k % modulo != 0);
                        model.retain(|k, _| k % modulo != 0);
                    }
                }
                map.check_invariants();
                prop_assert_eq!(map.len(), model.len());
                let got: Vec<(u64, usize)> = map.iter().map(|(k, v)| (k, *v)).collect();
                let want: Vec<(u64, usize)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(got, want);
                for key in [0, next.saturating_sub(1), next, next / 2] {
                    prop_assert_eq!(map.get(key), model.get(&key));
                }
            }
        }
    }

    #[test]
    fn a_straggler_does_not_pin_the_window() {
        let mut map = SeqMap::default();
        for k in 0..100_000u64 {
            map.insert(k, k);
            if k > 0 {
                map.remove(k - 1);
            }
            if k == 10 {
                map.insert(3, 3); // stays, like a dead letter
            }
        }
        assert_eq!(map.len(), 2);
        assert!(map.window.len() <= MIN_WINDOW, "{}", map.window.len());
        assert_eq!(map.keys().collect::<Vec<_>>(), [3, 99_999]);
        *map.get_mut(3).unwrap() += 1;
        assert_eq!(map.get(3), Some(&4));
        assert_eq!((map.get(99_999), map.get(99_998)), (Some(&99_999), None));
    }
}
