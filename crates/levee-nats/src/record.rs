//! The JSON records levee keeps in JetStream next to the messages: a message's failure
//! history (in the topic's KV bucket, only once it failed) and a dead letter's reason and
//! history (a header of its copy in the dead-letter stream). Reasons and attempts are
//! levee-queue's own types, through its `serde` feature.

use levee_queue::broker::{AttemptRecord, DeadLetterReason, Headers};
use serde::{Deserialize, Serialize};

/// A message's handler failures so far (KV `f.<sub>.<stream seq>`), written before each
/// redelivery so the next delivery, in any process, knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FailureState {
    pub(crate) failures: u32,
    pub(crate) history: Vec<AttemptRecord>,
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
    pub(crate) reason: DeadLetterReason,
    pub(crate) history: Vec<AttemptRecord>,
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
        reason: DeadLetterReason,
        history: Vec<AttemptRecord>,
        attempts: u32,
        dead_lettered_at: u64,
    ) -> Self {
        Self {
            seq: facts.seq,
            subject: facts.subject.to_owned(),
            key: facts.key.map(str::to_owned),
            message_id: facts.message_id.map(str::to_owned),
            headers: facts.headers.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect(),
            published_at: facts.published_at,
            reason,
            history,
            attempts,
            dead_lettered_at,
        }
    }

    pub(crate) fn user_headers(&self) -> Headers {
        self.headers.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use levee_queue::broker::AttemptOutcome;

    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let history = vec![
            AttemptRecord {
                attempt: 1,
                delivered_at: 10,
                ended_at: 20,
                outcome: AttemptOutcome::Nacked {
                    delay: Duration::from_millis(5),
                    reason: Some("timeout".into()),
                },
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
        let state = FailureState { failures: 2, history: history.clone() };
        let back: FailureState =
            serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(back, state);

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
        let rec = DeadRecord::new(&facts, reason, history, 3, 99);
        let back: DeadRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.user_headers(), headers);
    }

    #[test]
    fn a_record_from_elsewhere_is_an_error_not_a_panic() {
        let json = r#"{"seq":1,"subject":"t","key":null,"message_id":null,"headers":[],
            "published_at":0,"reason":{"kind":"from_the_future"},"history":[],"attempts":1,
            "dead_lettered_at":0}"#;
        assert!(serde_json::from_str::<DeadRecord>(json).is_err());
    }
}
