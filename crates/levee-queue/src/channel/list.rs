//! The unbounded flavour: a linked list of fixed-size blocks that are given back as they drain.
//!
//! An unbounded channel that absorbs a backlog of a million messages must not keep a million
//! slots afterwards (tokio issue 4321: an mpsc channel that never shrank). Here messages live
//! in blocks of `BLOCK_CAP` slots; the receiver that empties a block retires it, and a retired
//! block goes to a cache of at most `SPARE_BLOCKS` spares (so a channel that hovers around a
//! block boundary does not allocate on every lap) or back to the allocator.
//!
//! The algorithm is the lock-free block list of crossbeam-channel's list flavour, with block
//! recycling added.
//!
//! ## Positions
//!
//! `head.index` and `tail.index` are 64-bit words: `position << 1 | flag`. A position's
//! offset in its block is `position % LAP` with `LAP = BLOCK_CAP + 1`; offset `BLOCK_CAP` is
//! never a slot but a marker meaning "this block is full and its successor is being
//! installed": whoever moves a position onto it installs the next block and moves the
//! position on to offset 0 of the next lap. The flag bit means:
//!
//! - in `tail`: `CLOSED`, the channel is closed (set by `fetch_or`, seen by every sender CAS);
//! - in `head`: `HAS_NEXT`, the head's block already has a successor, so head and tail are in
//!   different blocks and a receiver need not look at `tail` to know a message is there.
//!
//! ## Slot states
//!
//! Each slot has a state word of three bits: `WRITTEN` (the sender stored the value), `READ`
//! (the receiver took it), `RETIRE` (the block's retirer passed this slot before it was read,
//! so its reader must carry on retiring). The reader of a block's last slot starts retiring:
//! it walks the other slots, and at the first one not yet read it sets `RETIRE` and stops; that
//! slot's reader resumes from the next slot. Whoever gets to the end recycles the block. So a
//! block is recycled exactly once, after every one of its slots was read.
//!
//! ## Why a stale block pointer is harmless
//!
//! A thread loads `index` and then `block`. The block pointer is stored (Release) before the
//! index enters its lap, so a thread that loaded index `i` sees `i`'s block or a later one; if
//! it is a later one, `index` has moved and the thread's CAS on `index` fails. A thread only
//! dereferences the block after its CAS succeeded, that is, while the block still holds its
//! unclaimed slot and so cannot have been retired. Recycling reuses addresses, but positions
//! never repeat (64 bits), so an address coming back cannot make an old CAS succeed.

use std::mem::MaybeUninit;
use std::ptr;

use levee_core::sync::{
    AtomicPtr, AtomicU64, AtomicUsize, Backoff, CachePadded, Ordering, UnsafeCell, fence,
};

use super::flavor::{PopError, PushError};

/// Slots per block (small under loom so that block changes happen in tiny models).
#[cfg(not(loom))]
pub(crate) const BLOCK_CAP: u64 = 31;
#[cfg(loom)]
pub(crate) const BLOCK_CAP: u64 = 2;
/// Positions per block: its slots plus the "next block being installed" marker.
const LAP: u64 = BLOCK_CAP + 1;
/// Positions are stored shifted left by one; bit 0 is a flag.
const SHIFT: u32 = 1;
/// One position.
const STEP: u64 = 1 << SHIFT;
/// Flag bit of `tail.index`: the channel is closed.
const CLOSED: u64 = 1;
/// Flag bit of `head.index`: the head's block has a successor.
const HAS_NEXT: u64 = 1;
/// Retired blocks kept for reuse.
const SPARE_BLOCKS: usize = 2;

const WRITTEN: usize = 1;
const READ: usize = 2;
const RETIRE: usize = 4;

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicUsize,
}

struct Block<T> {
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK_CAP as usize],
}

impl<T> Block<T> {
    fn allocate() -> *mut Self {
        Box::into_raw(Box::new(Self {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: std::array::from_fn(|_| Slot {
                value: UnsafeCell::new(MaybeUninit::uninit()),
                state: AtomicUsize::new(0),
            }),
        }))
    }

