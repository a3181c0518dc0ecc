//! The sync engine of one subscription: what it holds and every transition, with time passed
//! in. No lock, no clock and no waking here; `subscription/` wraps it in a mutex, with a
//! separately locked ingress in front where publishers append (drained into the core,
//! through [`Core::accept`], whenever the core is locked).
//!
//! How it works. A held message is in exactly one place:
//!
//! - `ready`: deliverable now, FIFO;
//! - `scheduled`: waiting for a time (a delayed publish, a nack backoff), in [`Timers`];
//! - `keys[k]`: queued behind the one message of ordering key `k` that is anywhere else
//!   (ready, scheduled or in flight): the key's *head*. When the head is acked or
//!   dead-lettered, the next one of the key takes its place;
//! - `in_flight`: leased to a consumer, addressed by `(slot, token)` (a slot outlives its
//!   lease until the delivery handle is done with it, see `slots.rs`).
//!
//! Leases all last `ack_wait`, so they expire in the order they were granted: `leases` is a
//! FIFO of `(deadline, slot, token)`, kept in deadline order, whose front is the next to expire
//! (an `in_progress` extension queues a new entry). The wrapper reads `now` under its lock, so
//! a new lease goes at the back; one granted with an older reading is put in its place, so
//! it never waits behind a later one. An entry whose slot no longer holds that token and
//! deadline is dead: dead entries are popped as they reach the front, and the FIFO is
//! compacted once they outnumber live ones, so it stays O(live leases).
//!
//! Time moves only in [`Core::sweep`], which the wrapper calls before every receive and on
//! `tick()`: expired leases go back to `ready` (or to the dead-letter queue), due timers move
//! to `ready`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use levee_core::nanos;

use super::config::SubscriptionConfig;
use super::dead_letter::{AttemptOutcome, AttemptRecord, DeadLetter, DeadLetterReason, Select};
use super::event::BrokerEvent;
use super::journal::Change;
use super::message::StoredMessage;
use super::nack::Nack;
use super::slots::{Ended, Holder, Slots, Stale};
use super::stats::SubscriptionStats;
use super::timers::Timers;

/// History entries kept per message.
const MAX_HISTORY: usize = 64;

/// A held message with its delivery record.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    pub(crate) msg: Arc<StoredMessage<T>>,
    pub(crate) attempt: u32,
    failures: u32,
    expiries: u32,
    first_delivered: Option<u64>,
    history: Vec<AttemptRecord>,
}

impl<T> Pending<T> {
    fn new(msg: Arc<StoredMessage<T>>) -> Self {
        Self {
            msg,
            attempt: 0,
            failures: 0,
            expiries: 0,
            first_delivered: None,
            history: Vec::new(),
        }
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// A message restored from a durable log with the delivery record it had.
    pub(crate) fn restored(
        msg: Arc<StoredMessage<T>>,
        attempt: u32,
        failures: u32,
        expiries: u32,
        first_delivered: Option<u64>,
        history: Vec<AttemptRecord>,
    ) -> Self {
        Self { msg, attempt, failures, expiries, first_delivered, history }
    }

    fn record(&mut self, delivered_at: u64, ended_at: u64, outcome: AttemptOutcome) {
        push_history(
            &mut self.history,
            AttemptRecord { attempt: self.attempt, delivered_at, ended_at, outcome },
        );
    }
}

/// Appends to a message's attempt history, keeping the last [`MAX_HISTORY`].
pub(crate) fn push_history(history: &mut Vec<AttemptRecord>, record: AttemptRecord) {
    if history.len() == MAX_HISTORY {
        history.remove(0);
    }
    history.push(record);
}

#[derive(Debug)]
struct InFlight<T> {
    pending: Pending<T>,
    deadline: u64,
    delivered_at: u64,
    consumer: u32,
    /// No delivery handle exists (put back after a restart): nothing will come back for the
    /// slot, so an expiry frees it at once instead of reserving it for the handle.
    orphan: bool,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    deadline: u64,
    slot: u32,
    token: u64,
}

#[derive(Debug, Clone, Copy)]
struct ConsumerSlot {
    in_flight: usize,
    live: bool,
}

/// What a receive hands out for one message; the wrapper turns it into a `Delivery`.
#[derive(Debug)]
pub(crate) struct Grant<T> {
    pub(crate) msg: Arc<StoredMessage<T>>,
    pub(crate) slot: u32,
    pub(crate) token: u64,
    pub(crate) attempt: u32,
    pub(crate) first_delivered: u64,
    pub(crate) deadline: u64,
}

/// A consumer's verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verb {
    Ack,
    /// A handler failure.
    Nack(Nack),
    /// A delivery dropped without a verb: a handler failure with no reason, on the backoff.
    Drop,
    Term(String),
}

