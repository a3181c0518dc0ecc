//! A shard's entries in one array, addressed by `u32` indices, with a free list; and the
//! FIFO queues that run through them as intrusive links.
//!
//! Why: a queue that holds indices reaches its oldest entry in one step, where a queue of
//! `(hash, id)` tickets had to probe the hash table for it; and the hash table then holds
//! only a `u32` per entry, so it stays small enough to stay in the CPU's caches. Removal
//! unlinks the entry from its queue, so a queue never holds a stale index: an index can be
//! reused as soon as it is freed.

use super::entry::{Entry, Times};

/// No entry: the end of a queue.
pub(crate) const NIL: u32 = u32::MAX;

/// A FIFO queue of entries, linked through them, and the weight it holds.
pub(crate) struct Queue {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) weight: u64,
}

impl Queue {
    pub(crate) const fn new() -> Self {
        Self { head: NIL, tail: NIL, weight: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

/// The entries, the free indices, and (once needed) every entry's [`Times`].
pub(crate) struct Slab<K, V> {
    entries: Vec<Option<Entry<K, V>>>,
    /// Empty until `keep_times`; from then on as long as `entries`.
    times: Vec<Times>,
    keeps_times: bool,
    /// Indices of `None` entries, reused last freed first.
    free: Vec<u32>,
}

impl<K, V> Slab<K, V> {
    pub(crate) fn new() -> Self {
        Self { entries: Vec::new(), times: Vec::new(), keeps_times: false, free: Vec::new() }
    }

    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<&Entry<K, V>> {
        self.entries.get(i as usize)?.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: u32) -> Option<&mut Entry<K, V>> {
        self.entries.get_mut(i as usize)?.as_mut()
    }

    /// Entry `i`'s deadlines, if the slab keeps any.
    #[inline]
    pub(crate) fn times(&self, i: u32) -> Option<&Times> {
        self.times.get(i as usize)
    }

    #[inline]
    pub(crate) fn times_mut(&mut self, i: u32) -> Option<&mut Times> {
        self.times.get_mut(i as usize)
    }

    /// From now on keeps every entry's [`Times`] (those stored so far: no deadline, and an
    /// id from `next_id`).
    pub(crate) fn keep_times(&mut self, now: u64, mut next_id: impl FnMut() -> u64) {
        if !self.keeps_times {
            self.keeps_times = true;
            self.times.reserve_exact(self.entries.capacity());
            self.times.extend((0..self.entries.len()).map(|_| Times::never(next_id(), now)));
        }
    }

    /// The indices of the entries held (for the rare whole-shard passes).
    pub(crate) fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().enumerate().filter(|(_, e)| e.is_some()).map(|(i, _)| i as u32)
    }

    /// True when every index is taken: `insert` would hand the entry back.
    pub(crate) fn is_full(&self) -> bool {
        self.free.is_empty() && self.entries.len() >= NIL as usize
    }

    /// A free index for a new entry, to [`fill`](Self::fill) at once; `None` when every
    /// index is taken. `hint`: how many entries the shard expects to hold at most, so the
    /// array grows to that and not past it (a full shard wastes no slots).
    ///
    /// Two steps rather than one `insert(entry)`: the caller then builds the entry in the
    /// slot itself. An entry built first and moved in went through the stack, and copying it
    /// from there stalled on store forwarding, a sixth of a churning insert
    /// (`cargo bench --bench cache -- cache/churn`).
    #[inline]
    pub(crate) fn vacant(&mut self, hint: usize) -> Option<u32> {
        // Once the shard is full, every insert reuses the index its last eviction freed: that
        // pop is the whole of this call, the rest is out of line.
        match self.free.pop() {
            Some(i) => Some(i),
            None => self.append(hint),
        }
    }

    /// A new index at the end of the array, for [`vacant`](Self::vacant) when none is free.
    #[inline(never)]
    fn append(&mut self, hint: usize) -> Option<u32> {
        let len = self.entries.len();
        if len >= NIL as usize {
            return None;
        }
        if len == self.entries.capacity() {
            let double = len.max(8);
            let room = hint.saturating_sub(len);
            let extra = if room == 0 { double } else { double.min(room) };
            self.entries.reserve_exact(extra);
            if self.keeps_times {
                self.times.reserve_exact(extra);
            }
        }
        self.entries.push(None);
        if self.keeps_times {
            self.times.push(Times::never(0, 0));
        }
        Some(len as u32)
    }

    /// Stores the entry `entry` makes (and the [`Times`] `times` makes, if the slab keeps
    /// them) at `i`, an index [`vacant`](Self::vacant) just handed out, and appends it to
    /// `queue`: the entry is linked as it is written, not fetched again by
    /// [`push_back`](Self::push_back).
    #[inline(always)]
    pub(crate) fn fill_back(
        &mut self,
        queue: &mut Queue,
        i: u32,
        entry: impl FnOnce() -> Entry<K, V>,
        times: impl FnOnce() -> Times,
    ) {
        let slot = &mut self.entries[i as usize];
        debug_assert!(slot.is_none(), "index {i} was not vacant");
        // Built where it is stored (a vacant slot has nothing to drop first).
        let tail = join_tail(slot.get_or_insert_with(entry), queue);
        self.link_after(queue, tail, i);
        if let Some(t) = self.times.get_mut(i as usize) {
            *t = times();
        }
    }

    /// Frees index `i` and hands back its entry. The caller unlinked it first.
    pub(crate) fn remove(&mut self, i: u32) -> Option<Entry<K, V>> {
        let entry = self.entries.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(entry)
    }

    /// Frees index `i`, dropping its entry where it lies. The caller unlinked it first.
    pub(crate) fn discard(&mut self, i: u32) {
        if let Some(slot) = self.entries.get_mut(i as usize)
            && slot.is_some()
        {
            *slot = None;
            self.free.push(i);
        }
    }

    /// The free indices (for the layout checks of the tests).
    #[cfg(test)]
    pub(crate) fn free(&self) -> &[u32] {
        &self.free
    }

    /// Removes every entry, handing each to `f`.
    pub(crate) fn clear(&mut self, mut f: impl FnMut(Entry<K, V>)) {
        for entry in self.entries.drain(..).flatten() {
            f(entry);
        }
        self.times.clear();
        self.free.clear();
    }

    /// Appends entry `i` to `queue` (adding its weight), after `update` changed it (one
    /// lookup of the entry for both).
    pub(crate) fn push_back(
        &mut self,
        queue: &mut Queue,
        i: u32,
        update: impl FnOnce(&mut Entry<K, V>),
    ) {
        let Some(e) = self.get_mut(i) else { return };
        update(e);
        let tail = join_tail(e, queue);
        self.link_after(queue, tail, i);
    }

    /// The other half of an append, after [`join_tail`]: makes entry `i` the one after
    /// `tail`, the last of `queue` (`NIL`: `queue` is empty).
    #[inline]
    fn link_after(&mut self, queue: &mut Queue, tail: u32, i: u32) {
        match self.get_mut(tail) {
            Some(t) => t.next = i,
            None => queue.head = i,
        }
        queue.tail = i;
    }

    /// Takes entry `i` out of `queue` (subtracting its weight).
    pub(crate) fn unlink(&mut self, queue: &mut Queue, i: u32) {
        let Some(e) = self.get_mut(i) else { return };
        let (prev, next) = (e.prev, e.next);
        e.prev = NIL;
        e.next = NIL;
        queue.weight -= u64::from(e.weight);
        match self.get_mut(prev) {
            Some(p) => p.next = next,
            None => queue.head = next,
        }
        match self.get_mut(next) {
            Some(n) => n.prev = prev,
            None => queue.tail = prev,
        }
    }
}

/// The entry's half of an append to `queue`: links `e` after the queue's tail (returned) and
/// adds its weight. [`Slab::link_after`] does the neighbours' half.
#[inline]
fn join_tail<K, V>(e: &mut Entry<K, V>, queue: &mut Queue) -> u32 {
    let tail = queue.tail;
    e.prev = tail;
    e.next = NIL;
    queue.weight += u64::from(e.weight);
    tail
}