    /// Waits until the sender that filled this block's last slot links its successor.
    fn wait_next(&self) -> *mut Self {
        let backoff = Backoff::new();
        loop {
            // Acquire pairs with the Release store in `push`: the successor's reset happens
            // before we use it.
            let next = self.next.load(Ordering::Acquire);
            if !next.is_null() {
                return next;
            }
            backoff.snooze();
        }
    }
}

impl<T> Slot<T> {
    /// Waits until the sender that claimed this slot has written it.
    fn wait_written(&self) {
        let backoff = Backoff::new();
        // Acquire pairs with the sender's Release `fetch_or(WRITTEN)`.
        while self.state.load(Ordering::Acquire) & WRITTEN == 0 {
            backoff.snooze();
        }
    }
}

/// An end of the list: a position and the block it is in.
struct End<T> {
    index: AtomicU64,
    block: AtomicPtr<Block<T>>,
}

/// An unbounded lock-free MPMC queue.
pub(crate) struct List<T> {
    head: CachePadded<End<T>>,
    tail: CachePadded<End<T>>,
    /// Retired blocks ready for reuse; empty entries are null.
    spare: [AtomicPtr<Block<T>>; SPARE_BLOCKS],
}

// SAFETY: values of `T` move between threads through the slots (`T: Send` is enough); block
// memory is owned by the list and handed between threads by the protocol above.
unsafe impl<T: Send> Send for List<T> {}
// SAFETY: as above; `&List` only lets a thread move values in or out.
unsafe impl<T: Send> Sync for List<T> {}

#[inline]
fn offset(index: u64) -> u64 {
    (index >> SHIFT) % LAP
}

/// Messages before position word `index`: every lap has one marker position that holds none.
#[inline]
fn count(index: u64) -> u64 {
    let pos = index >> SHIFT;
    pos - pos / LAP
}

