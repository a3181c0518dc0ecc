//! The bounded flavour: a ring of slots, each with a stamp that says whose turn it is.
//!
//! This is Dmitry Vyukov's bounded MPMC queue ("Bounded MPMC queue", 1024cores.net, 2010) in
//! the form crossbeam-channel's array flavour gives it: positions carry a lap number so that
//! any capacity works without a division, and the closed flag lives in the tail so that closing
//! and sending are ordered by the same CAS.
//!
//! ## Positions
//!
//! `head` and `tail` are 64-bit positions laid out as
//!
//! ```text
//!   bit 63 ..................... k+1 | k      | k-1 ......... 0
//!   lap (how many times round)       | closed | index (< capacity)
//! ```
//!
//! where `1 << k` = `closed_bit` is the smallest power of two above `capacity`, and
//! `one_lap = 1 << (k + 1)`. Advancing a position adds one to the index, or, from the last
//! index, clears the index and adds `one_lap`. The closed bit is only ever set in `tail`.
//!
//! ## Slot stamps
//!
//! Every slot has a stamp in the same layout. For the slot at index `i`, with `p` the position
//! `{lap L, index i}`:
//!
//! - `stamp == p`: empty, waiting for the sender that reserves position `p`;
//! - `stamp == p + 1`: holds the message written at `p`, waiting for the receiver of `p`;
//! - after that receiver: `stamp == p + one_lap`, empty for the next lap.
//!
//! A sender at `tail` looks at its slot: a stamp equal to `tail` means it may CAS `tail`
//! forward and then owns the slot; a stamp one lap behind (`stamp + one_lap == tail + 1`) means
//! the slot still holds last lap's message, so the channel is full if `head` is a whole lap
//! behind. A receiver at `head` mirrors this: `stamp == head + 1` means a message is ready;
//! `stamp == head` means the channel is empty if `tail` equals `head`. Any other stamp means
//! another thread is between its CAS and its stamp store, so the caller backs off and retries.
//!
//! `sent` and `received` counts fall out of the positions (`lap * capacity + index`), so
//! statistics cost the hot path nothing.

use std::mem::MaybeUninit;

use levee_core::ConfigError;
use levee_core::sync::{AtomicU64, Backoff, CachePadded, Ordering, UnsafeCell, fence};

use super::flavor::{PopError, PushError};