/// What a verb did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Acked; the message had been deliverable since this time.
    Acked { ready_at: u64 },
    /// Nacked, terminated or dead-lettered.
    Done,
}

/// Number of counters in [`Counts`].
pub(crate) const COUNTERS: usize = 14;

/// Plain counters; the wrapper's lock guards them.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    published: u64,
    delivered: u64,
    redelivered: u64,
    acked: u64,
    nacked: u64,
    dropped: u64,
    lease_expired: u64,
    extended: u64,
    dead_lettered: u64,
    terminated: u64,
    overflowed: u64,
    dead_letters_dropped: u64,
    replayed: u64,
    purged: u64,
}

impl Counts {
    /// Every counter, in [`SubscriptionStats`] order.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    fn fields(&mut self) -> [&mut u64; COUNTERS] {
        [
            &mut self.published,
            &mut self.delivered,
            &mut self.redelivered,
            &mut self.acked,
            &mut self.nacked,
            &mut self.dropped,
            &mut self.lease_expired,
            &mut self.extended,
            &mut self.dead_lettered,
            &mut self.terminated,
            &mut self.overflowed,
            &mut self.dead_letters_dropped,
            &mut self.replayed,
            &mut self.purged,
        ]
    }
}

#[derive(Debug)]
pub(crate) struct Core<T> {
    config: SubscriptionConfig,
    name: Arc<str>,
    topic: Arc<str>,
    ack_wait: u64,
    ready: VecDeque<Pending<T>>,
    scheduled: Timers<Pending<T>>,
    keys: HashMap<Arc<str>, VecDeque<Pending<T>>>,
    key_waiting: usize,
    in_flight: Slots<InFlight<T>>,
    leases: VecDeque<Lease>,
    consumers: Vec<ConsumerSlot>,
    free_consumers: Vec<u32>,
    dead: VecDeque<DeadLetter<T>>,
    next_token: u64,
    scratch: Vec<Arc<StoredMessage<T>>>,
    counts: Counts,
    listening: bool,
    events: Vec<BrokerEvent>,
    journaling: bool,
    journal: Vec<Change>,
}

