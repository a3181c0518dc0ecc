//! The S3-FIFO ghost queue: hashes of keys recently evicted from the small queue.

/// Hashes of keys recently evicted from the small queue: a direct-mapped table (one slot per
/// hash, a newer hash overwrites an older one in its slot). That approximates the paper's
/// FIFO ghost queue with one memory access per lookup and no allocation per eviction.
pub(crate) struct Ghost {
    slots: Vec<u64>,
}

impl Ghost {
    pub(crate) fn new() -> Self {
        Self { slots: vec![0; 16] }
    }

    #[inline]
    fn slot(&self, hash: u64) -> usize {
        // The low bits index hashbrown's buckets too, but this table is separate; the shard
        // index comes from bits 32.. and is constant here.
        hash as usize & (self.slots.len() - 1)
    }

    pub(crate) fn contains(&self, hash: u64) -> bool {
        hash != 0 && self.slots[self.slot(hash)] == hash
    }

    /// Remembers `hash`, first growing the table to hold about `capacity` hashes.
    #[inline]
    pub(crate) fn add(&mut self, hash: u64, capacity: usize) {
        // The table has a power of two of slots, at least 16, so it needs more exactly when
        // `capacity` exceeds it: one comparison per eviction, the rounding only when growing.
        if capacity > self.slots.len() {
            self.grow(capacity);
        }
        let i = self.slot(hash);
        self.slots[i] = hash;
    }

    /// Grows the table to `capacity` rounded up to a power of two (at least 16), keeping
    /// the hashes it holds.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, capacity: usize) {
        let want = capacity.next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; want]);
        for h in old.into_iter().filter(|&h| h != 0) {
            let i = self.slot(h);
            self.slots[i] = h;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slots.fill(0);
    }
}
