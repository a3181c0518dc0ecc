//! A reference model of one subscription, and a checker that drives the in-process broker
//! with a sequence of operations and compares it with the model after every step.
//!
//! The model is deliberately naive: a `Vec` of messages with a state each, a `VecDeque` per
//! ordering key, and a `VecDeque` for the dedup window. It does not predict the order in
//! which ready messages come out (the broker is FIFO but the model only needs sets); it
//! predicts *which* messages may be delivered, how many, with which attempt number, and the
//! exact result of every verb. At the end it drains the subscription and checks that every
//! message was acked exactly once or dead-lettered, none lost.
//!
//! Used by the property test (`tests/broker_model.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/queue_subscription.rs`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use levee_core::{Clock, ManualClock};

use crate::broker::{
    BrokerError, Consumer, Delivery, InProcessBroker, Message, Nack, Overflow, Publish, Select,
    Subscription, SubscriptionConfig, TopicConfig,
};

const MS: u64 = 1_000_000;
/// Lease length in the model, milliseconds.
pub const ACK_WAIT_MS: u64 = 10;
const MAX_DELIVERIES: u32 = 3;
const MAX_EXPIRIES: u32 = 2;
const BACKOFF_MS: [u64; 2] = [2, 5];
const MAX_BACKLOG: usize = 8;
const MAX_IN_FLIGHT: usize = 3;
const DEDUP_WINDOW_MS: u64 = 30;
const DEDUP_CAPACITY: usize = 4;
const CONSUMERS: usize = 2;

/// One step of a test.
///
/// ```
/// use levee_queue::broker::conformance::model::{self, Op};
///
/// // Publish two messages, take both, ack one and nack the other: the checker drives the
/// // in-process broker and a naive model side by side and compares them after every step.
/// let ops = [
///     Op::Publish { key: None, delay_ms: 0, id: None },
///     Op::Publish { key: Some(1), delay_ms: 0, id: Some(3) },
///     Op::Receive { consumer: 0, max: 2 },
///     Op::Ack { handle: 0 },
///     Op::Nack { handle: 0, delay_ms: None },
///     Op::Advance { ms: 50 },
///     Op::Tick,
/// ];
/// assert_eq!(model::run(&ops), Ok(()));
/// // A fuzzer's bytes decode into operations, two bytes each.
/// assert_eq!(Op::decode(&[0, 0, 0, 0]).len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Publish with an optional ordering key (0..3), delay (ms) and dedup id (0..8).
    Publish {
        /// Ordering key.
        key: Option<u8>,
        /// Delay in milliseconds (0: none).
        delay_ms: u8,
        /// Deduplication id.
        id: Option<u8>,
    },
    /// Consumer `consumer % 2` receives up to `max` (1..=4).
    Receive {
        /// Which consumer.
        consumer: u8,
        /// How many at most.
        max: u8,
    },
    /// Ack the delivery handle `handle % live handles`.
    Ack {
        /// Handle index.
        handle: u8,
    },
    /// Nack it, with an explicit delay (ms) or the backoff.
    Nack {
        /// Handle index.
        handle: u8,
        /// Explicit delay, or `None` for the backoff schedule.
        delay_ms: Option<u8>,
    },
    /// Terminate it.
    Term {
        /// Handle index.
        handle: u8,
    },
    /// Extend its lease.
    InProgress {
        /// Handle index.
        handle: u8,
    },
    /// Drop it without a verb.
    Drop {
        /// Handle index.
        handle: u8,
    },
    /// Move the clock forward.
    Advance {
        /// Milliseconds.
        ms: u8,
    },
    /// Run timers and lease expiries.
    Tick,
    /// Replay every dead letter.
    ReplayAll,
    /// Purge the oldest dead letter.
    PurgeOldest,
}

