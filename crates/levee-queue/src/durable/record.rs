//! The broker's records: what each frame of the log says, encoded and decoded.
//!
//! Every record starts with a kind byte. A record about a message names its topic and
//! sequence number; one about a subscription's delivery records names the subscription.
//! The state a record describes is what the engine arrived at (see `broker/journal.rs`), so
//! folding records back in order rebuilds every subscription exactly (`state.rs`).

use std::sync::Arc;
use std::time::Duration;

use levee_core::nanos;

use super::codec::{Codec, DecodeError, Reader, Writer};
use crate::broker::journal::Change;
use crate::broker::message::{Meta, StoredMessage};
use crate::broker::{
    AttemptOutcome, AttemptRecord, DeadLetterReason, Headers, Overflow, SubscriptionConfig,
    TopicConfig,
};

const TOPIC: u8 = 1;
const SUBSCRIBE: u8 = 2;
const UNSUBSCRIBE: u8 = 3;
const PUBLISH: u8 = 4;
const CARRY: u8 = 5;
const CHANGES: u8 = 6;
const CARRY_SUB: u8 = 7;
const DEDUP: u8 = 8;
const COUNTERS: u8 = 9;

/// Counters a `Counters` record holds: the engine's, then `rejected`.
pub(crate) const SUB_COUNTERS: usize = crate::broker::core::COUNTERS + 1;

/// A decoded record, borrowing the frame's bytes.
#[derive(Debug)]
pub(crate) enum Record<'a> {
    /// A topic exists (or, copied forward, still exists) with these settings; its next
    /// sequence number is at least `next_seq`.
    Topic { id: u32, name: &'a str, config: TopicConfig, next_seq: u64 },
    /// A subscription exists.
    Subscribe { id: u32, topic: u32, config: SubscriptionConfig },
    /// A subscription was removed with everything it held.
    Unsubscribe { id: u32 },
    /// A message was published and routed to these subscriptions.
    Publish { msg: MsgRecord<'a>, routed: &'a [u8] },
    /// A message copied forward by compaction; its per-subscription state follows in
    /// `CarrySub` records.
    Carry { msg: MsgRecord<'a> },
    /// What one operation changed in one subscription (decoded as they are read, so a
    /// record costs no allocation).
    Changes { sub: u32, changes: Changes<'a> },
    /// A message's whole state in one subscription, copied forward by compaction.
    CarrySub { sub: u32, seq: u64, state: SubMsg },
    /// A message id still inside its topic's dedup window, copied forward.
    Dedup { topic: u32, id: &'a str, seq: u64, at: u64 },
    /// A subscription's statistics counters as they stood (the latest one counts).
    Counters { sub: u32, values: [u64; SUB_COUNTERS] },
}

/// The message part of a `Publish` or `Carry` record.
#[derive(Debug)]
pub(crate) struct MsgRecord<'a> {
    pub(crate) topic: u32,
    pub(crate) seq: u64,
    pub(crate) published_at: u64,
    pub(crate) ready_at: u64,
    pub(crate) id: Option<&'a str>,
    subject: Option<&'a str>,
    key: Option<&'a str>,
    /// `headers` name/value pairs, encoded (checked when the record was decoded).
    headers: (u32, &'a [u8]),
    payload: &'a [u8],
    /// Where the message part ends in the record's body.
    pub(crate) end: usize,
}

impl MsgRecord<'_> {
    /// The stored message, its payload decoded.
    pub(crate) fn stored<T: Codec>(&self) -> Result<StoredMessage<T>, DecodeError> {
        let (n, encoded) = self.headers;
        let meta = if self.id.is_none() && self.subject.is_none() && self.key.is_none() && n == 0 {
            None
        } else {
            let mut r = Reader::new(encoded);
            let headers =
                (0..n).map(|_| Ok((r.str()?, r.str()?))).collect::<Result<Headers, _>>()?;
            Some(Box::new(Meta {
                id: self.id.map(str::to_owned),
                subject: self.subject.map(str::to_owned),
                key: self.key.map(Arc::from),
                headers,
                schedule: Default::default(),
            }))
        };
        Ok(StoredMessage {
            seq: self.seq,
            published_at: self.published_at,
            ready_at: self.ready_at,
            meta,
            payload: T::decode(self.payload)?,
        })
    }
}

/// One message's state in one subscription, as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubMsg {
    pub(crate) attempt: u32,
    pub(crate) failures: u32,
    pub(crate) expiries: u32,
    pub(crate) first_delivered: Option<u64>,
    pub(crate) history: Vec<AttemptRecord>,
    /// When it entered the subscription (lsn of its publish or replay): restores keep this
    /// order, so each ordering key's head comes back as head.
    pub(crate) entered: u64,
    pub(crate) place: Place,
}

/// Where a message is in a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// Waiting to be delivered, from `due` on (or behind its key).
    Waiting { due: u64 },
    /// Leased since `delivered_at`.
    InFlight { delivered_at: u64 },
    /// In the dead-letter queue since `at`; `order` is the lsn that put it there.
    Dead { reason: DeadLetterReason, at: u64, order: u64 },
}

