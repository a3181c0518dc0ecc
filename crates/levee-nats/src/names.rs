//! How levee's names map onto JetStream's: streams, subjects, consumers and KV keys.
//!
//! With the prefix `levee` and the topic `orders`:
//!
//! | what | name |
//! |---|---|
//! | topic stream (interest retention) | `levee-T-orders`, subjects `levee.t.orders.>` |
//! | a message | `levee.t.orders.<to>.<key>.<subject>` |
//! | delay stream (message schedules) | `levee-D-orders`, subjects `levee.d.orders.>` |
//! | dead-letter stream | `levee-Q-orders`, one subject per subscription `levee.q.orders.<sub>` |
//! | per-message state (KV bucket) | `levee-S-orders` |
//!
//! `<to>` is `_` for a message published to the topic and `@<sub>` for one put back into a
//! single subscription (a replayed dead letter); `<key>` is `_` without an ordering key and
//! `k<encoded key>` with one; `<subject>` is the levee subject (the topic's name by default),
//! whose tokens a subscription's filter matches. The prefix has no `-`, so the stream names of
//! different topics never collide.

use levee_queue::broker::BrokerError;

/// A valid prefix, topic or subscription name: 1 to 64 of `A-Z a-z 0-9 _ -` (what a JetStream
/// stream or consumer name and a subject token can all hold).
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), BrokerError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BrokerError::Config(levee_core::ConfigError::new(
            what,
            format!(
                "`{name}` must be 1 to 64 of A-Z a-z 0-9 _ - (a NATS stream, consumer and subject token)"
            ),
        )))
    }
}

