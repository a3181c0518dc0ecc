//! Entry storage: a chunked slab of timer entries threaded by intrusive doubly-linked lists.
//!
//! Entries live in fixed-size chunks (`CHUNK` entries each), addressed by a `u32` index, so a
//! wheel of 10 million timers never reallocates (and copies) one huge array, and whole empty
//! chunks can be handed back to the allocator by [`Slab::compact`]. Every entry carries
//! `prev`/`next` indices, which thread it into exactly one list at a time: a wheel slot, the
//! due list, or the free list. That makes unlinking (cancel) O(1) and moving a whole slot to
//! the due list O(1).
//!
//! Each entry has a generation, bumped when the entry is freed: a key remembers the
//! generation it was issued with, so a key whose timer fired or was cancelled never matches
//! the entry's next occupant. Released chunks remember the highest generation they held
//! (`floors`), so a chunk that is allocated again starts above every key ever issued for it.

/// "No entry": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;
/// `place` of an entry on the free list.
pub(crate) const PLACE_FREE: u32 = u32::MAX;
/// `place` of an entry on the due list.
pub(crate) const PLACE_DUE: u32 = u32::MAX - 1;

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: u32 = (CHUNK as u32) - 1;

/// Most entries one slab holds: every `u32` index except [`NIL`].
pub(crate) const MAX_ENTRIES: usize = NIL as usize;

/// One timer (or a free cell).
#[derive(Debug)]
pub(crate) struct Entry<T> {
    /// The deadline in clock nanoseconds.
    pub(crate) deadline: u64,
    /// The entry before this one on its list. Stale (whatever it was) while the entry is
    /// its list's head: the list's `head` says so, and unlinking a head need not touch the
    /// entry after it.
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) generation: u32,
    /// Which list holds the entry: a slot number (`level * 64 + slot`), [`PLACE_DUE`] or
    /// [`PLACE_FREE`].
    pub(crate) place: u32,
    /// `Some` exactly when the entry is live.
    pub(crate) value: Option<T>,
}

/// A fixed-size block of entries: an index masked to `CHUNK_MASK` needs no bounds check.
type Chunk<T> = Box<[Entry<T>; CHUNK]>;

/// The head and tail of an intrusive list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct List {
    pub(crate) head: u32,
    pub(crate) tail: u32,
}