// ----- encoding -----

fn message<T: Codec>(w: &mut Writer<'_>, topic: u32, msg: &StoredMessage<T>) {
    w.u32(topic).u64(msg.seq).u64(msg.published_at).u64(msg.ready_at);
    w.opt_str(msg.message_id()).opt_str(msg.subject()).opt_str(msg.key());
    let headers = msg.headers();
    w.u32(headers.len() as u32);
    for (n, v) in headers.iter() {
        w.str(n).str(v);
    }
    w.nested(|out| msg.payload.encode(out));
}

pub(crate) fn publish<T: Codec>(
    out: &mut Vec<u8>,
    topic: u32,
    msg: &StoredMessage<T>,
    routed: &[u32],
) {
    let mut w = Writer(out);
    w.u8(PUBLISH);
    message(&mut w, topic, msg);
    w.u32(routed.len() as u32);
    for &s in routed {
        w.u32(s);
    }
}

/// A `Carry` record made from the message part of a `Publish` or `Carry` record's body.
pub(crate) fn carry(out: &mut Vec<u8>, body: &[u8], msg: &MsgRecord<'_>) {
    out.push(CARRY);
    out.extend_from_slice(&body[1..msg.end]);
}

pub(crate) fn topic(out: &mut Vec<u8>, id: u32, name: &str, config: &TopicConfig, next_seq: u64) {
    Writer(out)
        .u8(TOPIC)
        .u32(id)
        .str(name)
        .u64(nanos(config.dedup_window))
        .u64(config.dedup_capacity as u64)
        .u64(next_seq);
}

pub(crate) fn subscribe(out: &mut Vec<u8>, id: u32, topic: u32, c: &SubscriptionConfig) {
    let mut w = Writer(out);
    w.u8(SUBSCRIBE).u32(id).u32(topic).str(&c.name).opt_str(c.filter.as_deref());
    w.u64(nanos(c.ack_wait)).u32(c.max_deliveries).u32(c.max_lease_expiries);
    w.u32(c.backoff.len() as u32);
    for d in &c.backoff {
        w.u64(nanos(*d));
    }
    let overflow = match c.overflow {
        Overflow::Wait => 0,
        Overflow::Reject => 1,
        Overflow::DeadLetterOldest => 2,
    };
    w.u64(c.max_backlog as u64).u8(overflow);
    w.u64(c.max_in_flight_per_consumer as u64).u64(c.max_dead_letters as u64);
}

pub(crate) fn unsubscribe(out: &mut Vec<u8>, id: u32) {
    Writer(out).u8(UNSUBSCRIBE).u32(id);
}

pub(crate) fn dedup(out: &mut Vec<u8>, topic: u32, id: &str, seq: u64, at: u64) {
    Writer(out).u8(DEDUP).u32(topic).str(id).u64(seq).u64(at);
}

/// A snapshot of subscription `sub`'s counters.
pub(crate) fn counters(out: &mut Vec<u8>, sub: u32, values: &[u64; SUB_COUNTERS]) {
    let mut w = Writer(out);
    w.u8(COUNTERS).u32(sub).u32(SUB_COUNTERS as u32);
    for v in values {
        w.u64(*v);
    }
}

fn attempt_record(w: &mut Writer<'_>, r: &AttemptRecord) {
    w.u32(r.attempt).u64(r.delivered_at).u64(r.ended_at);
    match &r.outcome {
        AttemptOutcome::Nacked { delay, reason } => {
            w.u8(0).u64(nanos(*delay)).opt_str(reason.as_deref())
        }
        AttemptOutcome::Dropped => w.u8(1),
        AttemptOutcome::LeaseExpired => w.u8(2),
        AttemptOutcome::Terminated { reason } => w.u8(3).str(reason),
    };
}

