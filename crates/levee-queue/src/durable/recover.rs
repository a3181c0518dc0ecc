//! Recovery: folding the log, record by record, into topics and subscriptions, then
//! restoring every subscription's engine from what was folded.
//!
//! How it works. Every message lives in its topic's table (payload record, size, the
//! decoded message) and in the table of each subscription that holds it (its delivery
//! record, [`SubMsg`]), both [`SeqMap`]s indexed by sequence number: publishes come in
//! sequence order, so folding a million of them is a million pushes, and a change to a
//! message is an index, not a hash lookup. Building then walks each subscription's table in
//! sequence order, hands every message to the engine (the in-flight ones first, as lease
//! expiries), and moves the tables into the running broker, where they go on serving the
//! same purpose (compaction reads them).
//!
//! Compaction copies definitions forward to the end of the log, so records can name a topic
//! or a subscription before the record that defines it: both are created on first mention
//! and dropped at the end if never defined.

use std::sync::Arc;

use levee_core::nanos;
use tokio::sync::Notify;

use super::broker::{HashMap, Live, State, SubState, SubWake, TopicState};
use super::codec::{Codec, DecodeError};
use super::error::OpenError;
use super::frame::FRAME_HEADER;
use super::record::{self, Place, Record, SUB_COUNTERS, SubMsg};
use super::seqmap::SeqMap;
use crate::broker::core::{COUNTERS, Core, Pending};
use crate::broker::dedup::Dedup;
use crate::broker::journal::Change;
use crate::broker::message::StoredMessage;
use crate::broker::subject::SubjectFilter;
use crate::broker::{DeadLetter, SubscriptionConfig, TopicConfig};

/// A message as folded so far.
struct RecMsg<T> {
    /// The record holding its payload (its publish, or the copy compaction made).
    lsn: u64,
    bytes: u32,
    /// Subscriptions holding it, counted down as they take it (the last takes `msg`).
    holders: u32,
    msg: Option<Arc<StoredMessage<T>>>,
}

struct RecTopic<T> {
    def: Option<(Arc<str>, TopicConfig)>,
    next_seq: u64,
    msgs: SeqMap<RecMsg<T>>,
    /// Message ids seen: (id, seq, published at).
    dedup: Vec<(Arc<str>, u64, u64)>,
}

impl<T> Default for RecTopic<T> {
    fn default() -> Self {
        Self { def: None, next_seq: 1, msgs: SeqMap::default(), dedup: Vec::new() }
    }
}

struct RecSub {
    topic: u32,
    config: Option<SubscriptionConfig>,
    shadow: SeqMap<SubMsg>,
    /// The latest snapshot of its statistics counters.
    counters: [u64; SUB_COUNTERS],
}

impl RecSub {
    fn new(topic: u32) -> Self {
        Self { topic, config: None, shadow: SeqMap::default(), counters: [0; SUB_COUNTERS] }
    }
}

/// State folded from the log, record by record.
pub(crate) struct Recovering<T> {
    topics: HashMap<u32, RecTopic<T>>,
    subs: HashMap<u32, RecSub>,
    /// Subscriptions removed: ids are never reused, so nothing may bring them back.
    removed: HashMap<u32, ()>,
    /// The latest time any record mentions: where the timeline resumes at the earliest.
    pub(crate) max_at: u64,
    pub(crate) error: Option<OpenError>,
}

impl<T> Default for Recovering<T> {
    fn default() -> Self {
        Self {
            topics: HashMap::default(),
            subs: HashMap::default(),
            removed: HashMap::default(),
            max_at: 0,
            error: None,
        }
    }
}

/// What [`Recovering::build`] restored.
pub(crate) struct Built<T> {
    pub(crate) state: State<T>,
    /// Messages the subscriptions hold.
    pub(crate) held: usize,
    /// Of those, messages that were in flight.
    pub(crate) redelivered: usize,
}

impl<T: Codec> Recovering<T> {
    /// Folds the record at `lsn`; after the first error, does nothing (the error is kept).
    pub(crate) fn visit(&mut self, lsn: u64, body: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(error) = self.apply(lsn, body) {
            self.error = Some(OpenError::Undecodable { lsn, error });
        }
    }

