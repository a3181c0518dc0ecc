//! The state both ends share: storage, waiter lists, handle counts, policy and counters.

use levee_core::sync::{Arc, AtomicUsize, Backoff, Ordering, thread};
use levee_core::{Counter, EventHook};

use super::config::OverflowPolicy;
use super::error::{RecvError, SendError, TryRecvError, TrySendError};
use super::flavor::{Flavor, PopError, PushError};
use super::stats::{ChannelEvent, ChannelStats, CloseReason};
use super::waiters::{WaitList, Wake, fence_after_register};
use super::{Receiver, Sender};

pub(crate) struct Chan<T> {
    flavor: Flavor<T>,
    /// Receivers waiting for a message.
    pub(crate) recv_waiters: WaitList,
    /// Senders waiting for room.
    pub(crate) send_waiters: WaitList,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    policy: OverflowPolicy,
    dropped: Counter,
    rejected: Counter,
    discarded: Counter,
    hook: EventHook<ChannelEvent>,
}

/// The first sender and receiver of a new channel.
pub(crate) fn handles<T>(chan: Chan<T>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(chan);
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// What a send attempt that may not wait came to.
pub(crate) enum Attempt<T> {
    Sent,
    Full(T),
    Closed(T),
}

impl<T> Chan<T> {
    pub(crate) fn new(
        flavor: Flavor<T>,
        policy: OverflowPolicy,
        hook: EventHook<ChannelEvent>,
    ) -> Self {
        Self {
            flavor,
            recv_waiters: WaitList::new(),
            send_waiters: WaitList::new(),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            policy,
            dropped: Counter::new(),
            rejected: Counter::new(),
            discarded: Counter::new(),
            hook,
        }
    }

    pub(crate) fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    fn capacity_or_zero(&self) -> usize {
        self.flavor.capacity().unwrap_or(0)
    }

    /// Pushes once; under `DropOldest` evicts until the value fits. Wakes a receiver on
    /// success. Never waits.
    #[inline]
    pub(crate) fn attempt_send(&self, value: T) -> Attempt<T> {
        match self.flavor.push(value) {
            Ok(()) => {
                self.recv_waiters.notify_one();
                Attempt::Sent
            }
            Err(PushError::Closed(v)) => Attempt::Closed(v),
            Err(PushError::Full(v)) if self.policy == OverflowPolicy::DropOldest => {
                self.send_evicting(v)
            }
            Err(PushError::Full(v)) => Attempt::Full(v),
        }
    }

    #[cold]
    fn send_evicting(&self, mut value: T) -> Attempt<T> {
        loop {
            // Make room: take the oldest message (if a receiver has not just done so).
            if let Ok(oldest) = self.flavor.pop() {
                self.dropped.incr();
                self.hook.emit(|| ChannelEvent::Dropped { capacity: self.capacity_or_zero() });
                drop(oldest);
            }
            match self.flavor.push(value) {
                Ok(()) => {
                    self.recv_waiters.notify_one();
                    return Attempt::Sent;
                }
                Err(PushError::Closed(v)) => return Attempt::Closed(v),
                Err(PushError::Full(v)) => value = v,
            }
        }
    }

    /// How many receives a spinning sender waits for on a full channel: an eighth of the
    /// capacity, at least one.
    fn resume_after(&self) -> u64 {
        (self.capacity_or_zero() as u64 / 8).max(1)
    }

    /// Counts and reports a send refused for want of room.
    #[cold]
    pub(crate) fn note_rejected(&self) {
        self.rejected.incr();
        self.hook.emit(|| ChannelEvent::Rejected { capacity: self.capacity_or_zero() });
    }

    /// Sends without waiting. Inline, as [`try_recv`](Self::try_recv) and
    /// [`send`](Self::send) are: as a call (its register saves, its result passed through
    /// memory) it cost a 1-thread `try_send` + `try_recv` round trip 12 of its 94
    /// instructions (`examples/channel_cost.rs`).
    #[inline]
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.attempt_send(value) {
            Attempt::Sent => Ok(()),
            Attempt::Closed(v) => Err(TrySendError::Closed(v)),
            Attempt::Full(v) => {
                self.note_rejected();
                Err(TrySendError::Full(v))
            }
        }
    }

    /// Sends, blocking the thread while the channel is full under `Wait`.
    ///
    /// The first attempt is inline; spinning and blocking are set up only once the channel
    /// was found full ([`send_full`](Self::send_full)).
    #[inline]
    pub(crate) fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.attempt_send(value) {
            Attempt::Sent => Ok(()),
            Attempt::Closed(v) => Err(SendError::Closed(v)),
            Attempt::Full(v) => self.send_full(v),
        }
    }

    /// [`send`](Self::send) after an attempt found the channel full: refuses under `Reject`,
    /// otherwise spins a little, then blocks until there is room.
    ///
    /// While it spins, the sender waits for [`resume_after`](Self::resume_after) receives, not
    /// one: a sender that retries at every freed slot polls the very cache lines the receiver
    /// is writing (the slot at head and `head`), and the two settle into lockstep, one
    /// message per round trip of those lines between the cores (measured 150-240 ns a message
    /// instead of 35 on two threads). Once it blocks, the first freed slot wakes it, as before,
    /// so a slow receiver never has to drain more than one message to let it go on.
    #[inline(never)]
    fn send_full(&self, mut value: T) -> Result<(), SendError<T>> {
        if self.policy == OverflowPolicy::Reject {
            self.note_rejected();
            return Err(SendError::Rejected(value));
        }
        let mut backoff = Backoff::new();
        let resume_after = self.resume_after();
        loop {
            if !backoff.is_completed() {
                // Spin a little first: room usually frees up within microseconds.
                let mark = self.flavor.taken();
                loop {
                    backoff.snooze();
                    if backoff.is_completed()
                        || self.flavor.taken().wrapping_sub(mark) >= resume_after
                    {
                        break;
                    }
                }
            } else {
                // Block: register, re-check, park until notified; then retry at once.
                let id = self.send_waiters.register(Wake::Thread(thread::current()));
                fence_after_register();
                match self.attempt_send(value) {
                    Attempt::Sent => {
                        self.send_waiters.cancel(id);
                        return Ok(());
                    }
                    Attempt::Closed(v) => {
                        self.send_waiters.cancel(id);
                        return Err(SendError::Closed(v));
                    }
                    Attempt::Full(v) => {
                        value = v;
                        park_until_notified(&self.send_waiters, id);
                    }
                }
                backoff = Backoff::new();
            }
            match self.attempt_send(value) {
                Attempt::Sent => return Ok(()),
                Attempt::Closed(v) => return Err(SendError::Closed(v)),
                Attempt::Full(v) => value = v,
            }
        }
    }

    #[inline]
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.flavor.pop() {
            Ok(v) => {
                self.send_waiters.notify_one();
                Ok(v)
            }
            Err(PopError::Empty) => Err(TryRecvError::Empty),
            Err(PopError::Closed) => Err(TryRecvError::Closed),
        }
    }

    /// Receives, blocking the thread while the channel is empty and open.
    ///
    /// The first attempt is inline; spinning and blocking are set up only once the channel
    /// was found empty ([`recv_empty`](Self::recv_empty)).
    #[inline]
    pub(crate) fn recv(&self) -> Result<T, RecvError> {
        match self.try_recv() {
            Ok(v) => Ok(v),
            Err(TryRecvError::Closed) => Err(RecvError),
            Err(TryRecvError::Empty) => self.recv_empty(),
        }
    }

    /// [`recv`](Self::recv) after an attempt found the channel empty: spins a little, then
    /// blocks until a message arrives or the channel closes.
    #[inline(never)]
    fn recv_empty(&self) -> Result<T, RecvError> {
        let mut backoff = Backoff::new();
        loop {
            if !backoff.is_completed() {
                backoff.snooze();
            } else {
                let id = self.recv_waiters.register(Wake::Thread(thread::current()));
                fence_after_register();
                match self.try_recv() {
                    Ok(v) => {
                        self.recv_waiters.cancel(id);
                        return Ok(v);
                    }
                    Err(TryRecvError::Closed) => {
                        self.recv_waiters.cancel(id);
                        return Err(RecvError);
                    }
                    Err(TryRecvError::Empty) => park_until_notified(&self.recv_waiters, id),
                }
                backoff = Backoff::new();
            }
            match self.try_recv() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Closed) => return Err(RecvError),
                Err(TryRecvError::Empty) => {}
            }
        }
    }

    /// Closes the channel; true if this call did it. Wakes everybody who waits.
    pub(crate) fn close(&self, reason: CloseReason) -> bool {
        if !self.flavor.close() {
            return false;
        }
        self.hook.emit(|| ChannelEvent::Closed { reason });
        self.send_waiters.notify_all();
        self.recv_waiters.notify_all();
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.flavor.is_closed()
    }

    pub(crate) fn len(&self) -> usize {
        self.flavor.len()
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.flavor.capacity()
    }

    pub(crate) fn stats(&self) -> ChannelStats {
        let dropped = self.dropped.get();
        let discarded = self.discarded.get();
        let (sent, taken) = self.flavor.counts();
        ChannelStats {
            sent,
            received: taken.saturating_sub(dropped + discarded),
            dropped,
            rejected: self.rejected.get(),
            discarded,
            depth: sent.saturating_sub(taken) as usize,
            capacity: self.flavor.capacity(),
        }
    }

    pub(crate) fn sender_count(&self) -> usize {
        self.senders.load(Ordering::Relaxed)
    }

    pub(crate) fn receiver_count(&self) -> usize {
        self.receivers.load(Ordering::Relaxed)
    }

    pub(crate) fn add_sender(&self) {
        // Relaxed: like `Arc::clone`, the new handle comes from an existing one.
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_receiver(&self) {
        self.receivers.fetch_add(1, Ordering::Relaxed);
    }

    /// A sender handle went away; the last one closes the channel.
    pub(crate) fn drop_sender(&self) {
        // AcqRel: the last sender's close happens after every other sender's sends.
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close(CloseReason::SendersGone);
        }
    }

    /// A receiver handle went away; the last one closes the channel and drops what is left,
    /// counted as `discarded`, so the values' destructors run now rather than whenever the
    /// last sender goes.
    pub(crate) fn drop_receiver(&self) {
        if self.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close(CloseReason::ReceiversGone);
            let mut count = 0u64;
            while let Ok(v) = self.flavor.pop() {
                drop(v);
                count += 1;
            }
            if count > 0 {
                self.discarded.add(count);
                self.hook.emit(|| ChannelEvent::Discarded { count });
            }
        }
    }
}

