//! What one replica tells its peers: a breaker transition, as one line of text.
//!
//! ```text
//! levee.breaker.v1 <dependency> <replica> <generation> <from> <to> <at_ms>
//! ```
//!
//! Fields are separated by one space; names are non-empty and hold no whitespace (checked
//! when a replica joins); states are [`State::as_str`] names; `generation` is the breaker's
//! ([`BreakerEvent::generation`], below 2^25); `at_ms` is the sender's clock reading in
//! milliseconds (informative only: clocks of two processes are not comparable, so a receiver
//! ages reports by its own clock). Text, not a binary format, so that an operator can read
//! the topic with `nats sub` and any codec (JSON strings included) carries it.

use std::fmt;

use levee_breaker::{BreakerEvent, State};

/// The first field of every message: the format and its version.
const MAGIC: &str = "levee.breaker.v1";
/// The longest message accepted (names are at most [`MAX_NAME`] bytes).
pub(crate) const MAX_LEN: usize = 2 * MAX_NAME + 96;
/// The longest dependency or replica name.
pub(crate) const MAX_NAME: usize = 128;
/// Generations are 25 bits wide.
const GEN_LIMIT: u32 = 1 << 25;

/// One transition of one replica's breaker for one dependency.
///
/// ```
/// use levee::breaker::State;
/// use levee::shared_breaker::Transition;
///
/// let sent = Transition {
///     dependency: "payments".into(),
///     replica: "shop-2".into(),
///     generation: 7,
///     from: State::Closed,
///     to: State::Open,
///     at_ms: 1_000,
/// };
/// assert_eq!(Transition::decode(&sent.encode()), Ok(sent));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The dependency the breaker guards.
    pub dependency: String,
    /// The replica whose breaker moved.
    pub replica: String,
    /// The breaker's generation after the transition (mod 2^25).
    pub generation: u32,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// The sender's clock reading, in milliseconds.
    pub at_ms: u64,
}

impl Transition {
    /// The transition `event` describes, of `replica`'s breaker for `dependency`.
    pub(crate) fn of(dependency: &str, replica: &str, event: &BreakerEvent) -> Self {
        Self {
            dependency: dependency.to_owned(),
            replica: replica.to_owned(),
            generation: event.generation,
            from: event.from,
            to: event.to,
            at_ms: event.at / 1_000_000,
        }
    }

    /// The message text.
    #[must_use]
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// Reads a message; never panics, whatever the bytes.
    ///
    /// # Errors
    /// [`Malformed`] when `text` is not a message of this format.
    pub fn decode(text: &str) -> Result<Self, Malformed> {
        if text.len() > MAX_LEN {
            return Err(Malformed("too long"));
        }
        let mut fields = text.split(' ');
        let mut next = |what| fields.next().filter(|f| !f.is_empty()).ok_or(Malformed(what));
        if next("format")? != MAGIC {
            return Err(Malformed("unknown format"));
        }
        let dependency = next("dependency")?.to_owned();
        let replica = next("replica")?.to_owned();
        let generation = next("generation")?
            .parse::<u32>()
            .ok()
            .filter(|g| *g < GEN_LIMIT)
            .ok_or(Malformed("generation"))?;
        let from = parse_state(next("from")?)?;
        let to = parse_state(next("to")?)?;
        let at_ms = next("at_ms")?.parse::<u64>().map_err(|_| Malformed("at_ms"))?;
        if fields.next().is_some() {
            return Err(Malformed("trailing fields"));
        }
        if !is_name(&dependency) || !is_name(&replica) {
            return Err(Malformed("name"));
        }
        Ok(Self { dependency, replica, generation, from, to, at_ms })
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{MAGIC} {} {} {} {} {} {}",
            self.dependency, self.replica, self.generation, self.from, self.to, self.at_ms
        )
    }
}

/// Why a message was dropped: the field that did not parse.
///
/// ```
/// use levee::shared_breaker::Transition;
///
/// let err = Transition::decode("hello").unwrap_err();
/// println!("dropped: {err}"); // counted as `malformed`, never a panic
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed breaker transition: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// True for a dependency or replica name the format carries: 1 to [`MAX_NAME`] bytes, no
/// whitespace or control characters.
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn parse_state(name: &str) -> Result<State, Malformed> {
    [State::Closed, State::Open, State::HalfOpen, State::ForcedOpen, State::Disabled]
        .into_iter()
        .find(|s| s.as_str() == name)
        .ok_or(Malformed("state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transition {
        Transition {
            dependency: "payments".into(),
            replica: "pod-7".into(),
            generation: (1 << 25) - 1,
            from: State::HalfOpen,
            to: State::Closed,
            at_ms: u64::MAX,
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(
            t.encode(),
            format!("levee.breaker.v1 payments pod-7 33554431 half_open closed {}", u64::MAX)
        );
        assert_eq!(Transition::decode(&t.encode()), Ok(t));
    }

    #[test]
    fn bad_messages_are_named() {
        let good = sample().encode();
        let cases = [
            ("", "format"),
            ("hello", "unknown format"),
            ("levee.breaker.v2 a b 1 open closed 0", "unknown format"),
            ("levee.breaker.v1 a b 1 open closed", "at_ms"),
            ("levee.breaker.v1 a b 33554432 open closed 0", "generation"),
            ("levee.breaker.v1 a b -1 open closed 0", "generation"),
            ("levee.breaker.v1 a b 1 opened closed 0", "state"),
            ("levee.breaker.v1 a b 1 open closed 0 x", "trailing fields"),
            ("levee.breaker.v1  b 1 open closed 0", "dependency"),
            ("levee.breaker.v1 a\u{7} b 1 open closed 0", "name"),
        ];
        for (text, field) in cases {
            assert_eq!(Transition::decode(text), Err(Malformed(field)), "{text:?}");
        }
        let long = format!("{good}{}", " ".repeat(MAX_LEN));
        assert_eq!(Transition::decode(&long), Err(Malformed("too long")));
    }
}