    fn apply(&mut self, lsn: u64, body: &[u8]) -> Result<(), DecodeError> {
        let bytes = (FRAME_HEADER + body.len()) as u32;
        match record::decode(body)? {
            Record::Topic { id, name, config, next_seq } => {
                let t = self.topics.entry(id).or_default();
                t.def.get_or_insert_with(|| (name.into(), config));
                t.next_seq = t.next_seq.max(next_seq);
            }
            Record::Subscribe { id, topic, config } => {
                if !self.removed.contains_key(&id) {
                    self.topics.entry(topic).or_default();
                    let s = self.subs.entry(id).or_insert_with(|| RecSub::new(topic));
                    s.config.get_or_insert(config);
                }
            }
            Record::Unsubscribe { id } => {
                self.subs.remove(&id);
                self.removed.insert(id, ());
            }
            Record::Publish { msg, routed } => {
                let t = self.topics.entry(msg.topic).or_default();
                let stored = Arc::new(msg.stored::<T>()?);
                self.max_at = self.max_at.max(msg.published_at);
                t.next_seq = t.next_seq.max(msg.seq + 1);
                if let Some(id) = msg.id {
                    t.dedup.push((id.into(), msg.seq, msg.published_at));
                }
                for s in routed.chunks_exact(4) {
                    let s = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                    if self.removed.contains_key(&s) {
                        continue;
                    }
                    let sub = self.subs.entry(s).or_insert_with(|| RecSub::new(msg.topic));
                    if sub.topic == msg.topic {
                        sub.shadow.insert(msg.seq, SubMsg::new(lsn, msg.ready_at));
                    }
                }
                let m = RecMsg { lsn, bytes, holders: 0, msg: Some(stored) };
                t.msgs.insert(msg.seq, m);
            }
            Record::Carry { msg } => {
                let t = self.topics.entry(msg.topic).or_default();
                t.next_seq = t.next_seq.max(msg.seq + 1);
                match t.msgs.get_mut(msg.seq) {
                    Some(m) => {
                        m.lsn = lsn;
                        m.bytes = bytes;
                    }
                    None => {
                        let stored = Arc::new(msg.stored::<T>()?);
                        let m = RecMsg { lsn, bytes, holders: 0, msg: Some(stored) };
                        t.msgs.insert(msg.seq, m);
                    }
                }
            }
            Record::Changes { sub, mut changes } => {
                let Some(s) = self.subs.get_mut(&sub) else {
                    // Still decode them: an undecodable record is an error wherever it is.
                    return changes.try_for_each(|c| c.map(drop));
                };
                for c in changes {
                    let c = c?;
                    if let Change::Delivered { at, .. }
                    | Change::DeadLettered { at, .. }
                    | Change::Replayed { at, .. } = c
                    {
                        self.max_at = self.max_at.max(at);
                    }
                    let seq = c.seq();
                    if let Some(m) = s.shadow.get_mut(seq)
                        && !m.apply(lsn, &c)
                    {
                        s.shadow.remove(seq);
                    }
                }
            }
            Record::CarrySub { sub, seq, state } => {
                // Compaction writes every definition before its copies, so the
                // subscription is known here.
                if let Some(s) = self.subs.get_mut(&sub) {
                    s.shadow.insert(seq, state);
                }
            }
            Record::Dedup { topic, id, seq, at } => {
                self.topics.entry(topic).or_default().dedup.push((id.into(), seq, at));
            }
            Record::Counters { sub, values } => {
                if let Some(s) = self.subs.get_mut(&sub) {
                    s.counters = values;
                }
            }
        }
        Ok(())
    }