/// Parks until `id` leaves `list` (a notification took it). Spurious wake-ups park again.
fn park_until_notified(list: &WaitList, id: u64) {
    while list.is_registered(id) {
        thread::park();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::super::bounded;

    #[test]
    fn a_blocked_sender_goes_on_after_a_single_receive() {
        // A spinning sender waits for an eighth of the ring to drain (8 slots here); once it
        // has registered to block, one receive must be enough to let it go on.
        let (tx, rx) = bounded::<u32>(64).unwrap();
        for i in 0..64 {
            tx.send(i).unwrap();
        }
        let chan = tx.chan.clone();
        let (sent_tx, sent) = mpsc::channel();
        let sender = std::thread::spawn(move || {
            tx.send(64).unwrap();
            sent_tx.send(()).unwrap();
        });
        // Wait on the channel's state, not on time: the sender has registered to block. (The
        // deadline only bounds a regression in which it never blocks.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while !chan.send_waiters.is_waiting() {
            assert!(Instant::now() < deadline, "the sender never blocked");
            std::thread::yield_now();
        }
        assert!(sent.try_recv().is_err(), "the channel is full");
        assert_eq!(rx.recv(), Ok(0));
        // Only a bound on a regression (a sender left blocked); a passing run never waits on it.
        sent.recv_timeout(Duration::from_secs(10)).expect("one receive did not release the sender");
        sender.join().unwrap();
        assert_eq!(rx.len(), 64);
        assert_eq!(rx.try_recv(), Ok(1));
    }
}