fn reason(w: &mut Writer<'_>, r: &DeadLetterReason) {
    match r {
        DeadLetterReason::MaxDeliveries { failures } => w.u8(0).u32(*failures),
        DeadLetterReason::MaxLeaseExpiries { expiries } => w.u8(1).u32(*expiries),
        DeadLetterReason::Terminated { reason } => w.u8(2).str(reason),
        DeadLetterReason::Overflow => w.u8(3),
    };
}

pub(crate) fn changes(out: &mut Vec<u8>, sub: u32, changes: &[Change]) {
    let mut w = Writer(out);
    w.u8(CHANGES).u32(sub).u32(changes.len() as u32);
    for c in changes {
        match c {
            Change::Delivered { seq, attempt, at } => w.u8(0).u64(*seq).u32(*attempt).u64(*at),
            Change::Acked { seq } => w.u8(1).u64(*seq),
            Change::Failed { seq, failures, record } => {
                w.u8(2).u64(*seq).u32(*failures);
                attempt_record(&mut w, record);
                &mut w
            }
            Change::Expired { seq, expiries, record } => {
                w.u8(3).u64(*seq).u32(*expiries);
                attempt_record(&mut w, record);
                &mut w
            }
            Change::Terminated { seq, record } => {
                w.u8(4).u64(*seq);
                attempt_record(&mut w, record);
                &mut w
            }
            Change::Scheduled { seq, due } => w.u8(5).u64(*seq).u64(*due),
            Change::DeadLettered { seq, reason: r, at } => {
                w.u8(6).u64(*seq).u64(*at);
                reason(&mut w, r);
                &mut w
            }
            Change::DeadLetterDropped { seq } => w.u8(7).u64(*seq),
            Change::Replayed { seq, at } => w.u8(8).u64(*seq).u64(*at),
            Change::Purged { seq } => w.u8(9).u64(*seq),
        };
    }
}

pub(crate) fn carry_sub(out: &mut Vec<u8>, sub: u32, seq: u64, s: &SubMsg) {
    let mut w = Writer(out);
    w.u8(CARRY_SUB).u32(sub).u64(seq);
    w.u32(s.attempt).u32(s.failures).u32(s.expiries);
    match s.first_delivered {
        Some(t) => w.u8(1).u64(t),
        None => w.u8(0),
    };
    w.u32(s.history.len() as u32);
    for r in &s.history {
        attempt_record(&mut w, r);
    }
    w.u64(s.entered);
    match &s.place {
        Place::Waiting { due } => w.u8(0).u64(*due),
        Place::InFlight { delivered_at } => w.u8(1).u64(*delivered_at),
        Place::Dead { reason: r, at, order } => {
            w.u8(2).u64(*at).u64(*order);
            reason(&mut w, r);
            &mut w
        }
    };
}

// ----- decoding -----

fn bad(what: &str, tag: u8) -> DecodeError {
    DecodeError::new(format_args!("unknown {what} {tag}"))
}

fn duration(r: &mut Reader<'_>) -> Result<Duration, DecodeError> {
    Ok(Duration::from_nanos(r.u64()?))
}

fn usize_field(r: &mut Reader<'_>) -> Result<usize, DecodeError> {
    usize::try_from(r.u64()?).map_err(DecodeError::new)
}

/// Reads a count and checks that at least `min_each` bytes per item remain, so a corrupt
/// count cannot make a huge allocation.
fn count(r: &mut Reader<'_>, remaining: usize, min_each: usize) -> Result<usize, DecodeError> {
    let n = r.u32()? as usize;
    if n.saturating_mul(min_each) > remaining.saturating_sub(r.pos()) {
        return Err(DecodeError::new("count larger than the record"));
    }
    Ok(n)
}

fn decode_attempt(r: &mut Reader<'_>) -> Result<AttemptRecord, DecodeError> {
    let attempt = r.u32()?;
    let delivered_at = r.u64()?;
    let ended_at = r.u64()?;
    let outcome = match r.u8()? {
        0 => {
            AttemptOutcome::Nacked { delay: duration(r)?, reason: r.opt_str()?.map(str::to_owned) }
        }
        1 => AttemptOutcome::Dropped,
        2 => AttemptOutcome::LeaseExpired,
        3 => AttemptOutcome::Terminated { reason: r.str()?.to_owned() },
        t => return Err(bad("attempt outcome", t)),
    };
    Ok(AttemptRecord { attempt, delivered_at, ended_at, outcome })
}

