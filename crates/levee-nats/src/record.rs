//! The JSON records levee keeps in JetStream next to the messages: a message's failure
//! history (in the topic's KV bucket, only once it failed) and a dead letter's reason and
//! history (a header of its copy in the dead-letter stream).

use std::time::Duration;

use levee_queue::broker::{AttemptOutcome, AttemptRecord, DeadLetterReason, Headers};
use serde::{Deserialize, Serialize};

/// How one attempt ended, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Outcome {
    Nacked { delay_ns: u64 },
    Dropped,
    LeaseExpired,
    Terminated { reason: String },
}

/// One attempt, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    attempt: u32,
    delivered_at: u64,
    ended_at: u64,
    outcome: Outcome,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl From<&AttemptRecord> for Attempt {
    fn from(r: &AttemptRecord) -> Self {
        let outcome = match &r.outcome {
            AttemptOutcome::Nacked { delay } => Outcome::Nacked { delay_ns: nanos(*delay) },
            AttemptOutcome::Dropped => Outcome::Dropped,
            AttemptOutcome::LeaseExpired => Outcome::LeaseExpired,
            AttemptOutcome::Terminated { reason } => Outcome::Terminated { reason: reason.clone() },
        };
        Self { attempt: r.attempt, delivered_at: r.delivered_at, ended_at: r.ended_at, outcome }
    }
}

impl From<&Attempt> for AttemptRecord {
    fn from(a: &Attempt) -> Self {
        let outcome = match &a.outcome {
            Outcome::Nacked { delay_ns } => {
                AttemptOutcome::Nacked { delay: Duration::from_nanos(*delay_ns) }
            }
            Outcome::Dropped => AttemptOutcome::Dropped,
            Outcome::LeaseExpired => AttemptOutcome::LeaseExpired,
            Outcome::Terminated { reason } => AttemptOutcome::Terminated { reason: reason.clone() },
        };
        Self { attempt: a.attempt, delivered_at: a.delivered_at, ended_at: a.ended_at, outcome }
    }
}

/// Why a message was dead-lettered, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Reason {
    MaxDeliveries {
        failures: u32,
    },
    MaxLeaseExpiries {
        expiries: u32,
    },
    Terminated {
        reason: String,
    },
    Overflow,
    /// A reason this version does not know (written by a newer one).
    #[serde(other)]
    Unknown,
}

/// A message's handler failures so far (KV `f.<sub>.<stream seq>`), written before each
/// redelivery so the next delivery, in any process, knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FailureState {
    pub(crate) failures: u32,
    history: Vec<Attempt>,
}

impl FailureState {
    pub(crate) fn history(&self) -> Vec<AttemptRecord> {
        self.history.iter().map(AttemptRecord::from).collect()
    }

    pub(crate) fn new(failures: u32, history: &[AttemptRecord]) -> Self {
        Self { failures, history: stored(history) }
    }
}

fn stored(history: &[AttemptRecord]) -> Vec<Attempt> {
    history.iter().map(Attempt::from).collect()
}

/// Everything about a dead letter except its payload (the `Levee-Dead-Letter` header of its
/// copy in the dead-letter stream; the payload is the copy's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeadRecord {
    /// The levee sequence number (the topic stream's, or the original's for a replay).
    pub(crate) seq: u64,
    pub(crate) subject: String,
    pub(crate) key: Option<String>,
    pub(crate) message_id: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) published_at: u64,
    reason: Reason,
    history: Vec<Attempt>,
    pub(crate) attempts: u32,
    pub(crate) dead_lettered_at: u64,
}

/// The parts of a [`DeadRecord`] that describe the message.
pub(crate) struct MessageFacts<'a> {
    pub(crate) seq: u64,
    pub(crate) subject: &'a str,
    pub(crate) key: Option<&'a str>,
    pub(crate) message_id: Option<&'a str>,
    pub(crate) headers: &'a Headers,
    pub(crate) published_at: u64,
}

impl DeadRecord {
    pub(crate) fn new(
        facts: &MessageFacts<'_>,
        reason: &DeadLetterReason,
        history: &[AttemptRecord],
        attempts: u32,
        dead_lettered_at: u64,
    ) -> Self {
        let reason = match reason {
            DeadLetterReason::MaxDeliveries { failures } => {
                Reason::MaxDeliveries { failures: *failures }
            }
            DeadLetterReason::MaxLeaseExpiries { expiries } => {
                Reason::MaxLeaseExpiries { expiries: *expiries }
            }
            DeadLetterReason::Terminated { reason } => {
                Reason::Terminated { reason: reason.clone() }
            }
            _ => Reason::Overflow,
        };
        Self {
            seq: facts.seq,
            subject: facts.subject.to_owned(),
            key: facts.key.map(str::to_owned),
            message_id: facts.message_id.map(str::to_owned),
            headers: facts.headers.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect(),
            published_at: facts.published_at,
            reason,
            history: stored(history),
            attempts,
            dead_lettered_at,
        }
    }

    pub(crate) fn reason(&self) -> DeadLetterReason {
        match &self.reason {
            Reason::MaxDeliveries { failures } => {
                DeadLetterReason::MaxDeliveries { failures: *failures }
            }
            Reason::MaxLeaseExpiries { expiries } => {
                DeadLetterReason::MaxLeaseExpiries { expiries: *expiries }
            }
            Reason::Terminated { reason } => {
                DeadLetterReason::Terminated { reason: reason.clone() }
            }
            Reason::Overflow => DeadLetterReason::Overflow,
            Reason::Unknown => DeadLetterReason::Terminated { reason: "unknown reason".into() },
        }
    }

    pub(crate) fn history(&self) -> Vec<AttemptRecord> {
        self.history.iter().map(AttemptRecord::from).collect()
    }

    pub(crate) fn user_headers(&self) -> Headers {
        self.headers.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let history = vec![
            AttemptRecord {
                attempt: 1,
                delivered_at: 10,
                ended_at: 20,
                outcome: AttemptOutcome::Nacked { delay: Duration::from_millis(5) },
            },
            AttemptRecord {
                attempt: 2,
                delivered_at: 30,
                ended_at: 40,
                outcome: AttemptOutcome::Dropped,
            },
            AttemptRecord {
                attempt: 3,
                delivered_at: 50,
                ended_at: 60,
                outcome: AttemptOutcome::LeaseExpired,
            },
        ];
        let state = FailureState::new(2, &history);
        let back: FailureState =
            serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(back.history(), history);

        let headers: Headers = [("trace", "abc")].into_iter().collect();
        let facts = MessageFacts {
            seq: 7,
            subject: "orders.placed",
            key: Some("c-1"),
            message_id: Some("order-7"),
            headers: &headers,
            published_at: 5,
        };
        let reason = DeadLetterReason::Terminated { reason: "card declined".into() };
        let rec = DeadRecord::new(&facts, &reason, &history, 3, 99);
        let back: DeadRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.reason(), reason);
        assert_eq!(back.history(), history);
        assert_eq!(back.user_headers(), headers);
    }

    #[test]
    fn an_unknown_reason_still_reads() {
        let json = r#"{"seq":1,"subject":"t","key":null,"message_id":null,"headers":[],
            "published_at":0,"reason":{"kind":"from_the_future"},"history":[],"attempts":1,
            "dead_lettered_at":0}"#;
        let rec: DeadRecord = serde_json::from_str(json).unwrap();
        assert!(matches!(rec.reason(), DeadLetterReason::Terminated { .. }));
    }
}