impl<T> List<T> {
    pub(crate) fn new() -> Self {
        let first = Block::allocate();
        Self {
            head: CachePadded::new(End { index: AtomicU64::new(0), block: AtomicPtr::new(first) }),
            tail: CachePadded::new(End { index: AtomicU64::new(0), block: AtomicPtr::new(first) }),
            spare: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// A block ready to link: a spare if there is one, otherwise a fresh allocation.
    fn fresh_block(&self) -> *mut Block<T> {
        for spare in &self.spare {
            // Acquire pairs with the Release in `recycle`: the retirer's last accesses to the
            // block happen before our reset. `swap` takes the pointer exclusively (no ABA).
            let block = spare.swap(ptr::null_mut(), Ordering::Acquire);
            if !block.is_null() {
                // SAFETY: the swap gave this thread the only pointer to a retired block: no
                // position refers to it any more (see the module docs).
                let b = unsafe { &*block };
                b.next.store(ptr::null_mut(), Ordering::Relaxed);
                for slot in &b.slots {
                    slot.state.store(0, Ordering::Relaxed);
                }
                // These Relaxed resets are published by the Release store that links the
                // block into the list.
                return block;
            }
        }
        Block::allocate()
    }

    /// Keeps a retired (or never linked) block as a spare, or frees it.
    fn recycle(&self, block: *mut Block<T>) {
        for spare in &self.spare {
            // Release pairs with the Acquire swap in `fresh_block`.
            if spare
                .compare_exchange(ptr::null_mut(), block, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        // SAFETY: `block` came from `Block::allocate` (Box::into_raw) and this thread holds
        // the only pointer to it.
        drop(unsafe { Box::from_raw(block) });
    }

    /// Retires `block` from slot `start` on (see "Slot states").
    ///
    /// # Safety
    /// `block` is a linked block whose slots `..start` and its last slot have been read by
    /// their receivers, and the caller is the one thread entitled to continue retiring it.
    unsafe fn retire(&self, block: *mut Block<T>, start: usize) {
        // SAFETY: the caller guarantees the block is alive: it is recycled only below.
        let b = unsafe { &*block };
        for slot in &b.slots[start..BLOCK_CAP as usize - 1] {
            // Acquire (both): the reader's read of its value happens before recycling.
            if slot.state.load(Ordering::Acquire) & READ == 0
                && slot.state.fetch_or(RETIRE, Ordering::AcqRel) & READ == 0
            {
                // Still being read: its reader will continue from the next slot.
                return;
            }
        }
        self.recycle(block);
    }

    /// Adds `value` at the tail, or hands it back if the list is closed. Never full.
    pub(crate) fn push(&self, value: T) -> Result<(), PushError<T>> {
        let backoff = Backoff::new();
        // Acquire (both): a position's block pointer is stored before the position enters
        // its lap (Release), so `block` is that position's block or a later one.
        let mut tail = self.tail.index.load(Ordering::Acquire);
        let mut block = self.tail.block.load(Ordering::Acquire);
        let mut next_block: *mut Block<T> = ptr::null_mut();
        loop {
            if tail & CLOSED != 0 {
                if !next_block.is_null() {
                    self.recycle(next_block);
                }
                return Err(PushError::Closed(value));
            }
            let off = offset(tail);
            if off == BLOCK_CAP {
                // Another sender is linking the next block: wait for it.
                backoff.snooze();
                tail = self.tail.index.load(Ordering::Acquire);
                block = self.tail.block.load(Ordering::Acquire);
                continue;
            }
            // Claiming the last slot obliges us to link the next block; get it before the
            // CAS so that other senders wait as briefly as possible.
            if off + 1 == BLOCK_CAP && next_block.is_null() {
                next_block = self.fresh_block();
            }
            // SeqCst: ordered with close's `fetch_or` and the "there is a message" half of the
            // wake-up handshake (waiters.rs).
            match self.tail.index.compare_exchange_weak(
                tail,
                tail + STEP,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: the CAS succeeded at `tail`, so `block` is its block (module
                    // docs) and it is alive: slot `off` is unread, so it is not retired.
                    let b = unsafe { &*block };
                    if off + 1 == BLOCK_CAP {
                        // Tail now sits on the marker. Link the next block, then move tail to
                        // offset 0 of the next lap. Block before index (Release both): see
                        // "Why a stale block pointer is harmless".
                        self.tail.block.store(next_block, Ordering::Release);
                        self.tail.index.fetch_add(STEP, Ordering::Release);
                        // Release pairs with `wait_next`'s Acquire (the receiver crossing over).
                        b.next.store(next_block, Ordering::Release);
                    } else if !next_block.is_null() {
                        // Lost a race for the last slot after preparing a block.
                        self.recycle(next_block);
                    }
                    let slot = &b.slots[off as usize];
                    // SAFETY: the CAS made this thread the only writer of this slot, and its
                    // reader waits for WRITTEN before reading.
                    slot.value.with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
                    // Release pairs with `wait_written`'s Acquire.
                    slot.state.fetch_or(WRITTEN, Ordering::Release);
                    return Ok(());
                }
                Err(current) => {
                    tail = current;
                    block = self.tail.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Takes the message at the head, or says why there is none.
    pub(crate) fn pop(&self) -> Result<T, PopError> {
        let backoff = Backoff::new();
        // Acquire (both): as in `push`.
        let mut head = self.head.index.load(Ordering::Acquire);
        let mut block = self.head.block.load(Ordering::Acquire);
        loop {
            let off = offset(head);
            if off == BLOCK_CAP {
                // Another receiver is moving head into the next block: wait for it.
                backoff.snooze();
                head = self.head.index.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            let mut next_head = head + STEP;
            if head & HAS_NEXT == 0 {
                // Head and tail may share a block: look at tail to see if anything is there.
                // The fence pairs with the senders' SeqCst CAS (and the waiter handshake).
                fence(Ordering::SeqCst);
                let tail = self.tail.index.load(Ordering::Relaxed);
                if head >> SHIFT == tail >> SHIFT {
                    return Err(if tail & CLOSED != 0 {
                        PopError::Closed
                    } else {
                        PopError::Empty
                    });
                }
                // Tail is in a later block: the head's block has a successor (or will).
                if (head >> SHIFT) / LAP != (tail >> SHIFT) / LAP {
                    next_head |= HAS_NEXT;
                }
            }
            // SeqCst: the "there is room" half of the handshake is moot here (never full),
            // but SeqCst keeps the empty check above ordered with other receivers.
            match self.head.index.compare_exchange_weak(
                head,
                next_head,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: as in `push`: the CAS at `head` proves `block` is its block,
                    // alive because slot `off` is not yet read.
                    let b = unsafe { &*block };
                    if off + 1 == BLOCK_CAP {
                        // We took the block's last slot: move head into the successor.
                        let next = b.wait_next();
                        let mut next_index = (next_head & !HAS_NEXT) + STEP;
                        // SAFETY: `next` is linked and holds unread slots; it is alive.
                        if !unsafe { &*next }.next.load(Ordering::Relaxed).is_null() {
                            next_index |= HAS_NEXT;
                        }
                        // Block before index (Release both), as for tail.
                        self.head.block.store(next, Ordering::Release);
                        self.head.index.store(next_index, Ordering::Release);
                    }
                    let slot = &b.slots[off as usize];
                    slot.wait_written();
                    // SAFETY: the CAS made this thread the only reader of this slot, and
                    // WRITTEN (Acquire) says the value is initialised.
                    let value = slot.value.with(|p| unsafe { p.read().assume_init() });
                    if off + 1 == BLOCK_CAP {
                        // SAFETY: we read the last slot; retiring starts here, from slot 0.
                        unsafe { self.retire(block, 0) };
                    } else if slot.state.fetch_or(READ, Ordering::AcqRel) & RETIRE != 0 {
                        // SAFETY: the retirer stopped at our slot and left the rest to us.
                        unsafe { self.retire(block, off as usize + 1) };
                    }
                    return Ok(value);
                }
                Err(current) => {
                    head = current;
                    block = self.head.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Sets the closed bit; true if this call did it.
    pub(crate) fn close(&self) -> bool {
        // SeqCst: ordered with every sender's tail CAS.
        self.tail.index.fetch_or(CLOSED, Ordering::SeqCst) & CLOSED == 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tail.index.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// `(sent, taken)`, read consistently.
    pub(crate) fn counts(&self) -> (u64, u64) {
        loop {
            let tail = self.tail.index.load(Ordering::SeqCst);
            let head = self.head.index.load(Ordering::SeqCst);
            if self.tail.index.load(Ordering::SeqCst) == tail {
                return (count(tail), count(head));
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        let (sent, taken) = self.counts();
        sent.saturating_sub(taken) as usize
    }
}

impl<T> Drop for List<T> {
    fn drop(&mut self) {
        // `&mut self`: no other thread acts; every claimed slot was written.
        let tail = self.tail.index.load(Ordering::Relaxed) & !CLOSED;
        let mut head = self.head.index.load(Ordering::Relaxed) & !HAS_NEXT;
        let mut block = self.head.block.load(Ordering::Relaxed);
        while head != tail {
            let off = offset(head);
            if off < BLOCK_CAP {
                // SAFETY: `block` is head's live block (we free blocks only as we leave them).
                let slot = unsafe { &(*block).slots[off as usize] };
                // SAFETY: positions head..tail (markers aside) hold written, unread values;
                // each is dropped once.
                slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            } else {
                // Past the block's last slot: free it and follow the link.
                // SAFETY: `block` is a live linked block that nothing else refers to now.
                let next = unsafe { &*block }.next.load(Ordering::Relaxed);
                // SAFETY: allocated by `Block::allocate`, freed once.
                drop(unsafe { Box::from_raw(block) });
                block = next;
            }
            head += STEP;
        }
        if !block.is_null() {
            // SAFETY: the last block (head's and tail's), freed once.
            drop(unsafe { Box::from_raw(block) });
        }
        for spare in &self.spare {
            let b = spare.load(Ordering::Relaxed);
            if !b.is_null() {
                // SAFETY: spares are unlinked blocks owned by the list.
                drop(unsafe { Box::from_raw(b) });
            }
        }
    }
}