fn decode_reason(r: &mut Reader<'_>) -> Result<DeadLetterReason, DecodeError> {
    Ok(match r.u8()? {
        0 => DeadLetterReason::MaxDeliveries { failures: r.u32()? },
        1 => DeadLetterReason::MaxLeaseExpiries { expiries: r.u32()? },
        2 => DeadLetterReason::Terminated { reason: r.str()?.to_owned() },
        3 => DeadLetterReason::Overflow,
        t => return Err(bad("dead-letter reason", t)),
    })
}

fn decode_message<'a>(r: &mut Reader<'a>, len: usize) -> Result<MsgRecord<'a>, DecodeError> {
    let topic = r.u32()?;
    let seq = r.u64()?;
    let published_at = r.u64()?;
    let ready_at = r.u64()?;
    let id = r.opt_str()?;
    let subject = r.opt_str()?;
    let key = r.opt_str()?;
    let n = count(r, len, 8)?;
    let start = r.pos();
    for _ in 0..n {
        r.str()?;
        r.str()?;
    }
    let headers = (n as u32, &r.buf()[start..r.pos()]);
    let payload = r.bytes()?;
    Ok(MsgRecord {
        topic,
        seq,
        published_at,
        ready_at,
        id,
        subject,
        key,
        headers,
        payload,
        end: r.pos(),
    })
}

fn decode_change(r: &mut Reader<'_>) -> Result<Change, DecodeError> {
    let tag = r.u8()?;
    let seq = r.u64()?;
    Ok(match tag {
        0 => Change::Delivered { seq, attempt: r.u32()?, at: r.u64()? },
        1 => Change::Acked { seq },
        2 => Change::Failed { seq, failures: r.u32()?, record: decode_attempt(r)? },
        3 => Change::Expired { seq, expiries: r.u32()?, record: decode_attempt(r)? },
        4 => Change::Terminated { seq, record: decode_attempt(r)? },
        5 => Change::Scheduled { seq, due: r.u64()? },
        6 => {
            let at = r.u64()?;
            Change::DeadLettered { seq, at, reason: decode_reason(r)? }
        }
        7 => Change::DeadLetterDropped { seq },
        8 => Change::Replayed { seq, at: r.u64()? },
        9 => Change::Purged { seq },
        t => return Err(bad("change", t)),
    })
}

/// The changes of a `Changes` record, decoded one by one; an error (then nothing more) when
/// one does not decode or bytes are left after the last.
#[derive(Debug)]
pub(crate) struct Changes<'a> {
    r: Reader<'a>,
    left: usize,
}

impl Iterator for Changes<'_> {
    type Item = Result<Change, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.r.is_empty() {
                return None;
            }
            self.r.skip_rest();
            return Some(Err(DecodeError::new("trailing bytes after the record")));
        }
        self.left -= 1;
        let change = decode_change(&mut self.r);
        if change.is_err() {
            self.left = 0;
            self.r.skip_rest();
        }
        Some(change)
    }
}