impl Op {
    /// Decodes a byte string into operations (for fuzzers): each op takes two bytes.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Vec<Op> {
        bytes
            .chunks_exact(2)
            .map(|c| {
                let (tag, arg) = (c[0], c[1]);
                match tag % 12 {
                    0 | 1 => Op::Publish {
                        key: (arg & 0x40 != 0).then_some(arg % 3),
                        delay_ms: if arg & 0x80 != 0 { arg % 16 } else { 0 },
                        id: (tag & 0x10 != 0).then_some(arg % 8),
                    },
                    2 | 3 => Op::Receive { consumer: arg, max: 1 + arg % 4 },
                    4 => Op::Ack { handle: arg },
                    5 => Op::Nack { handle: arg, delay_ms: (tag & 0x10 != 0).then_some(arg % 8) },
                    6 => Op::Term { handle: arg },
                    7 => Op::InProgress { handle: arg },
                    8 => Op::Drop { handle: arg },
                    9 => Op::Advance { ms: 1 + arg % 16 },
                    10 => {
                        if tag & 0x10 != 0 {
                            Op::ReplayAll
                        } else {
                            Op::Tick
                        }
                    }
                    _ => Op::PurgeOldest,
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting {
        due: u64,
    },
    /// `lease` orders leases with equal deadlines as the broker's lease FIFO does.
    InFlight {
        consumer: usize,
        deadline: u64,
        handle: u64,
        lease: u64,
    },
    Acked,
    Dead,
    Purged,
}

#[derive(Debug)]
struct Msg {
    seq: u64,
    payload: u64,
    key: Option<u8>,
    state: State,
    attempt: u32,
    failures: u32,
    expiries: u32,
    /// The reason the last failed attempt gave: what its dead letter must show.
    last_reason: Option<String>,
}

#[derive(Debug, Default)]
struct Model {
    msgs: Vec<Msg>,
    keys: HashMap<u8, VecDeque<u64>>,
    dead: VecDeque<u64>,
    dedup: VecDeque<(u64, u8, u64)>,
    acked: u64,
    dead_lettered: u64,
    next_lease: u64,
}

impl Model {
    fn msg(&mut self, seq: u64) -> &mut Msg {
        self.msgs.iter_mut().find(|m| m.seq == seq).expect("model knows every seq")
    }

    fn held(&self) -> usize {
        self.msgs
            .iter()
            .filter(|m| matches!(m.state, State::Waiting { .. } | State::InFlight { .. }))
            .count()
    }

    fn in_flight(&self, consumer: usize) -> usize {
        self.msgs
            .iter()
            .filter(|m| matches!(m.state, State::InFlight { consumer: c, .. } if c == consumer))
            .count()
    }

    fn is_head(&self, m: &Msg) -> bool {
        m.key.is_none_or(|k| self.keys.get(&k).and_then(|q| q.front()) == Some(&m.seq))
    }

    fn available(&self, now: u64) -> Vec<u64> {
        self.msgs
            .iter()
            .filter(|m| matches!(m.state, State::Waiting { due } if due <= now) && self.is_head(m))
            .map(|m| m.seq)
            .collect()
    }

    fn release_key(&mut self, seq: u64) {
        let key = self.msg(seq).key;
        if let Some(k) = key {
            let q = self.keys.get_mut(&k).expect("keyed message has a queue");
            assert_eq!(q.pop_front(), Some(seq), "only a key's head leaves for good");
            if q.is_empty() {
                self.keys.remove(&k);
            }
        }
    }

    fn kill(&mut self, seq: u64) {
        self.release_key(seq);
        self.msg(seq).state = State::Dead;
        self.dead.push_back(seq);
        self.dead_lettered += 1;
    }

    fn sweep(&mut self, now: u64) {
        // Leases expire in deadline order, ties in the order they were granted.
        let mut expired: Vec<(u64, u64, u64)> = self
            .msgs
            .iter()
            .filter_map(|m| match m.state {
                State::InFlight { deadline, lease, .. } if deadline <= now => {
                    Some((deadline, lease, m.seq))
                }
                _ => None,
            })
            .collect();
        expired.sort_unstable();
        for (_, _, seq) in expired {
            let m = self.msg(seq);
            m.expiries += 1;
            m.last_reason = None;
            if m.expiries >= MAX_EXPIRIES {
                self.kill(seq);
            } else {
                m.state = State::Waiting { due: now };
            }
        }
    }

    /// Dedup as the topic does it: forget ids older than the window or beyond capacity.
    fn dedup_evict(&mut self, now: u64) {
        while let Some(&(at, _, _)) = self.dedup.front() {
            if at + DEDUP_WINDOW_MS * MS > now && self.dedup.len() <= DEDUP_CAPACITY {
                break;
            }
            self.dedup.pop_front();
        }
    }
}

struct Handle {
    delivery: Delivery<u64, ManualClock>,
    seq: u64,
    id: u64,
    settled: bool,
}

/// The system under test plus the model.
struct Check {
    clock: ManualClock,
    broker: InProcessBroker<u64, ManualClock>,
    sub: Subscription<u64, ManualClock>,
    consumers: Vec<Consumer<u64, ManualClock>>,
    handles: Vec<Handle>,
    next_handle: u64,
    model: Model,
    next_payload: u64,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn config() -> SubscriptionConfig {
    SubscriptionConfig::new("model")
        .ack_wait(Duration::from_millis(ACK_WAIT_MS))
        .max_deliveries(MAX_DELIVERIES)
        .max_lease_expiries(MAX_EXPIRIES)
        .backoff(BACKOFF_MS.iter().map(|&ms| Duration::from_millis(ms)).collect())
        .max_backlog(MAX_BACKLOG)
        .overflow(Overflow::Reject)
        .max_in_flight_per_consumer(MAX_IN_FLIGHT)
        .max_dead_letters(1_000_000)
}

impl Check {
    fn new() -> Result<Self, String> {
        let clock = ManualClock::new();
        let broker = InProcessBroker::builder().clock(clock.clone()).build();
        let topic = TopicConfig::new()
            .dedup_window(Duration::from_millis(DEDUP_WINDOW_MS))
            .dedup_capacity(DEDUP_CAPACITY);
        broker.create_topic("t", topic).map_err(|e| e.to_string())?;
        let sub = broker.subscribe("t", config()).map_err(|e| e.to_string())?;
        let consumers = (0..CONSUMERS).map(|_| sub.consumer()).collect();
        Ok(Self {
            clock,
            broker,
            sub,
            consumers,
            handles: Vec::new(),
            next_handle: 0,
            model: Model::default(),
            next_payload: 0,
        })
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Publish { key, delay_ms, id } => self.publish(key, delay_ms, id),
            Op::Receive { consumer, max } => {
                self.receive(consumer as usize % CONSUMERS, max.max(1) as usize)
            }
            Op::Ack { handle } => self.verb(handle, Verb::Ack),
            Op::Nack { handle, delay_ms } => self.verb(handle, Verb::Nack(delay_ms)),
            Op::Term { handle } => self.verb(handle, Verb::Term),
            Op::InProgress { handle } => self.verb(handle, Verb::Extend),
            Op::Drop { handle } => self.drop_handle(handle),
            Op::Advance { ms } => {
                self.clock.advance(Duration::from_millis(u64::from(ms)));
                Ok(())
            }
            Op::Tick => {
                self.sub.tick();
                self.model.sweep(self.now());
                Ok(())
            }
            Op::ReplayAll => self.replay(),
            Op::PurgeOldest => self.purge(),
        }?;
        self.compare()
    }

    fn publish(&mut self, key: Option<u8>, delay_ms: u8, id: Option<u8>) -> Result<(), String> {
        let now = self.now();
        let payload = self.next_payload;
        self.next_payload += 1;
        let mut msg = Message::new(payload);
        if let Some(k) = key {
            msg = msg.key(format!("k{k}"));
        }
        if delay_ms > 0 {
            msg = msg.delay(Duration::from_millis(u64::from(delay_ms)));
        }
        if let Some(i) = id {
            msg = msg.id(format!("id{i}"));
        }
        let got = self.broker.try_publish("t", msg);

        let m = &mut self.model;
        if let Some(i) = id {
            m.dedup_evict(now);
            if let Some(&(_, _, seq)) = m.dedup.iter().find(|(_, d, _)| *d == i) {
                ensure!(
                    matches!(got, Ok(Publish::Duplicate { seq: s }) if s == seq),
                    "publish of duplicate id{i}: got {got:?}, want Duplicate {{ seq: {seq} }}"
                );
                return Ok(());
            }
        }
        if m.held() >= MAX_BACKLOG {
            ensure!(
                matches!(&got, Err(e) if matches!(e.error, BrokerError::Full { .. })),
                "publish into a full backlog: got {got:?}"
            );
            return Ok(());
        }
        let seq = match got {
            Ok(Publish::Published { seq, subscriptions: 1 }) => seq,
            other => {
                return Err(format!("publish: got {other:?}, want Published to 1 subscription"));
            }
        };
        ensure!(m.msgs.last().is_none_or(|l| l.seq < seq), "sequence numbers must increase");
        if let Some(i) = id {
            m.dedup.push_back((now, i, seq));
            m.dedup_evict(now);
        }
        if let Some(k) = key {
            m.keys.entry(k).or_default().push_back(seq);
        }
        let due = now + u64::from(delay_ms) * MS;
        m.msgs.push(Msg {
            seq,
            payload,
            key,
            state: State::Waiting { due },
            attempt: 0,
            failures: 0,
            expiries: 0,
            last_reason: None,
        });
        Ok(())
    }

    fn receive(&mut self, consumer: usize, max: usize) -> Result<(), String> {
        let now = self.now();
        let got = self.consumers[consumer].try_receive(max).map_err(|e| format!("receive: {e}"))?;
        self.model.sweep(now);
        let available = self.model.available(now);
        let room = MAX_IN_FLIGHT - self.model.in_flight(consumer);
        let want = max.min(room).min(available.len());
        ensure!(
            got.len() == want,
            "consumer {consumer} received {} (seqs {:?}); model says {want} of available {available:?} (room {room})",
            got.len(),
            got.iter().map(Delivery::seq).collect::<Vec<_>>()
        );
        for d in got {
            let seq = d.seq();
            ensure!(
                available.contains(&seq),
                "delivered seq {seq}, not available in the model: {available:?}"
            );
            let m = self.model.msg(seq);
            ensure!(matches!(m.state, State::Waiting { .. }), "seq {seq} delivered twice at once");
            m.attempt += 1;
            ensure!(
                d.attempt() == m.attempt,
                "seq {seq} says attempt {}, model {}",
                d.attempt(),
                m.attempt
            );
            ensure!(
                *d.payload() == m.payload,
                "seq {seq} carries payload {}, not {}",
                d.payload(),
                m.payload
            );
            let handle = self.next_handle;
            self.next_handle += 1;
            let lease = self.model.next_lease;
            self.model.next_lease += 1;
            let m = self.model.msg(seq);
            m.state = State::InFlight { consumer, deadline: now + ACK_WAIT_MS * MS, handle, lease };
            self.handles.push(Handle { delivery: d, seq, id: handle, settled: false });
        }
        Ok(())
    }

    /// What the model expects a verb on `h` to do: `None` if it owns the message.
    fn expect_error(&self, h: &Handle) -> Option<&'static str> {
        if h.settled {
            return Some("AlreadySettled");
        }
        let m = self.model.msgs.iter().find(|m| m.seq == h.seq)?;
        match m.state {
            State::InFlight { handle, .. } if handle == h.id => None,
            _ => Some("LeaseExpired"),
        }
    }

    fn verb(&mut self, index: u8, verb: Verb) -> Result<(), String> {
        if self.handles.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let i = index as usize % self.handles.len();
        let expected = self.expect_error(&self.handles[i]);
        let h = &mut self.handles[i];
        let (seq, was_settled, h_id) = (h.seq, h.settled, h.id);
        let result = match verb {
            Verb::Ack => h.delivery.ack(),
            Verb::Nack(ms) => {
                let mut nack = Nack::new();
                if let Some(ms) = ms {
                    nack = nack.delay(Duration::from_millis(u64::from(ms)));
                }
                if let Some(reason) = nack_reason(h.id) {
                    nack = nack.reason(reason);
                }
                h.delivery.nack(nack)
            }
            Verb::Term => h.delivery.term("model"),
            Verb::Extend => h.delivery.in_progress().map(drop),
        };
        if verb != Verb::Extend {
            h.settled = true;
        }
        match (expected, &result) {
            (None, Ok(())) => {}
            (Some("AlreadySettled"), Err(BrokerError::AlreadySettled { seq: s })) if *s == seq => {
                return Ok(());
            }
            (Some("LeaseExpired"), Err(BrokerError::LeaseExpired { seq: s })) if *s == seq => {
                return Ok(());
            }
            (Some("LeaseExpired"), Err(BrokerError::AlreadySettled { .. })) if was_settled => {
                return Ok(());
            }
            _ => {
                return Err(format!(
                    "{verb:?} on seq {seq}: got {result:?}, model expects {}",
                    expected.unwrap_or("Ok")
                ));
            }
        }
        let m = &mut self.model;
        match verb {
            Verb::Ack => {
                m.release_key(seq);
                m.msg(seq).state = State::Acked;
                m.acked += 1;
            }
            Verb::Nack(ms) => m.fail(seq, ms.map(u64::from), nack_reason(h_id), now),
            Verb::Term => {
                m.msg(seq).last_reason = Some("model".into());
                m.kill(seq);
            }
            Verb::Extend => {
                let next_lease = m.next_lease;
                if let State::InFlight { deadline, lease, .. } = &mut m.msg(seq).state
                    && now + ACK_WAIT_MS * MS > *deadline
                {
                    *deadline = now + ACK_WAIT_MS * MS;
                    *lease = next_lease;
                    m.next_lease += 1;
                }
            }
        }
        Ok(())
    }

    fn drop_handle(&mut self, index: u8) -> Result<(), String> {
        if self.handles.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let i = index as usize % self.handles.len();
        let owns = self.expect_error(&self.handles[i]).is_none();
        let h = self.handles.swap_remove(i);
        let seq = h.seq;
        drop(h);
        if owns {
            self.model.fail(seq, None, None, now);
        }
        Ok(())
    }

    fn replay(&mut self) -> Result<(), String> {
        let now = self.now();
        let n = self.sub.replay(Select::All);
        let m = &mut self.model;
        let mut want = 0;
        let mut kept = VecDeque::new();
        while let Some(seq) = m.dead.pop_front() {
            if m.held() < MAX_BACKLOG {
                want += 1;
                let msg = m.msg(seq);
                msg.state = State::Waiting { due: now };
                msg.failures = 0;
                msg.expiries = 0;
                if let Some(k) = msg.key {
                    m.keys.entry(k).or_default().push_back(seq);
                }
            } else {
                kept.push_back(seq);
            }
        }
        m.dead = kept;
        ensure!(n == want, "replay put back {n}, model {want}");
        Ok(())
    }

    fn purge(&mut self) -> Result<(), String> {
        let Some(&oldest) = self.model.dead.front() else {
            ensure!(
                self.sub.purge(Select::All) == 0,
                "purge of an empty dead-letter queue removed something"
            );
            return Ok(());
        };
        let n = self.sub.purge(oldest);
        ensure!(n == 1, "purging seq {oldest} removed {n}");
        self.model.dead.pop_front();
        self.model.msg(oldest).state = State::Purged;
        Ok(())
    }

    fn compare(&self) -> Result<(), String> {
        let s = self.sub.stats();
        let m = &self.model;
        let count = |f: fn(&State) -> bool| m.msgs.iter().filter(|x| f(&x.state)).count();
        let waiting = count(|s| matches!(s, State::Waiting { .. }));
        let in_flight = count(|s| matches!(s, State::InFlight { .. }));
        ensure!(
            s.depth + s.scheduled == waiting,
            "waiting: broker {} + {}, model {waiting}",
            s.depth,
            s.scheduled
        );
        ensure!(s.in_flight == in_flight, "in flight: broker {}, model {in_flight}", s.in_flight);
        ensure!(
            s.dead_letters == m.dead.len(),
            "dead letters: broker {}, model {}",
            s.dead_letters,
            m.dead.len()
        );
        ensure!(s.acked == m.acked, "acked: broker {}, model {}", s.acked, m.acked);
        ensure!(
            s.dead_lettered == m.dead_lettered,
            "dead-lettered: broker {}, model {}",
            s.dead_lettered,
            m.dead_lettered
        );
        ensure!(
            s.published == m.msgs.len() as u64,
            "published: broker {}, model {}",
            s.published,
            m.msgs.len()
        );
        let letters = self.sub.dead_letters();
        let dead: Vec<u64> = letters.iter().map(|d| d.seq()).collect();
        ensure!(
            dead.iter().eq(m.dead.iter()),
            "dead-letter queue: broker {dead:?}, model {:?}",
            m.dead
        );
        for letter in &letters {
            let want = m
                .msgs
                .iter()
                .find(|x| x.seq == letter.seq())
                .and_then(|x| x.last_reason.as_deref());
            ensure!(
                letter.last_reason() == want,
                "dead letter {} shows reason {:?}, model {want:?}",
                letter.seq(),
                letter.last_reason()
            );
        }
        Ok(())
    }

    /// Settles everything through model-checked steps: drops the outstanding deliveries,
    /// then lets time pass, receives and acks until nothing is held. Afterwards every
    /// message is acked (exactly once: the model accepts one successful ack per message),
    /// dead-lettered or purged, and the broker holds nothing: none was lost.
    fn drain(&mut self) -> Result<(), String> {
        while !self.handles.is_empty() {
            self.drop_handle(0)?;
            self.compare()?;
        }
        for _ in 0..10_000 {
            self.apply(&Op::Advance { ms: 100 })?;
            self.apply(&Op::Receive { consumer: 0, max: 4 })?;
            if self.handles.is_empty() && self.model.held() == 0 {
                break;
            }
            while !self.handles.is_empty() {
                self.apply(&Op::Ack { handle: 0 })?;
                self.handles.retain(|h| !h.settled);
            }
        }
        let open: Vec<_> = self
            .model
            .msgs
            .iter()
            .filter(|m| !matches!(m.state, State::Acked | State::Dead | State::Purged))
            .collect();
        ensure!(open.is_empty(), "messages neither acked nor dead after draining: {open:?}");
        let s = self.sub.stats();
        ensure!(s.held() == 0, "the broker still holds messages after draining: {s:?}");
        let acked = self.model.msgs.iter().filter(|m| m.state == State::Acked).count() as u64;
        ensure!(
            s.acked == acked,
            "broker acked {} times, model has {acked} acked messages",
            s.acked
        );
        Ok(())
    }

    /// Forgets settled handles beyond a few (kept so verbs on them test `AlreadySettled`).
    fn prune(&mut self) {
        while self.handles.iter().filter(|h| h.settled).count() > 4 {
            if let Some(i) = self.handles.iter().position(|h| h.settled) {
                self.handles.remove(i);
            }
        }
    }
}

impl Model {
    fn fail(&mut self, seq: u64, delay_ms: Option<u64>, reason: Option<String>, now: u64) {
        let m = self.msg(seq);
        m.failures += 1;
        m.last_reason = reason;
        if m.failures >= MAX_DELIVERIES {
            self.kill(seq);
        } else {
            let backoff = BACKOFF_MS[(m.failures as usize - 1).min(BACKOFF_MS.len() - 1)];
            m.state = State::Waiting { due: now + delay_ms.unwrap_or(backoff) * MS };
        }
    }
}

/// The reason the nack through handle `id` gives: most give one, some none.
fn nack_reason(id: u64) -> Option<String> {
    (id % 3 != 0).then(|| format!("handle {id} failed"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ack,
    Nack(Option<u8>),
    Term,
    Extend,
}

/// Runs `ops` against a fresh broker and the model, comparing after every step, then
/// drains the subscription.
///
/// # Errors
/// A description of the first divergence between the broker and the model.
pub fn run(ops: &[Op]) -> Result<(), String> {
    let mut check = Check::new()?;
    for (i, op) in ops.iter().enumerate() {
        check.apply(op).map_err(|e| format!("step {i} ({op:?}): {e}"))?;
        check.prune();
    }
    check.drain().map_err(|e| format!("drain: {e}"))
}