impl List {
    pub(crate) const EMPTY: Self = Self { head: NIL, tail: NIL };

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

/// The chunked slab.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    /// `None` is a chunk released by `compact` (a hole, reused before new chunks are made).
    chunks: Vec<Option<Chunk<T>>>,
    /// Per chunk index: the generation a re-made chunk starts its entries at.
    floors: Vec<u32>,
    /// Released chunk indices, highest first (so `pop` reuses the lowest).
    holes: Vec<u32>,
    /// Free entries; `next` links them.
    free_head: u32,
    len: usize,
    /// Frees since the free list was last threaded in index order that were not next to
    /// the previous free (so the free list jumps there).
    scattered: usize,
    /// The entry freed last.
    last_freed: u32,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Self {
            chunks: Vec::new(),
            floors: Vec::new(),
            holes: Vec::new(),
            free_head: NIL,
            len: 0,
            scattered: 0,
            last_freed: NIL,
        }
    }

    /// Live entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries the slab can hold without allocating.
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.iter().flatten().count() * CHUNK
    }

    /// Bytes of entry storage currently allocated (chunks only, not the chunk table).
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<Entry<T>>()
    }

    /// The entry at `index` if its chunk exists (live or free).
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&Entry<T>> {
        let chunk = self.chunks.get((index >> CHUNK_BITS) as usize)?.as_ref()?;
        Some(&chunk[(index & CHUNK_MASK) as usize])
    }

    /// Mutable access to an entry if its chunk exists.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut Entry<T>> {
        let chunk = self.chunks.get_mut((index >> CHUNK_BITS) as usize)?.as_mut()?;
        Some(&mut chunk[(index & CHUNK_MASK) as usize])
    }

    /// The entry at an index the caller knows is allocated (taken from a list or a checked key).
    #[inline]
    pub(crate) fn at(&self, index: u32) -> &Entry<T> {
        match self.get(index) {
            Some(entry) => entry,
            None => unreachable!("index {index} is not allocated"),
        }
    }

    /// Mutable [`at`](Self::at).
    #[inline]
    pub(crate) fn at_mut(&mut self, index: u32) -> &mut Entry<T> {
        match self.get_mut(index) {
            Some(entry) => entry,
            None => unreachable!("index {index} is not allocated"),
        }
    }

    /// Stores a new live entry (not on any list yet) and returns its index and generation,
    /// or gives the value back when every index is in use.
    #[inline]
    pub(crate) fn insert(&mut self, deadline: u64, value: T) -> Result<(u32, u32), T> {
        if self.free_head == NIL && !self.grow() {
            return Err(value);
        }
        let index = self.free_head;
        let entry = self.at_mut(index);
        let next_free = entry.next;
        entry.deadline = deadline;
        entry.prev = NIL;
        entry.next = NIL;
        entry.value = Some(value);
        let generation = entry.generation;
        self.free_head = next_free;
        self.len += 1;
        Ok((index, generation))
    }

    /// Frees a live entry that is on no list, returning its value.
    #[inline]
    pub(crate) fn remove(&mut self, index: u32) -> T {
        let free_head = self.free_head;
        let entry = self.at_mut(index);
        let Some(value) = entry.value.take() else {
            unreachable!("removing free entry {index}");
        };
        entry.generation = entry.generation.wrapping_add(1);
        entry.place = PLACE_FREE;
        entry.prev = NIL;
        entry.next = free_head;
        self.free_head = index;
        self.len -= 1;
        // Entries are freed in firing order, which scatters the free list over memory; when
        // the slab empties after much scattering, re-thread it in index order so the next
        // burst of inserts writes memory sequentially. Frees next to each other in index
        // order (cancelling in the order of setting) leave a sequential list: no pass over
        // the whole slab then. Amortised O(1): at most once per `capacity / 4` frees.
        let step = index.wrapping_sub(self.last_freed).wrapping_add(1);
        self.scattered += usize::from(step > 2);
        self.last_freed = index;
        if self.len == 0 && self.scattered >= self.capacity() / 4 {
            self.rethread();
        }
        value
    }

    /// Threads the free list through every free entry, lowest index first. O(capacity).
    #[cold]
    #[inline(never)]
    fn rethread(&mut self) {
        let mut head = NIL;
        for (ci, chunk) in self.chunks.iter_mut().enumerate().rev() {
            let Some(chunk) = chunk else { continue };
            for (ei, entry) in chunk.iter_mut().enumerate().rev() {
                if entry.value.is_none() {
                    entry.next = head;
                    head = (ci * CHUNK + ei) as u32;
                }
            }
        }
        self.free_head = head;
        self.scattered = 0;
    }

    /// Makes a chunk of free entries (reusing the lowest hole first). False when the index
    /// space is exhausted.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> bool {
        let chunk_index = match self.holes.pop() {
            Some(hole) => hole as usize,
            None => {
                let next = self.chunks.len();
                // The last chunk would contain index NIL; stop one chunk short of it.
                if (next + 1) * CHUNK > MAX_ENTRIES {
                    return false;
                }
                self.chunks.push(None);
                if self.floors.len() <= next {
                    self.floors.push(0);
                }
                next
            }
        };
        let floor = self.floors[chunk_index];
        let base = (chunk_index * CHUNK) as u32;
        let free_head = self.free_head;
        let entries: Vec<Entry<T>> = (0..CHUNK as u32)
            .map(|i| Entry {
                deadline: 0,
                prev: NIL,
                next: if i + 1 < CHUNK as u32 { base + i + 1 } else { free_head },
                generation: floor,
                place: PLACE_FREE,
                value: None,
            })
            .collect();
        let Ok(chunk) = Chunk::try_from(entries.into_boxed_slice()) else {
            unreachable!("a chunk has CHUNK entries")
        };
        self.chunks[chunk_index] = Some(chunk);
        self.free_head = base;
        true
    }

    /// Releases every chunk without a live entry and re-threads the free list in ascending
    /// index order, so new entries fill the lowest chunks first and later compactions can
    /// release the high ones. O(capacity).
    pub(crate) fn compact(&mut self) {
        for (i, slot) in self.chunks.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|c| c.iter().all(|e| e.value.is_none())) {
                if let Some(chunk) = slot.take() {
                    // Every key issued for this chunk has a generation below the entries'
                    // current ones (freeing bumps it), so the maximum is a safe floor.
                    let max = chunk.iter().map(|e| e.generation).max().unwrap_or(0);
                    self.floors[i] = self.floors[i].max(max);
                }
            }
        }
        // Trailing holes need not be remembered as holes: `grow` re-pushes them in order.
        while matches!(self.chunks.last(), Some(None)) {
            self.chunks.pop();
        }
        self.chunks.shrink_to_fit();
        self.holes = (0..self.chunks.len() as u32)
            .rev()
            .filter(|&i| self.chunks[i as usize].is_none())
            .collect();
        self.rethread();
    }

    // ----- intrusive lists -----

    /// Appends `index` (on no list) to `list`, recording `place`.
    #[inline]
    pub(crate) fn push_back(&mut self, list: &mut List, index: u32, place: u32) {
        let tail = list.tail;
        let entry = self.at_mut(index);
        entry.prev = tail;
        entry.next = NIL;
        entry.place = place;
        if tail == NIL {
            list.head = index;
        } else {
            self.at_mut(tail).next = index;
        }
        list.tail = index;
    }

    /// Removes `index` from `list` (which must hold it).
    ///
    /// A list's head keeps a stale `prev` (see [`Entry::prev`]), so removing the head, the
    /// common case when timers are cancelled in the order they were set and when due
    /// entries are popped, writes neither neighbour: only the list's `head`.
    #[inline]
    pub(crate) fn unlink(&mut self, list: &mut List, index: u32) {
        let entry = self.at(index);
        let next = entry.next;
        if list.head == index {
            list.head = next;
            if next == NIL {
                list.tail = NIL;
            }
            return;
        }
        let prev = entry.prev;
        self.at_mut(prev).next = next;
        if next == NIL {
            list.tail = prev;
        } else {
            self.at_mut(next).prev = prev;
        }
    }

    /// Removes and returns the first entry of `list`.
    #[inline]
    pub(crate) fn pop_front(&mut self, list: &mut List) -> Option<u32> {
        let head = list.head;
        if head == NIL {
            return None;
        }
        let next = self.at(head).next;
        list.head = next;
        if next == NIL {
            list.tail = NIL;
        }
        Some(head)
    }

    /// Moves every entry of `src` to the end of `dst` in O(1). The entries keep their old
    /// `place`; the wheel copes with that (see `TimingWheel::detach`).
    #[inline]
    pub(crate) fn append(&mut self, dst: &mut List, src: &mut List) {
        if src.is_empty() {
            return;
        }
        if dst.is_empty() {
            *dst = *src;
        } else {
            self.at_mut(dst.tail).next = src.head;
            // No longer a head: its `prev` must be right from now on.
            self.at_mut(src.head).prev = dst.tail;
            dst.tail = src.tail;
        }
        *src = List::EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_overhead_is_24_bytes_plus_the_option() {
        assert_eq!(std::mem::size_of::<Entry<()>>(), 32);
        assert_eq!(std::mem::size_of::<Entry<u64>>(), 40);
        assert_eq!(std::mem::size_of::<Entry<Box<u8>>>(), 32, "niche: no discriminant");
    }

    #[test]
    fn insert_remove_reuses_with_new_generation() {
        let mut slab = Slab::new();
        let (a, ga) = slab.insert(1, "a").unwrap();
        let (b, _) = slab.insert(2, "b").unwrap();
        assert_ne!(a, b);
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.remove(a), "a");
        let (c, gc) = slab.insert(3, "c").unwrap();
        assert_eq!(c, a, "freed index is reused first");
        assert_ne!(gc, ga, "with a new generation");
        assert_eq!(slab.capacity(), CHUNK);
    }

    #[test]
    fn lists_link_unlink_and_append() {
        let mut slab = Slab::new();
        let ids: Vec<u32> = (0..5).map(|i| slab.insert(i, i).unwrap().0).collect();
        let (mut x, mut y) = (List::EMPTY, List::EMPTY);
        for &i in &ids[..3] {
            slab.push_back(&mut x, i, 7);
        }
        for &i in &ids[3..] {
            slab.push_back(&mut y, i, 8);
        }
        slab.unlink(&mut x, ids[1]);
        slab.append(&mut x, &mut y);
        assert!(y.is_empty());
        let mut order = Vec::new();
        while let Some(i) = slab.pop_front(&mut x) {
            order.push(i);
        }
        assert_eq!(order, vec![ids[0], ids[2], ids[3], ids[4]]);
        assert!(x.is_empty());
    }

    #[test]
    fn compact_releases_empty_chunks_and_keeps_generations_rising() {
        let mut slab = Slab::new();
        let n = CHUNK * 3;
        let ids: Vec<(u32, u32)> = (0..n).map(|i| slab.insert(0, i).unwrap()).collect();
        assert_eq!(slab.capacity(), n);
        // Free the first and the last chunk entirely, keep one entry in the middle one.
        for &(i, _) in ids.iter().filter(|(i, _)| (*i as usize) != CHUNK + 5) {
            slab.remove(i);
        }
        slab.compact();
        assert_eq!(slab.capacity(), CHUNK, "only the middle chunk stays");
        assert_eq!(slab.len(), 1);
        // Free entries of the kept chunk are used before the hole at chunk 0 is re-made,
        // and every reused entry has a generation above its stale keys.
        let mut fresh = Vec::new();
        for i in 0..CHUNK {
            fresh.push(slab.insert(0, i).unwrap());
        }
        assert!(fresh[..CHUNK - 1].iter().all(|&(i, _)| (i as usize) / CHUNK == 1));
        let (i, g) = fresh[CHUNK - 1];
        assert_eq!(i, 0, "then the lowest hole: {:?} {:?}", &fresh[..3], &fresh[CHUNK - 3..]);
        assert!(g > ids[0].1, "generation {g} must exceed the stale key's {}", ids[0].1);
        assert!(fresh[0].1 > ids[CHUNK].1);
    }

    #[test]
    fn compact_rethreads_free_list_lowest_first() {
        let mut slab = Slab::new();
        let ids: Vec<u32> = (0..10).map(|i| slab.insert(0, i).unwrap().0).collect();
        for &i in ids.iter().rev() {
            slab.remove(i);
        }
        let (extra, _) = slab.insert(0, 0).unwrap();
        slab.remove(extra);
        slab.compact();
        assert_eq!(slab.capacity(), 0, "an empty slab releases everything");
        let (i, _) = slab.insert(0, 1).unwrap();
        let (j, _) = slab.insert(0, 2).unwrap();
        assert_eq!((i, j), (0, 1));
    }
}