    /// The in-memory state, every subscription's engine restored; what was in flight is
    /// expired at `now` (journaled, for the caller to append).
    pub(crate) fn build(self, now: u64, listening: bool) -> Built<T> {
        let mut state = State::new(
            self.topics.keys().max().map_or(1, |m| m + 1),
            self.subs.keys().max().map_or(1, |m| m + 1),
        );
        let mut msgs: HashMap<u32, SeqMap<RecMsg<T>>> = HashMap::default();
        for (id, t) in self.topics {
            let Some((name, config)) = t.def else { continue };
            let mut dedup = Dedup::new(nanos(config.dedup_window), config.dedup_capacity);
            if dedup.enabled() {
                let mut entries = t.dedup;
                entries.sort_by_key(|e| e.2);
                for (msg_id, seq, at) in entries {
                    if dedup.check(&msg_id, at).is_none() {
                        dedup.record_shared(msg_id, seq, at);
                    }
                }
            }
            state.topic_names.insert(id, Arc::clone(&name));
            let topic = TopicState::new(id, Arc::clone(&name), config, t.next_seq, dedup);
            state.topics.insert(name, topic);
            msgs.insert(id, t.msgs);
        }
        // The subscriptions that exist, with only the messages whose payload is known (a
        // record lost to a damaged, skipped range cannot be restored), in id order.
        let mut subs: Vec<(u32, RecSub, SubscriptionConfig)> = self
            .subs
            .into_iter()
            .filter(|(_, s)| state.topic_names.contains_key(&s.topic))
            .filter_map(|(id, mut s)| s.config.take().map(|c| (id, s, c)))
            .collect();
        subs.sort_unstable_by_key(|s| s.0);
        for (_, sub, _) in &mut subs {
            let topic_msgs = msgs.get_mut(&sub.topic).expect("defined topics have tables");
            sub.shadow.retain(|seq, _| match topic_msgs.get_mut(seq) {
                Some(m) => {
                    m.holders += 1;
                    true
                }
                None => false,
            });
        }
        // What each topic still needs on disk, for compaction.
        for (id, topic_msgs) in &msgs {
            let name = &state.topic_names[id];
            let topic = state.topics.get_mut(name).expect("named topics exist");
            topic.live = topic_msgs
                .iter()
                .filter(|(_, m)| m.holders > 0)
                .map(|(seq, m)| (seq, Live { lsn: m.lsn, bytes: m.bytes, holders: m.holders }))
                .collect();
        }
        let (mut held, mut redelivered) = (0, 0);
        for (id, rec, config) in subs {
            let topic_msgs = msgs.get_mut(&rec.topic).expect("checked above");
            let name = Arc::clone(&state.topic_names[&rec.topic]);
            state.topics.get_mut(&name).expect("named topics exist").subs.push(id);
            let [engine @ .., rejected] = rec.counters;
            let (core, in_flight) =
                restore_core(&name, &config, engine, &rec.shadow, topic_msgs, now, listening);
            held += rec.shadow.len();
            redelivered += in_flight;
            let filter = config.filter.as_deref().and_then(|f| SubjectFilter::new(f).ok());
            state.subs.insert(
                id,
                SubState {
                    topic_id: rec.topic,
                    topic: name,
                    name: config.name.as_str().into(),
                    filter,
                    config,
                    core,
                    shadow: rec.shadow,
                    unreleased: 0,
                    wake: Arc::new(SubWake { ready: Notify::new(), room: Notify::new() }),
                    rejected,
                    counted: rec.counters,
                },
            );
        }
        Built { state, held, redelivered }
    }
}

/// A subscription's engine with its `counters` and every message of `shadow` where it was:
/// in flight ones under leases that end `now` (the sweep at the end expires them, and
/// counts it), waiting ones in the order they entered, dead letters in the order they
/// died. Returns it with the number that were in flight.
fn restore_core<T>(
    topic: &Arc<str>,
    config: &SubscriptionConfig,
    counters: [u64; COUNTERS],
    shadow: &SeqMap<SubMsg>,
    msgs: &mut SeqMap<RecMsg<T>>,
    now: u64,
    listening: bool,
) -> (Core<T>, usize) {
    let mut core = Core::new(Arc::clone(topic), config.clone(), listening);
    core.enable_journal();
    core.restore_counters(counters);
    let (mut flights, mut dead) = (Vec::new(), Vec::new());
    let mut waiting = Vec::with_capacity(shadow.len());
    for (seq, m) in shadow.iter() {
        match m.place {
            Place::InFlight { .. } => flights.push(seq),
            Place::Waiting { .. } => waiting.push((m.entered, seq)),
            Place::Dead { order, .. } => dead.push((order, seq)),
        }
    }
    // The last holder takes the message, the others share it.
    let mut take = |seq: u64| {
        let m = msgs.get_mut(seq).expect("the shadow keeps only known messages");
        m.holders -= 1;
        let msg = if m.holders == 0 { m.msg.take() } else { m.msg.clone() };
        msg.expect("one taker per holder")
    };
    let pending = |msg, m: &SubMsg| {
        Pending::restored(
            msg,
            m.attempt,
            m.failures,
            m.expiries,
            m.first_delivered,
            m.history.clone(),
        )
    };
    let in_flight = flights.len();
    let flights = flights
        .into_iter()
        .filter_map(|seq| {
            let m = shadow.get(seq)?;
            let Place::InFlight { delivered_at } = m.place else { return None };
            Some((pending(take(seq), m), delivered_at))
        })
        .collect();
    core.restore_in_flight(flights, now);
    // Keys come in sequence order, which is the order they entered unless some were
    // replayed from the dead-letter queue.
    if !waiting.is_sorted() {
        waiting.sort_unstable();
    }
    core.reserve(waiting.len());
    for (_, seq) in waiting {
        let Some(m) = shadow.get(seq) else { continue };
        let Place::Waiting { due } = m.place else { continue };
        core.restore_waiting(pending(take(seq), m), due, now);
    }
    dead.sort_unstable();
    for (_, seq) in dead {
        let Some(m) = shadow.get(seq) else { continue };
        let Place::Dead { reason, at, .. } = &m.place else { continue };
        core.restore_dead_letter(DeadLetter {
            message: take(seq),
            topic: Arc::clone(topic),
            reason: reason.clone(),
            history: m.history.clone(),
            attempts: m.attempt,
            dead_lettered_at: *at,
        });
    }
    core.sweep(now);
    (core, in_flight)
}