/// Encodes any string as one subject token that is also a valid KV key: `A-Z a-z 0-9 _ -`
/// stay, every other byte becomes `=XX` (upper-case hex).
pub(crate) fn encode_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('=');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The inverse of [`encode_token`]; `None` for anything it cannot have produced.
pub(crate) fn decode_token(token: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(token.len());
    let mut it = token.bytes();
    while let Some(b) = it.next() {
        if b == b'=' {
            let hi = hex_value(it.next()?)?;
            let lo = hex_value(it.next()?)?;
            bytes.push(hi << 4 | lo);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The key token of a message subject: `_` for none, `k<encoded>` for a key.
pub(crate) fn key_token(key: Option<&str>) -> std::borrow::Cow<'static, str> {
    key.map_or(std::borrow::Cow::Borrowed("_"), |k| format!("k{}", encode_token(k)).into())
}

/// Every JetStream name of one topic.
#[derive(Debug, Clone)]
pub(crate) struct TopicNames {
    pub(crate) topic: String,
    pub(crate) stream: String,
    pub(crate) delay_stream: String,
    pub(crate) dlq_stream: String,
    pub(crate) state_bucket: String,
    /// `prefix.t.topic.`: what every message subject starts with.
    pub(crate) base: String,
    /// `prefix.d.topic`.
    pub(crate) delay_base: String,
    /// `prefix.q.topic`.
    pub(crate) dlq_base: String,
}

impl TopicNames {
    pub(crate) fn new(prefix: &str, topic: &str) -> Result<Self, BrokerError> {
        check_name("topic", topic)?;
        Ok(Self {
            topic: topic.to_owned(),
            stream: format!("{prefix}-T-{topic}"),
            delay_stream: format!("{prefix}-D-{topic}"),
            dlq_stream: format!("{prefix}-Q-{topic}"),
            state_bucket: format!("{prefix}-S-{topic}"),
            base: format!("{prefix}.t.{topic}."),
            delay_base: format!("{prefix}.d.{topic}"),
            dlq_base: format!("{prefix}.q.{topic}"),
        })
    }

    /// The subject of a message for everyone (`to = None`) or for one subscription.
    pub(crate) fn message_subject(&self, to: Option<&str>, key: &str, subject: &str) -> String {
        match to {
            None => format!("{}_.{key}.{subject}", self.base),
            Some(sub) => format!("{}@{sub}.{key}.{subject}", self.base),
        }
    }

    /// The subjects a subscription's durable consumer filters on.
    pub(crate) fn consumer_filters(&self, sub: &str, filter: Option<&str>) -> Vec<String> {
        vec![
            format!("{}_.*.{}", self.base, filter.unwrap_or(">")),
            format!("{}@{sub}.>", self.base),
        ]
    }

    /// The subjects on which the next message of `key` for `sub` can be found.
    pub(crate) fn key_subjects(
        &self,
        sub: &str,
        key_token: &str,
        filter: Option<&str>,
    ) -> [String; 2] {
        [
            format!("{}_.{key_token}.{}", self.base, filter.unwrap_or(">")),
            format!("{}@{sub}.{key_token}.>", self.base),
        ]
    }

    /// Splits a delivered subject into (the subscription it is directed to, if any; key
    /// token; levee subject). `None` for a subject levee did not build.
    pub(crate) fn parse<'a>(
        &self,
        nats_subject: &'a str,
    ) -> Option<(Option<&'a str>, &'a str, &'a str)> {
        let rest = nats_subject.strip_prefix(self.base.as_str())?;
        let (to, rest) = rest.split_once('.')?;
        let (key, subject) = rest.split_once('.')?;
        let to = match to {
            "_" => None,
            _ => Some(to.strip_prefix('@').filter(|s| !s.is_empty())?),
        };
        let key_ok = key == "_" || key.starts_with('k');
        (key_ok && !subject.is_empty()).then_some((to, key, subject))
    }

    /// The subject a delayed message's schedule is stored on (one schedule per subject).
    pub(crate) fn schedule_subject(&self, id: &str) -> String {
        format!("{}.s.{id}", self.delay_base)
    }

    /// Where a schedule fires into the delay stream; the topic stream sources it from there.
    pub(crate) fn schedule_target(&self, key: &str, subject: &str) -> String {
        format!("{}.o._.{key}.{subject}", self.delay_base)
    }

    /// The dead-letter subject of one subscription.
    pub(crate) fn dlq_subject(&self, sub: &str) -> String {
        format!("{}.{sub}", self.dlq_base)
    }
}

/// The KV key holding the failure record of message `seq` in `sub`.
pub(crate) fn state_key(sub: &str, seq: u64) -> String {
    format!("f.{sub}.{seq}")
}

/// The KV key holding the ordering cursor of `key_token` in `sub`.
pub(crate) fn cursor_key(sub: &str, key_token: &str) -> String {
    format!("c.{sub}.{key_token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for s in ["customer-3", "a b.c*>", "", "ünï", "=41", "_"] {
            let t = encode_token(s);
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)), "{t}");
            assert_eq!(decode_token(&t).as_deref(), Some(s));
        }
        assert_eq!(decode_token("=4"), None);
        assert_eq!(decode_token("=zz"), None);
        assert_ne!(key_token(None), key_token(Some("_")));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("topic", "orders-eu_1").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(65)] {
            assert!(check_name("topic", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subjects_parse_back() {
        let n = TopicNames::new("levee", "orders").unwrap();
        let s = n.message_subject(None, &key_token(Some("c 1")), "orders.placed");
        assert_eq!(s, "levee.t.orders._.kc=201.orders.placed");
        assert_eq!(n.parse(&s), Some((None, "kc=201", "orders.placed")));
        let s = n.message_subject(Some("pay"), "_", "orders");
        assert_eq!(n.parse(&s), Some((Some("pay"), "_", "orders")));
        for foreign in [
            "levee.t.other._._.x",
            "levee.t.orders.x._.y",
            "levee.t.orders._.é.y",
            "levee.t.orders._._.",
        ] {
            assert_eq!(n.parse(foreign), None, "{foreign}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_key_and_subject_round_trip(
            key in proptest::option::of(".*"),
            sub in proptest::option::of("[A-Za-z0-9_-]{1,12}"),
            subject in "[a-z0-9]{1,5}(\\.[a-z0-9]{1,5}){0,3}",
        ) {
            let token = key_token(key.as_deref());
            let n = TopicNames::new("levee", "orders").unwrap();
            let built = n.message_subject(sub.as_deref(), &token, &subject);
            let (to, k, s) = n.parse(&built).expect("parses");
            proptest::prop_assert_eq!(to, sub.as_deref());
            proptest::prop_assert_eq!(s, subject.as_str());
            let decoded = if k == "_" { None } else { decode_token(&k[1..]) };
            proptest::prop_assert_eq!(decoded, key);
        }
    }
}