/// Decodes a record body. A `Changes` record's changes are decoded as they are iterated, and
/// may yet turn out not to decode.
///
/// # Errors
/// [`DecodeError`] for anything that is not a well-formed record (never a panic).
pub(crate) fn decode(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    let len = body.len();
    let mut r = Reader::new(body);
    let record = match r.u8()? {
        TOPIC => {
            let id = r.u32()?;
            let name = r.str()?;
            let config = TopicConfig::new()
                .dedup_window(duration(&mut r)?)
                .dedup_capacity(usize_field(&mut r)?);
            Record::Topic { id, name, config, next_seq: r.u64()? }
        }
        SUBSCRIBE => {
            let id = r.u32()?;
            let topic = r.u32()?;
            let mut c = SubscriptionConfig::new(r.str()?);
            c.filter = r.opt_str()?.map(str::to_owned);
            c.ack_wait = duration(&mut r)?;
            c.max_deliveries = r.u32()?;
            c.max_lease_expiries = r.u32()?;
            let n = count(&mut r, len, 8)?;
            c.backoff = (0..n).map(|_| duration(&mut r)).collect::<Result<_, _>>()?;
            c.max_backlog = usize_field(&mut r)?;
            c.overflow = match r.u8()? {
                0 => Overflow::Wait,
                1 => Overflow::Reject,
                2 => Overflow::DeadLetterOldest,
                t => return Err(bad("overflow policy", t)),
            };
            c.max_in_flight_per_consumer = usize_field(&mut r)?;
            c.max_dead_letters = usize_field(&mut r)?;
            Record::Subscribe { id, topic, config: c }
        }
        UNSUBSCRIBE => Record::Unsubscribe { id: r.u32()? },
        PUBLISH => {
            let msg = decode_message(&mut r, len)?;
            let n = count(&mut r, len, 4)?;
            let routed = r.take(4 * n)?;
            Record::Publish { msg, routed }
        }
        CARRY => Record::Carry { msg: decode_message(&mut r, len)? },
        CHANGES => {
            let sub = r.u32()?;
            let left = count(&mut r, len, 9)?;
            // The changes are the rest of the record: `Changes` checks there is nothing after
            // the last one.
            return Ok(Record::Changes { sub, changes: Changes { r, left } });
        }
        CARRY_SUB => {
            let sub = r.u32()?;
            let seq = r.u64()?;
            let attempt = r.u32()?;
            let failures = r.u32()?;
            let expiries = r.u32()?;
            let first_delivered = match r.u8()? {
                0 => None,
                1 => Some(r.u64()?),
                t => return Err(bad("option tag", t)),
            };
            let n = count(&mut r, len, 21)?;
            let history = (0..n).map(|_| decode_attempt(&mut r)).collect::<Result<_, _>>()?;
            let entered = r.u64()?;
            let place = match r.u8()? {
                0 => Place::Waiting { due: r.u64()? },
                1 => Place::InFlight { delivered_at: r.u64()? },
                2 => {
                    let at = r.u64()?;
                    let order = r.u64()?;
                    Place::Dead { reason: decode_reason(&mut r)?, at, order }
                }
                t => return Err(bad("place", t)),
            };
            let state =
                SubMsg { attempt, failures, expiries, first_delivered, history, entered, place };
            Record::CarrySub { sub, seq, state }
        }
        DEDUP => Record::Dedup { topic: r.u32()?, id: r.str()?, seq: r.u64()?, at: r.u64()? },
        COUNTERS => {
            let sub = r.u32()?;
            // A later version may keep more counters: the ones known are read, the rest
            // skipped; missing ones are zero.
            let n = count(&mut r, len, 8)?;
            let mut values = [0; SUB_COUNTERS];
            for i in 0..n {
                let v = r.u64()?;
                if let Some(slot) = values.get_mut(i) {
                    *slot = v;
                }
            }
            Record::Counters { sub, values }
        }
        t => return Err(bad("record kind", t)),
    };
    if !r.is_empty() {
        return Err(DecodeError::new("trailing bytes after the record"));
    }
    Ok(record)
}