impl<T> Core<T> {
    /// An empty subscription; `config` must have passed `validate()`.
    pub(crate) fn new(topic: Arc<str>, config: SubscriptionConfig, listening: bool) -> Self {
        Self {
            name: config.name.as_str().into(),
            topic,
            ack_wait: nanos(config.ack_wait).max(1),
            config,
            ready: VecDeque::new(),
            scheduled: Timers::default(),
            keys: HashMap::new(),
            key_waiting: 0,
            in_flight: Slots::default(),
            leases: VecDeque::new(),
            consumers: Vec::new(),
            free_consumers: Vec::new(),
            dead: VecDeque::new(),
            next_token: 0,
            scratch: Vec::new(),
            counts: Counts::default(),
            listening,
            events: Vec::new(),
            journaling: false,
            journal: Vec::new(),
        }
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// Starts collecting a [`Change`] for every change to a message's delivery record.
    pub(crate) fn enable_journal(&mut self) {
        self.journaling = true;
    }

    fn log(&mut self, make: impl FnOnce() -> Change) {
        if self.journaling {
            self.journal.push(make());
        }
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// Moves the changes collected since the last call into `out`.
    pub(crate) fn take_journal(&mut self, out: &mut Vec<Change>) {
        out.append(&mut self.journal);
    }

    pub(crate) fn config(&self) -> &SubscriptionConfig {
        &self.config
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn emit(&mut self, make: impl FnOnce(Arc<str>) -> BrokerEvent) {
        if self.listening {
            let e = make(Arc::clone(&self.name));
            self.events.push(e);
        }
    }

    /// Events produced since the last call (empty unless someone listens).
    pub(crate) fn take_events(&mut self) -> Vec<BrokerEvent> {
        if self.events.is_empty() { Vec::new() } else { std::mem::take(&mut self.events) }
    }

    // ----- publishing -----

    /// Messages held and not settled: what `max_backlog` bounds.
    pub(crate) fn held(&self) -> usize {
        self.ready.len() + self.scheduled.len() + self.key_waiting + self.in_flight.len()
    }

    /// Dead-letters the oldest ready message to make room (policy `DeadLetterOldest`);
    /// `false` when nothing is ready.
    pub(crate) fn dead_letter_oldest(&mut self, now: u64) -> bool {
        match self.ready.pop_front() {
            Some(oldest) => {
                self.counts.overflowed += 1;
                self.dead_letter(oldest, DeadLetterReason::Overflow, now);
                true
            }
            None => false,
        }
    }

    /// A reusable buffer for moving publishes in from the ingress without allocating.
    pub(crate) fn take_scratch(&mut self) -> Vec<Arc<StoredMessage<T>>> {
        std::mem::take(&mut self.scratch)
    }

    pub(crate) fn put_scratch(&mut self, scratch: Vec<Arc<StoredMessage<T>>>) {
        self.scratch = scratch;
    }

    /// Takes a published message (the publisher checked the backlog bound).
    pub(crate) fn accept(&mut self, msg: Arc<StoredMessage<T>>, now: u64) {
        self.counts.published += 1;
        let due = msg.due();
        self.place(Pending::new(msg), due, now);
    }

    /// Puts a message that is not yet its key's head (a new or replayed one) where it
    /// belongs.
    fn place(&mut self, pending: Pending<T>, due: u64, now: u64) {
        if let Some(key) = pending.msg.key_arc() {
            if let Some(queue) = self.keys.get_mut(key) {
                queue.push_back(pending);
                self.key_waiting += 1;
                return;
            }
            self.keys.insert(Arc::clone(key), VecDeque::new());
        }
        self.schedule(pending, due, now);
    }

    fn schedule(&mut self, pending: Pending<T>, due: u64, now: u64) {
        if due <= now {
            self.ready.push_back(pending);
        } else {
            self.scheduled.insert(due, pending);
        }
    }

    /// The head of `key` left for good: the next one of the key becomes head.
    fn release_key(&mut self, key: Option<&Arc<str>>, now: u64) {
        let Some(key) = key else { return };
        let next = match self.keys.get_mut(key) {
            Some(queue) => queue.pop_front(),
            None => return,
        };
        match next {
            Some(next) => {
                self.key_waiting -= 1;
                let due = next.msg.due();
                self.schedule(next, due, now);
            }
            None => {
                self.keys.remove(key);
            }
        }
    }

    // ----- time -----

    /// Applies everything due at `now`: expired leases, fired timers.
    pub(crate) fn sweep(&mut self, now: u64) {
        // Dead entries are popped whatever their deadline, so the front is always live and
        // `next_deadline` exact.
        while let Some(&lease) = self.leases.front() {
            let live = matches!(
                self.in_flight.get(lease.slot, lease.token),
                Ok(f) if f.deadline == lease.deadline
            );
            if live && lease.deadline > now {
                break;
            }
            self.leases.pop_front();
            if live {
                self.expire(lease, now);
            }
        }
        while let Some(pending) = self.scheduled.poll_expired(now) {
            self.ready.push_back(pending);
        }
    }

    fn expire(&mut self, lease: Lease, now: u64) {
        // The handle may still come back with a verb: its slot stays reserved so the verb
        // learns that the lease expired (unless there is no handle).
        let holder = match self.in_flight.get(lease.slot, lease.token) {
            Ok(flight) if flight.orphan => Holder::Handle,
            _ => Holder::Other,
        };
        let removed = self.in_flight.remove(lease.slot, lease.token, Ended::Expired, holder);
        let Ok(flight) = removed else { return };
        self.release_consumer(flight.consumer);
        let mut pending = flight.pending;
        pending.expiries += 1;
        pending.record(flight.delivered_at, now, AttemptOutcome::LeaseExpired);
        self.counts.lease_expired += 1;
        let (seq, attempt, expiries) = (pending.msg.seq, pending.attempt, pending.expiries);
        self.log(|| Change::Expired { seq, expiries, record: last_record(&pending) });
        self.emit(|subscription| BrokerEvent::LeaseExpired { subscription, seq, attempt });
        if pending.expiries >= self.config.max_lease_expiries {
            self.dead_letter(pending, DeadLetterReason::MaxLeaseExpiries { expiries }, now);
        } else {
            // A crashed consumer's message goes straight back: no backoff, its key stays held.
            self.log(|| Change::Scheduled { seq, due: now });
            self.ready.push_back(pending);
        }
    }

    /// The earliest time at which [`sweep`](Self::sweep) would change something: exact, since
    /// every operation that ends a lease leaves a live lease at the front of the FIFO.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let lease = self.leases.front().map(|l| l.deadline);
        match (lease, self.scheduled.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- consumers -----

    pub(crate) fn add_consumer(&mut self) -> u32 {
        let slot = ConsumerSlot { in_flight: 0, live: true };
        if let Some(i) = self.free_consumers.pop() {
            self.consumers[i as usize] = slot;
            i
        } else {
            self.consumers.push(slot);
            (self.consumers.len() - 1) as u32
        }
    }

    pub(crate) fn remove_consumer(&mut self, consumer: u32) {
        let c = &mut self.consumers[consumer as usize];
        c.live = false;
        if c.in_flight == 0 {
            self.free_consumers.push(consumer);
        }
    }

    fn release_consumer(&mut self, consumer: u32) {
        let c = &mut self.consumers[consumer as usize];
        c.in_flight -= 1;
        if c.in_flight == 0 && !c.live {
            self.free_consumers.push(consumer);
        }
    }

    /// How many more deliveries `consumer` may hold.
    pub(crate) fn consumer_room(&self, consumer: u32) -> usize {
        self.config
            .max_in_flight_per_consumer
            .saturating_sub(self.consumers[consumer as usize].in_flight)
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Leases up to `max` ready messages to `consumer` (within its in-flight bound), handing
    /// each to `out`. Call [`sweep`](Self::sweep) first.
    pub(crate) fn receive(
        &mut self,
        consumer: u32,
        max: usize,
        now: u64,
        mut out: impl FnMut(Grant<T>),
    ) -> usize {
        let n = max.min(self.consumer_room(consumer)).min(self.ready.len());
        let deadline = now.saturating_add(self.ack_wait);
        for _ in 0..n {
            let Some(mut pending) = self.ready.pop_front() else { break };
            pending.attempt += 1;
            let first_delivered = *pending.first_delivered.get_or_insert(now);
            if pending.attempt > 1 {
                self.counts.redelivered += 1;
            }
            let token = self.next_token;
            self.next_token += 1;
            let grant_msg = Arc::clone(&pending.msg);
            let attempt = pending.attempt;
            self.log(|| Change::Delivered { seq: grant_msg.seq, attempt, at: now });
            let slot = self.in_flight.insert(
                token,
                InFlight { pending, deadline, delivered_at: now, consumer, orphan: false },
            );
            self.push_lease(Lease { deadline, slot, token });
            out(Grant { msg: grant_msg, slot, token, attempt, first_delivered, deadline });
        }
        self.counts.delivered += n as u64;
        self.consumers[consumer as usize].in_flight += n;
        n
    }

    // ----- verbs -----

    /// Extends the lease of the delivery `(slot, token)` to `now + ack_wait`.
    pub(crate) fn extend(&mut self, slot: u32, token: u64, now: u64) -> Result<u64, Stale> {
        let ack_wait = self.ack_wait;
        let flight = self.in_flight.get_mut(slot, token)?;
        flight.deadline = now.saturating_add(ack_wait).max(flight.deadline);
        let deadline = flight.deadline;
        self.push_lease(Lease { deadline, slot, token });
        self.counts.extended += 1;
        self.compact_leases();
        Ok(deadline)
    }

    /// Applies a consumer's verb to the delivery `(slot, token)`, given by its handle itself
    /// or by someone else (a receipt): see [`Holder`].
    pub(crate) fn settle(
        &mut self,
        slot: u32,
        token: u64,
        verb: Verb,
        holder: Holder,
        now: u64,
    ) -> Result<Settled, Stale> {
        let flight = self.in_flight.remove(slot, token, Ended::Settled, holder)?;
        self.compact_leases();
        self.release_consumer(flight.consumer);
        let mut pending = flight.pending;
        match verb {
            Verb::Ack => {
                self.counts.acked += 1;
                let seq = pending.msg.seq;
                self.log(|| Change::Acked { seq });
                let ready_at = pending.msg.ready_at;
                self.release_key(pending.msg.key_arc().cloned().as_ref(), now);
                Ok(Settled::Acked { ready_at })
            }
            Verb::Nack(Nack { delay, reason }) => {
                let outcome = |delay| AttemptOutcome::Nacked { delay, reason };
                self.fail(pending, flight.delivered_at, delay, outcome, now);
                Ok(Settled::Done)
            }
            Verb::Drop => {
                self.counts.dropped += 1;
                self.fail(pending, flight.delivered_at, None, |_| AttemptOutcome::Dropped, now);
                Ok(Settled::Done)
            }
            Verb::Term(reason) => {
                pending.record(
                    flight.delivered_at,
                    now,
                    AttemptOutcome::Terminated { reason: reason.clone() },
                );
                let seq = pending.msg.seq;
                self.log(|| Change::Terminated { seq, record: last_record(&pending) });
                self.counts.terminated += 1;
                self.dead_letter(pending, DeadLetterReason::Terminated { reason }, now);
                Ok(Settled::Done)
            }
        }
    }

    /// A handler failure (nack or drop): redeliver after `delay` (`None`: the backoff for
    /// this failure), or dead-letter after `max_deliveries`.
    fn fail(
        &mut self,
        mut pending: Pending<T>,
        delivered_at: u64,
        delay: Option<Duration>,
        outcome: impl FnOnce(Duration) -> AttemptOutcome,
        now: u64,
    ) {
        pending.failures += 1;
        self.counts.nacked += 1;
        let delay = delay.unwrap_or_else(|| self.config.backoff_for(pending.failures));
        pending.record(delivered_at, now, outcome(delay));
        let (seq, attempt, failures) = (pending.msg.seq, pending.attempt, pending.failures);
        self.log(|| Change::Failed { seq, failures, record: last_record(&pending) });
        self.emit(|subscription| BrokerEvent::Nacked { subscription, seq, attempt, delay });
        if pending.failures >= self.config.max_deliveries {
            self.dead_letter(pending, DeadLetterReason::MaxDeliveries { failures }, now);
        } else {
            let due = now.saturating_add(nanos(delay));
            self.log(|| Change::Scheduled { seq, due });
            self.schedule(pending, due, now);
        }
    }

    /// Queues a lease in deadline order. Deadlines are `now + ack_wait` and callers read `now`
    /// under the subscription's lock, so a new lease belongs at the back; a reading older
    /// than the last one (a clock read before the lock, a clock that is not monotonic across
    /// threads) is put in its place instead, so no lease ever waits behind a later one.
    fn push_lease(&mut self, lease: Lease) {
        if self.leases.back().is_none_or(|last| last.deadline <= lease.deadline) {
            self.leases.push_back(lease);
        } else {
            let at = self.leases.partition_point(|l| l.deadline <= lease.deadline);
            self.leases.insert(at, lease);
        }
    }

    /// Keeps the lease FIFO about as long as the number of live leases: settled entries are
    /// popped from the front as soon as they get there (acks mostly come in delivery order),
    /// and once dead entries outnumber live ones the FIFO is compacted (O(1) amortised).
    fn compact_leases(&mut self) {
        let in_flight = &self.in_flight;
        let live =
            |l: &Lease| matches!(in_flight.get(l.slot, l.token), Ok(f) if f.deadline == l.deadline);
        while self.leases.front().is_some_and(|l| !live(l)) {
            self.leases.pop_front();
        }
        if self.leases.len() > 2 * in_flight.len() + 1024 {
            self.leases.retain(live);
        }
    }

    /// The lease deadline of a live delivery.
    pub(crate) fn deadline_of(&self, slot: u32, token: u64) -> Result<u64, Stale> {
        self.in_flight.get(slot, token).map(|f| f.deadline)
    }

    // ----- dead letters -----

    fn dead_letter(&mut self, pending: Pending<T>, reason: DeadLetterReason, now: u64) {
        self.counts.dead_lettered += 1;
        self.release_key(pending.msg.key_arc().cloned().as_ref(), now);
        let seq = pending.msg.seq;
        if self.journaling {
            let reason = reason.clone();
            self.log(|| Change::DeadLettered { seq, reason, at: now });
        }
        if self.listening {
            let reason = reason.clone();
            self.emit(|subscription| BrokerEvent::DeadLettered { subscription, seq, reason });
        }
        self.dead.push_back(DeadLetter {
            message: pending.msg,
            topic: Arc::clone(&self.topic),
            reason,
            history: pending.history,
            attempts: pending.attempt,
            dead_lettered_at: now,
        });
        if self.dead.len() > self.config.max_dead_letters
            && let Some(oldest) = self.dead.pop_front()
        {
            self.counts.dead_letters_dropped += 1;
            let seq = oldest.message.seq;
            self.log(|| Change::DeadLetterDropped { seq });
            self.emit(|subscription| BrokerEvent::DeadLetterDropped { subscription, seq });
        }
    }

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter<T>> {
        self.dead.iter().cloned().collect()
    }

    /// Puts the selected dead letters back as fresh messages (failure and expiry counts reset,
    /// history kept), oldest first, at most `limit` of them.
    pub(crate) fn replay(&mut self, select: &Select, now: u64, limit: usize) -> usize {
        let mut kept = VecDeque::with_capacity(self.dead.len());
        let mut replayed = 0;
        while let Some(letter) = self.dead.pop_front() {
            if select.contains(letter.message.seq) && replayed < limit {
                let mut pending = Pending::new(letter.message);
                pending.attempt = letter.attempts;
                pending.history = letter.history;
                let seq = pending.msg.seq;
                self.log(|| Change::Replayed { seq, at: now });
                self.place(pending, now, now);
                replayed += 1;
            } else {
                kept.push_back(letter);
            }
        }
        self.dead = kept;
        self.counts.replayed += replayed as u64;
        if replayed > 0 {
            self.emit(|subscription| BrokerEvent::Replayed { subscription, count: replayed });
        }
        replayed
    }

    /// Deletes the selected dead letters.
    pub(crate) fn purge(&mut self, select: &Select) -> usize {
        let before = self.dead.len();
        if self.journaling {
            for l in &self.dead {
                if select.contains(l.message.seq) {
                    self.journal.push(Change::Purged { seq: l.message.seq });
                }
            }
        }
        self.dead.retain(|l| !select.contains(l.message.seq));
        let purged = before - self.dead.len();
        self.counts.purged += purged as u64;
        if purged > 0 {
            self.emit(|subscription| BrokerEvent::Purged { subscription, count: purged });
        }
        purged
    }

    // ----- restoring from a durable log -----

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// The counters, in [`SubscriptionStats`] order (`published` to `purged`), for a
    /// durable log to keep across restarts.
    pub(crate) fn counters(&self) -> [u64; COUNTERS] {
        let mut c = self.counts;
        c.fields().map(|f| *f)
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// Sets the counters to what [`counters`](Self::counters) returned before a restart.
    pub(crate) fn restore_counters(&mut self, values: [u64; COUNTERS]) {
        for (field, v) in self.counts.fields().into_iter().zip(values) {
            *field = v;
        }
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// Makes room for `n` messages about to be restored as ready, so restoring a large
    /// backlog does not grow the queue step by step.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.ready.reserve(n);
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// Puts back a message that was waiting (ready, scheduled from `due`, or behind its
    /// key). Call in the order the messages entered the subscription, after
    /// [`restore_in_flight`](Self::restore_in_flight), so each key's head comes first.
    pub(crate) fn restore_waiting(&mut self, pending: Pending<T>, due: u64, now: u64) {
        self.place(pending, due, now);
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// Puts back messages that were in flight when the process stopped, each with the time
    /// it was delivered, under leases that end `now`: the next [`sweep`](Self::sweep)
    /// expires them as it would a crashed consumer's, so they count as lease expiries.
    pub(crate) fn restore_in_flight(&mut self, flights: Vec<(Pending<T>, u64)>, now: u64) {
        if flights.is_empty() {
            return;
        }
        let consumer = self.add_consumer();
        for (pending, delivered_at) in flights {
            if let Some(key) = pending.msg.key_arc() {
                self.keys.entry(Arc::clone(key)).or_default();
            }
            let token = self.next_token;
            self.next_token += 1;
            let slot = self.in_flight.insert(
                token,
                InFlight { pending, deadline: now, delivered_at, consumer, orphan: true },
            );
            self.leases.push_back(Lease { deadline: now, slot, token });
            self.consumers[consumer as usize].in_flight += 1;
        }
        self.remove_consumer(consumer);
    }

    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    /// Puts back a dead letter (call oldest first).
    pub(crate) fn restore_dead_letter(&mut self, letter: DeadLetter<T>) {
        self.dead.push_back(letter);
    }

    // ----- observation -----

    pub(crate) fn stats(&self) -> SubscriptionStats {
        let c = self.counts;
        SubscriptionStats {
            depth: self.ready.len() + self.key_waiting,
            scheduled: self.scheduled.len(),
            in_flight: self.in_flight.len(),
            dead_letters: self.dead.len(),
            published: c.published,
            delivered: c.delivered,
            redelivered: c.redelivered,
            acked: c.acked,
            nacked: c.nacked,
            dropped: c.dropped,
            lease_expired: c.lease_expired,
            extended: c.extended,
            dead_lettered: c.dead_lettered,
            terminated: c.terminated,
            overflowed: c.overflowed,
            dead_letters_dropped: c.dead_letters_dropped,
            replayed: c.replayed,
            purged: c.purged,
            rejected: 0,
        }
    }
}

/// The attempt just recorded (journaled with the change that recorded it).
fn last_record<T>(pending: &Pending<T>) -> AttemptRecord {
    pending.history.last().cloned().expect("recorded just before")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> Arc<StoredMessage<u64>> {
        Arc::new(StoredMessage { seq, published_at: 0, ready_at: 0, meta: None, payload: seq })
    }

    /// Deliveries put back after a restart have no handle: their expiry frees the slot
    /// instead of reserving it for a handle that will never come back.
    #[cfg(feature = "durable")]
    #[test]
    fn restored_in_flight_frees_its_slot_on_expiry() {
        let mut core: Core<u64> = Core::new("t".into(), SubscriptionConfig::new("s"), false);
        let flights = (1..=3).map(|seq| (Pending::new(message(seq)), 0)).collect();
        core.restore_in_flight(flights, 10);
        assert_eq!(core.in_flight.in_use(), 3);
        core.sweep(10);
        assert_eq!(core.in_flight.in_use(), 0, "no slot stays reserved");
        assert_eq!(core.stats().lease_expired, 3);
    }

    /// Settled leases do not pile up in the FIFO until their deadline, whatever the ack
    /// order: it stays within twice the live leases plus a constant.
    #[test]
    fn lease_fifo_stays_bounded() {
        let config =
            SubscriptionConfig::new("s").max_backlog(1 << 20).max_in_flight_per_consumer(1 << 20);
        let mut core: Core<u64> = Core::new("t".into(), config, false);
        let consumer = core.add_consumer();
        let mut seq = 0;
        for round in 0..200 {
            for _ in 0..100 {
                seq += 1;
                core.accept(message(seq), 0);
            }
            let mut grants = Vec::new();
            core.receive(consumer, 100, 0, |g| grants.push((g.slot, g.token)));
            if round % 2 == 1 {
                grants.reverse();
            }
            // Keep one in flight per round so live leases accumulate a little.
            for &(slot, token) in &grants[1..] {
                core.settle(slot, token, Verb::Ack, Holder::Handle, 0).unwrap();
            }
            assert!(
                core.leases.len() <= 2 * core.in_flight.len() + 1024,
                "{} lease entries for {} live leases",
                core.leases.len(),
                core.in_flight.len()
            );
        }
        assert_eq!(core.in_flight.len(), 200);
    }

    /// Two receives whose clock readings interleave (the one that read the clock first gets
    /// the lock second): each lease still expires at its own deadline, not behind the other.
    #[test]
    fn leases_expire_on_time_whatever_order_their_readings_arrive_in() {
        let config = SubscriptionConfig::new("s").ack_wait(Duration::from_nanos(1_000));
        let mut core: Core<u64> = Core::new("t".into(), config, false);
        let (a, b) = (core.add_consumer(), core.add_consumer());
        core.accept(message(1), 0);
        core.accept(message(2), 0);
        let mut grants = Vec::new();
        core.receive(b, 1, 500, |g| grants.push(g.deadline));
        core.receive(a, 1, 100, |g| grants.push(g.deadline));
        assert_eq!(grants, [1_500, 1_100]);
        assert_eq!(core.next_deadline(), Some(1_100));
        core.sweep(1_100);
        assert_eq!((core.counts.lease_expired, core.in_flight.len()), (1, 1));
        core.sweep(1_499);
        assert_eq!(core.counts.lease_expired, 1);
        core.sweep(1_500);
        assert_eq!((core.counts.lease_expired, core.in_flight.len()), (2, 0));
    }

    /// A message published without a delay is ready at once even when the reading that
    /// moves it in is older than the publisher's; a delayed one waits for its time.
    #[test]
    fn an_undelayed_message_is_ready_whatever_reading_moves_it_in() {
        let mut core: Core<u64> = Core::new("t".into(), SubscriptionConfig::new("s"), false);
        let consumer = core.add_consumer();
        let stamped = |seq, ready_at| {
            Arc::new(StoredMessage { seq, published_at: 1_000, ready_at, meta: None, payload: seq })
        };
        core.accept(stamped(1, 1_000), 900);
        core.accept(stamped(2, 5_000), 900);
        assert_eq!((core.stats().depth, core.stats().scheduled), (1, 1));
        let mut got = Vec::new();
        core.receive(consumer, 10, 900, |g| got.push(g.slot));
        assert_eq!(got.len(), 1, "the undelayed one, at once");
    }

    #[derive(Debug, Clone)]
    enum LeaseOp {
        Receive { at: u64 },
        Extend { which: usize, at: u64 },
        Ack { which: usize },
        Sweep { at: u64 },
    }

    fn lease_op() -> impl proptest::strategy::Strategy<Value = LeaseOp> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0u64..400).prop_map(|at| LeaseOp::Receive { at }),
            2 => (any::<usize>(), 0u64..400).prop_map(|(which, at)| LeaseOp::Extend { which, at }),
            1 => any::<usize>().prop_map(|which| LeaseOp::Ack { which }),
            2 => (0u64..600).prop_map(|at| LeaseOp::Sweep { at }),
        ]
    }

    proptest::proptest! {
        /// Receives and extensions with readings in any order, acks and sweeps: a sweep at
        /// `t` expires exactly the leases whose deadline is at most `t` (model: a map from
        /// delivery to deadline).
        #[test]
        fn a_sweep_expires_exactly_the_leases_that_are_due(
            ops in proptest::collection::vec(lease_op(), 1..80),
        ) {
            let config = SubscriptionConfig::new("s")
                .ack_wait(Duration::from_nanos(100))
                .max_lease_expiries(u32::MAX)
                .max_in_flight_per_consumer(usize::MAX);
            let mut core: Core<u64> = Core::new("t".into(), config, false);
            let consumer = core.add_consumer();
            let mut model: Vec<(u32, u64, u64)> = Vec::new(); // (slot, token, deadline)
            for (seq, op) in ops.into_iter().enumerate() {
                match op {
                    LeaseOp::Receive { at } => {
                        core.accept(message(seq as u64), 0);
                        let grant = |g: Grant<u64>| model.push((g.slot, g.token, g.deadline));
                        core.receive(consumer, 1, at, grant);
                    }
                    LeaseOp::Extend { which, at } if !model.is_empty() => {
                        let i = which % model.len();
                        let (slot, token, deadline) = model[i];
                        let extended = core.extend(slot, token, at).unwrap();
                        proptest::prop_assert_eq!(extended, deadline.max(at + 100));
                        model[i].2 = extended;
                    }
                    LeaseOp::Ack { which } if !model.is_empty() => {
                        let (slot, token, _) = model.swap_remove(which % model.len());
                        core.settle(slot, token, Verb::Ack, Holder::Handle, 0).unwrap();
                    }
                    LeaseOp::Sweep { at } => {
                        core.sweep(at);
                        model.retain(|&(slot, token, deadline)| {
                            let live = core.deadline_of(slot, token).is_ok();
                            assert_eq!(live, deadline > at, "deadline {deadline}, swept at {at}");
                            live
                        });
                        // What was put back is handed out again by later receives.
                        let grant = |g: Grant<u64>| model.push((g.slot, g.token, g.deadline));
                        core.receive(consumer, usize::MAX, at, grant);
                    }
                    _ => {}
                }
                let next = model.iter().map(|m| m.2).min();
                proptest::prop_assert_eq!(core.next_deadline(), next);
            }
        }
    }
}