/// One cell of the ring.
struct Slot<T> {
    /// Whose turn it is; see the module docs.
    stamp: AtomicU64,
    /// Initialised exactly while `stamp == position + 1` for the position that wrote it.
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded lock-free MPMC queue of `capacity` slots.
pub(crate) struct Array<T> {
    /// Next position to receive from. Never carries the closed bit.
    head: CachePadded<AtomicU64>,
    /// Next position to send to, with the closed bit.
    tail: CachePadded<AtomicU64>,
    slots: Box<[Slot<T>]>,
    capacity: u64,
    /// The closed flag in `tail`; also one more than the largest index mask.
    closed_bit: u64,
    /// `{lap: 1, closed: 0, index: 0}`.
    one_lap: u64,
}

// SAFETY: values of `T` move between threads through the slots (so `T: Send` is required and
// enough); every access to a slot's value is made exclusive by the stamp protocol above.
unsafe impl<T: Send> Send for Array<T> {}
// SAFETY: as above; `&Array` only lets a thread move values in or out, never share a `&T`.
unsafe impl<T: Send> Sync for Array<T> {}

impl<T> Array<T> {
    /// A ring of `capacity` slots; `capacity` is in `1..=MAX_CAPACITY` (checked by the caller).
    pub(crate) fn new(capacity: usize) -> Result<Self, ConfigError> {
        debug_assert!(capacity > 0);
        let mut slots = Vec::new();
        slots.try_reserve_exact(capacity).map_err(|_| {
            ConfigError::new("capacity", format!("cannot allocate {capacity} slots"))
        })?;
        // Slot `i` starts at `{lap 0, index i}`: empty, waiting for the first lap's sender.
        slots.extend((0..capacity as u64).map(|i| Slot {
            stamp: AtomicU64::new(i),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        let closed_bit = (capacity as u64 + 1).next_power_of_two();
        Ok(Self {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            slots: slots.into_boxed_slice(),
            capacity: capacity as u64,
            closed_bit,
            one_lap: closed_bit << 1,
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    #[inline]
    fn index(&self, pos: u64) -> usize {
        (pos & (self.closed_bit - 1)) as usize
    }

    /// The position after `pos` (which must not carry the closed bit), whose index the caller
    /// already has (`index(pos)`: taken again after the stamp's acquire load, it was loaded
    /// and masked twice).
    #[inline]
    fn advance(&self, pos: u64, index: usize) -> u64 {
        if index as u64 + 1 < self.capacity {
            // {lap, index + 1}
            pos + 1
        } else {
            // {lap + 1, index 0}
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// How many positions lie before `pos` (closed bit ignored).
    #[inline]
    fn count(&self, pos: u64) -> u64 {
        (pos >> self.one_lap.trailing_zeros()) * self.capacity + (pos & (self.closed_bit - 1))
    }

    #[inline]
    fn slot(&self, index: usize) -> &Slot<T> {
        debug_assert!(index < self.slots.len());
        // SAFETY: `index` comes from a position, whose index part is always < capacity
        // (`advance` wraps it to 0 at capacity), and `slots.len() == capacity`.
        unsafe { self.slots.get_unchecked(index) }
    }

    /// Adds `value` at the tail, or hands it back if the ring is full or closed.
    ///
    /// The uncontended case is inline: the slot at `tail` is empty for this lap (which also
    /// means `tail` has no closed bit: stamps never carry it) and the CAS wins. Anything else
    /// goes round [`push_slow`](Self::push_slow)'s loop, from a fresh `tail`.
    #[inline]
    pub(crate) fn push(&self, value: T) -> Result<(), PushError<T>> {
        // Orderings as in `push_slow`, whose first round this is.
        let tail = self.tail.load(Ordering::Relaxed);
        let index = self.index(tail);
        let slot = self.slot(index);
        if slot.stamp.load(Ordering::Acquire) == tail
            && self
                .tail
                .compare_exchange_weak(
                    tail,
                    self.advance(tail, index),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            // SAFETY: the CAS moved `tail` past the position while its stamp said empty.
            unsafe { self.publish(slot, tail, value) };
            return Ok(());
        }
        self.push_slow(value)
    }

    /// Writes `value` into the slot of position `tail` and stamps it full.
    ///
    /// # Safety
    /// The caller's CAS moved `tail` past this position after it read the slot's stamp as
    /// `tail` (empty for this lap), which makes it the position's only owner.
    #[inline]
    unsafe fn publish(&self, slot: &Slot<T>, tail: u64, value: T) {
        // SAFETY: the caller owns position `tail` (its CAS); the stamp said the slot is
        // empty, so no reader or writer touches the value until the store below.
        slot.value.with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
        // Stamp `tail + 1` = "full, written at lap L". Release pairs with the receiver's
        // Acquire load of the stamp.
        slot.stamp.store(tail + 1, Ordering::Release);
    }

    /// [`push`](Self::push) once its first try did not succeed: retries until the value is
    /// in, or the ring is found full or closed.
    #[inline(never)]
    fn push_slow(&self, value: T) -> Result<(), PushError<T>> {
        let backoff = Backoff::new();
        // Relaxed: the CAS below decides; a stale value only costs a retry.
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & self.closed_bit != 0 {
                return Err(PushError::Closed(value));
            }
            let index = self.index(tail);
            let slot = self.slot(index);
            // Acquire pairs with the Release store of the receiver that emptied this slot last
            // lap: its read of the old value happens before our write.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // Slot empty for this lap: claim position `tail` by moving tail past it.
                // SeqCst: the claim is the "there is a message" half of the wake-up handshake
                // (waiters.rs), and it must be ordered with a concurrent close's `fetch_or`.
                let next = self.advance(tail, index);
                match self.tail.compare_exchange_weak(
                    tail,
                    next,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this thread the only owner of position `tail`,
                        // whose stamp (== tail) said empty.
                        unsafe { self.publish(slot, tail, value) };
                        return Ok(());
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // Stamp `{lap L-1, i} + 1`: the slot still holds last lap's message. Full only
                // if head is a whole lap behind tail. The fence orders our stamp load before
                // the head load against a receiver's head CAS (SeqCst).
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(PushError::Full(value));
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another sender claimed `tail` but has not moved it yet, or our `tail` is
                // stale: wait for the stamp to change.
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the message at the head, or says why there is none.
    ///
    /// The uncontended case is inline: the slot at `head` holds this lap's message and the
    /// CAS wins. Anything else goes round [`pop_slow`](Self::pop_slow)'s loop.
    #[inline]
    pub(crate) fn pop(&self) -> Result<T, PopError> {
        // Orderings as in `pop_slow`, whose first round this is.
        let head = self.head.load(Ordering::Relaxed);
        let index = self.index(head);
        let slot = self.slot(index);
        if slot.stamp.load(Ordering::Acquire) == head + 1
            && self
                .head
                .compare_exchange_weak(
                    head,
                    self.advance(head, index),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            // SAFETY: the CAS moved `head` past the position while its stamp said full.
            return Ok(unsafe { self.take(slot, head) });
        }
        self.pop_slow()
    }

    /// Reads the message in the slot of position `head` and stamps it empty for next lap.
    ///
    /// # Safety
    /// The caller's CAS moved `head` past this position after it read the slot's stamp as
    /// `head + 1` (written this lap), which makes it the position's only owner.
    #[inline]
    unsafe fn take(&self, slot: &Slot<T>, head: u64) -> T {
        // SAFETY: the caller owns position `head` (its CAS); the stamp said the value was
        // written and published (its Acquire load), and no one else reads it.
        let value = slot.value.with(|p| unsafe { p.read().assume_init() });
        // Stamp `{lap L + 1, i}` = "empty, for next lap's sender". Release pairs with that
        // sender's Acquire load of the stamp.
        slot.stamp.store(head.wrapping_add(self.one_lap), Ordering::Release);
        value
    }

    /// [`pop`](Self::pop) once its first try did not succeed: retries until it has a
    /// message, or finds the ring empty or closed.
    #[inline(never)]
    fn pop_slow(&self) -> Result<T, PopError> {
        let backoff = Backoff::new();
        // Relaxed: the CAS below decides; a stale value only costs a retry.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let index = self.index(head);
            let slot = self.slot(index);
            // Acquire pairs with the sender's Release store of `head + 1`: its write of the
            // value happens before our read.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head + 1 {
                // Stamp `{lap L, i} + 1`: the message of position `head` is ready. Claim it.
                // SeqCst: the "there is room" half of the wake-up handshake (waiters.rs).
                let next = self.advance(head, index);
                match self.head.compare_exchange_weak(
                    head,
                    next,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this thread the only owner of position `head`,
                        // whose stamp (== head + 1) said full.
                        return Ok(unsafe { self.take(slot, head) });
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // Stamp `{lap L, i}`: nothing written at `head` yet. Empty only if tail is
                // still at head; otherwise a sender claimed it and is writing. The fence
                // pairs with the senders' SeqCst tail CAS and with the waiter handshake.
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed);
                if tail & !self.closed_bit == head {
                    return Err(if tail & self.closed_bit != 0 {
                        PopError::Closed
                    } else {
                        PopError::Empty
                    });
                }
                backoff.spin();
                head = self.head.load(Ordering::Relaxed);
            } else {
                // Another receiver took `head` but has not moved it yet, or `head` is stale.
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Sets the closed bit; true if this call did it.
    pub(crate) fn close(&self) -> bool {
        // SeqCst: ordered with every sender's tail CAS (a send either precedes the close or
        // sees the bit) and with waiters' handshake.
        self.tail.fetch_or(self.closed_bit, Ordering::SeqCst) & self.closed_bit == 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tail.load(Ordering::SeqCst) & self.closed_bit != 0
    }

    /// `(sent, taken)`: positions passed by tail and by head, read consistently.
    pub(crate) fn counts(&self) -> (u64, u64) {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            // Retry if tail moved meanwhile, so that taken <= sent.
            if self.tail.load(Ordering::SeqCst) == tail {
                return (self.count(tail & !self.closed_bit), self.count(head));
            }
        }
    }

    /// Positions passed by head: one load, for a sender waiting for room.
    #[inline]
    pub(crate) fn taken(&self) -> u64 {
        self.count(self.head.load(Ordering::Relaxed))
    }

    pub(crate) fn len(&self) -> usize {
        let (sent, taken) = self.counts();
        sent.saturating_sub(taken) as usize
    }
}

impl<T> Drop for Array<T> {
    fn drop(&mut self) {
        // `&mut self`: no other thread can act, and every claimed position was written (a
        // push claims and writes within one call).
        let head = self.head.load(Ordering::Relaxed);
        let len = self.len();
        let first = self.index(head);
        for i in 0..len {
            let index = (first + i) % self.slots.len();
            // SAFETY: positions head..tail hold written, unread messages; each is dropped once.
            self.slots[index].value.with_mut(|p| unsafe { (*p).assume_init_drop() });
        }
    }
}