/// Decodes a record body to the end, changes included (the fuzzer and tests).
#[cfg(any(test, fuzzing))]
pub(crate) fn decode_all(body: &[u8]) -> Result<(), DecodeError> {
    if let Record::Changes { changes, .. } = decode(body)? {
        for change in changes {
            change?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let msg = StoredMessage {
            seq: 9,
            published_at: 5,
            ready_at: 7,
            meta: Some(Box::new(Meta {
                id: Some("id".into()),
                subject: Some("a.b".into()),
                key: Some("k".into()),
                headers: [("h", "v")].into_iter().collect(),
                schedule: Default::default(),
            })),
            payload: b"payload".to_vec(),
        };
        let mut body = Vec::new();
        publish(&mut body, 3, &msg, &[1, 2]);
        let Record::Publish { msg: m, routed } = decode(&body).unwrap() else { panic!() };
        assert_eq!(routed, [1, 0, 0, 0, 2, 0, 0, 0]);
        let back: StoredMessage<Vec<u8>> = m.stored().unwrap();
        assert_eq!((back.seq, back.published_at, back.ready_at), (9, 5, 7));
        assert_eq!(back.message_id(), Some("id"));
        assert_eq!(back.key(), Some("k"));
        assert_eq!(back.headers().get("h"), Some("v"));
        assert_eq!(back.payload, b"payload");
        let mut c = Vec::new();
        carry(&mut c, &body, &m);
        assert!(matches!(decode(&c).unwrap(), Record::Carry { msg } if msg.seq == 9));

        let config = SubscriptionConfig::new("s")
            .filter("a.*")
            .backoff(vec![Duration::from_millis(3)])
            .overflow(Overflow::DeadLetterOldest);
        let mut body = Vec::new();
        subscribe(&mut body, 4, 3, &config);
        let Record::Subscribe { config: back, .. } = decode(&body).unwrap() else { panic!() };
        assert_eq!(back, config);

        let record = AttemptRecord {
            attempt: 2,
            delivered_at: 1,
            ended_at: 2,
            outcome: AttemptOutcome::Terminated { reason: "no".into() },
        };
        let all = vec![
            Change::Delivered { seq: 1, attempt: 2, at: 3 },
            Change::Acked { seq: 1 },
            Change::Failed { seq: 1, failures: 1, record: record.clone() },
            Change::Expired { seq: 1, expiries: 1, record: record.clone() },
            Change::Terminated { seq: 1, record: record.clone() },
            Change::Scheduled { seq: 1, due: 4 },
            Change::DeadLettered { seq: 1, reason: DeadLetterReason::Overflow, at: 5 },
            Change::DeadLetterDropped { seq: 1 },
            Change::Replayed { seq: 1, at: 6 },
            Change::Purged { seq: 1 },
        ];
        let mut body = Vec::new();
        changes(&mut body, 4, &all);
        let Record::Changes { sub, changes: back } = decode(&body).unwrap() else { panic!() };
        assert_eq!((sub, back.collect::<Result<Vec<_>, _>>().unwrap()), (4, all.clone()));
        body.push(0);
        let Record::Changes { changes: back, .. } = decode(&body).unwrap() else { panic!() };
        let back: Vec<_> = back.collect();
        assert_eq!(back.len(), all.len() + 1);
        assert!(back[all.len()].is_err(), "trailing bytes are an error");

        let state = SubMsg {
            attempt: 3,
            failures: 1,
            expiries: 1,
            first_delivered: Some(2),
            history: vec![record],
            entered: 77,
            place: Place::Dead {
                reason: DeadLetterReason::Terminated { reason: "x".into() },
                at: 9,
                order: 80,
            },
        };
        let mut body = Vec::new();
        carry_sub(&mut body, 4, 9, &state);
        let Record::CarrySub { state: back, .. } = decode(&body).unwrap() else { panic!() };
        assert_eq!(back, state);
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let mut body = Vec::new();
        topic(&mut body, 1, "orders", &TopicConfig::new(), 5);
        for cut in 0..body.len() {
            assert!(decode(&body[..cut]).is_err());
        }
        assert!(decode(&[200]).is_err());
        let mut body = Vec::new();
        let record = AttemptRecord {
            attempt: 1,
            delivered_at: 1,
            ended_at: 2,
            outcome: AttemptOutcome::Nacked { delay: Duration::ZERO, reason: Some("r".into()) },
        };
        changes(
            &mut body,
            1,
            &[Change::Acked { seq: 1 }, Change::Failed { seq: 2, failures: 1, record }],
        );
        assert!(decode_all(&body).is_ok());
        for cut in 0..body.len() {
            assert!(decode_all(&body[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn counters_round_trip_and_tolerate_more_or_fewer() {
        let values: [u64; SUB_COUNTERS] = std::array::from_fn(|i| i as u64 * 1000 + 1);
        let mut body = Vec::new();
        counters(&mut body, 7, &values);
        let Record::Counters { sub, values: back } = decode(&body).unwrap() else { panic!() };
        assert_eq!((sub, back), (7, values));
        for cut in 0..body.len() {
            assert!(decode(&body[..cut]).is_err(), "cut at {cut}");
        }
        // A later version with one more counter, an earlier one with two fewer.
        let mut w = Vec::new();
        Writer(&mut w).u8(COUNTERS).u32(7).u32(SUB_COUNTERS as u32 + 1);
        for v in values.iter().chain([&99]) {
            Writer(&mut w).u64(*v);
        }
        assert!(matches!(decode(&w), Ok(Record::Counters { values: v, .. }) if v == values));
        let mut w = Vec::new();
        Writer(&mut w).u8(COUNTERS).u32(7).u32(2).u64(5).u64(6);
        let Record::Counters { values: v, .. } = decode(&w).unwrap() else { panic!() };
        assert_eq!((v[0], v[1], v[2]), (5, 6, 0));
    }
}
