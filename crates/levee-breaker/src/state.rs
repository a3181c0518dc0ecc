//! The breaker's state word: state, generation and the state's own data in one `u64`.
//!
//! Everything a decision needs lives in this one atomic word, so every transition is a single
//! compare-and-swap and a decision can never mix two states' data:
//!
//! ```text
//!  63      60 59                                  28 27                  3 2     0
//! +----------+--------------------------------------+---------------------+-------+
//! |            data (36 bits, depends on the tag)    | generation (25 bits)|  tag  |
//! +----------+--------------------------------------+---------------------+-------+
//!
//! Open:      data = attempts (4) | deadline in ms since the breaker's origin, mod 2^32 (32)
//!            (the high bits come from the state's entry time, noted beside the word:
//!            `entered.rs`)
//! HalfOpen:  data = attempts (4) | slow (8) | failed (8) | done (8) | issued (8)
//! others:    data = 0
//! ```
//!
//! The generation goes up by one (mod 2^25) at every transition. A permit remembers the
//! generation it was issued in; its result counts only while the word still carries that
//! generation, so a result that arrives after the breaker moved on is ignored.
//!
//! Generations are compared modulo 2^25 ([`gen_is_newer`]): a tag less than half the space
//! behind is older. That is only sound for tags that are never left behind that far, so the
//! winner of every transition refreshes the windows' tags a few at a time
//! (`Window::refresh`): every tag a window holds is then at most its number of slots or
//! buckets behind, whatever the number of transitions without a recorded call. (A permit held
//! across 2^24 transitions, or a thread stalled for as many between two instructions, is
//! assumed not to happen.)
//!
//! `attempts` counts consecutive openings without a close in between (saturating at 15): the
//! exponent of the open-wait backoff. A half-open state keeps it so that a failed trial reopens
//! with a longer wait, and a close resets it.

/// The state a circuit breaker is in.
///
/// ```
/// use levee_breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// assert_eq!(breaker.state(), State::Closed);
/// breaker.trip();
/// assert_eq!(breaker.state(), State::Open);
/// breaker.reset();
/// assert_eq!(breaker.state(), State::Closed);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum State {
    /// Calls go through; their outcomes fill the sliding window.
    Closed,
    /// Calls are refused until the open wait has passed.
    Open,
    /// A fixed number of trial calls go through; their outcomes close or reopen the circuit.
    HalfOpen,
    /// Calls are refused until an operator resets the breaker.
    ForcedOpen,
    /// Calls go through and nothing is recorded, until an operator resets the breaker.
    Disabled,
}

impl State {
    /// The state's name in `snake_case`, as used in metrics labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const TAG_MASK: u64 = 0b111;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const FORCED_OPEN: u64 = 3;
const DISABLED: u64 = 4;

const GEN_SHIFT: u32 = 3;
/// Width of a generation number.
pub(crate) const GEN_BITS: u32 = 25;
/// Mask of a generation number.
pub(crate) const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
const DATA_SHIFT: u32 = GEN_SHIFT + GEN_BITS;
const ATTEMPTS_SHIFT: u32 = 60;
/// Consecutive openings saturate here (four bits).
pub(crate) const MAX_ATTEMPTS: u8 = 15;
/// Half-open counters are eight bits each.
pub(crate) const MAX_TRIALS: u32 = 255;

/// The generation after `generation`.
#[inline]
pub(crate) const fn next_gen(generation: u32) -> u32 {
    generation.wrapping_add(1) & GEN_MASK
}

/// True when generation `a` is later than `b` (modular: "later" means less than half the
/// generation space ahead, far more transitions than any permit outlives).
#[inline]
pub(crate) const fn gen_is_newer(a: u32, b: u32) -> bool {
    generation_is_newer(a, b)
}

/// True when breaker generation `a` ([`BreakerEvent::generation`](crate::BreakerEvent)) is
/// later than `b`. Generations count transitions modulo 2^25; "later" means less than half
/// that space ahead, so the answer is right for any two events less than 2^24 transitions
/// apart.
///
/// ```
/// use levee_breaker::generation_is_newer;
///
/// assert!(generation_is_newer(5, 3) && !generation_is_newer(3, 5) && !generation_is_newer(4, 4));
/// assert!(generation_is_newer(0, (1 << 25) - 1), "past the wrap");
/// ```
#[inline]
#[must_use]
pub const fn generation_is_newer(a: u32, b: u32) -> bool {
    let ahead = a.wrapping_sub(b) & GEN_MASK;
    ahead != 0 && ahead < (1 << (GEN_BITS - 1))
}

/// The half-open trial counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Trials {
    /// Trial permits handed out and not released (completed ones included).
    pub(crate) issued: u8,
    /// Trials whose outcome was recorded.
    pub(crate) done: u8,
    /// Of those, failures.
    pub(crate) failed: u8,
    /// Of those, slow calls.
    pub(crate) slow: u8,
}

impl Trials {
    const fn pack(self) -> u64 {
        self.issued as u64
            | (self.done as u64) << 8
            | (self.failed as u64) << 16
            | (self.slow as u64) << 24
    }

    const fn unpack(data: u64) -> Self {
        Self {
            issued: data as u8,
            done: (data >> 8) as u8,
            failed: (data >> 16) as u8,
            slow: (data >> 24) as u8,
        }
    }
}

/// One value of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Word");
        d.field("state", &self.state()).field("generation", &self.generation());
        match self.state() {
            State::Open => {
                d.field("deadline_ms", &self.deadline_ms()).field("attempts", &self.attempts());
            }
            State::HalfOpen => {
                d.field("trials", &self.trials()).field("attempts", &self.attempts());
            }
            _ => {}
        }
        d.finish()
    }
}

impl Word {
    #[inline]
    const fn with(tag: u64, generation: u32, data: u64) -> Self {
        Self(tag | ((generation & GEN_MASK) as u64) << GEN_SHIFT | data << DATA_SHIFT)
    }

    #[inline]
    pub(crate) const fn closed(generation: u32) -> Self {
        Self::with(CLOSED, generation, 0)
    }

    #[inline]
    pub(crate) const fn open(generation: u32, deadline_ms: u32, attempts: u8) -> Self {
        Self::with(
            OPEN,
            generation,
            deadline_ms as u64 | (attempts as u64) << (ATTEMPTS_SHIFT - DATA_SHIFT),
        )
    }

    #[inline]
    pub(crate) const fn half_open(generation: u32, attempts: u8, trials: Trials) -> Self {
        Self::with(
            HALF_OPEN,
            generation,
            trials.pack() | (attempts as u64) << (ATTEMPTS_SHIFT - DATA_SHIFT),
        )
    }

    #[inline]
    pub(crate) const fn forced_open(generation: u32) -> Self {
        Self::with(FORCED_OPEN, generation, 0)
    }

    #[inline]
    pub(crate) const fn disabled(generation: u32) -> Self {
        Self::with(DISABLED, generation, 0)
    }

    /// True for `Closed` of any generation: the hot path's one test.
    #[inline]
    pub(crate) const fn is_closed(self) -> bool {
        self.0 & TAG_MASK == CLOSED
    }

    #[inline]
    pub(crate) const fn state(self) -> State {
        match self.0 & TAG_MASK {
            CLOSED => State::Closed,
            OPEN => State::Open,
            HALF_OPEN => State::HalfOpen,
            FORCED_OPEN => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32 & GEN_MASK
    }

    /// Open only: the deadline, in whole milliseconds since the breaker's origin, mod 2^32.
    #[inline]
    pub(crate) const fn deadline_ms(self) -> u32 {
        (self.0 >> DATA_SHIFT) as u32
    }

    /// Open and half-open: consecutive openings so far.
    #[inline]
    pub(crate) const fn attempts(self) -> u8 {
        (self.0 >> ATTEMPTS_SHIFT) as u8
    }

    /// Half-open only: the trial counters.
    #[inline]
    pub(crate) const fn trials(self) -> Trials {
        Trials::unpack((self.0 >> DATA_SHIFT) & 0xFFFF_FFFF)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let w = Word::open(GEN_MASK, u32::MAX, MAX_ATTEMPTS);
        assert_eq!(
            (w.state(), w.generation(), w.deadline_ms(), w.attempts()),
            (State::Open, GEN_MASK, u32::MAX, 15)
        );
        let t = Trials { issued: 255, done: 7, failed: 3, slow: 200 };
        let w = Word::half_open(12345, 9, t);
        assert_eq!(
            (w.state(), w.generation(), w.trials(), w.attempts()),
            (State::HalfOpen, 12345, t, 9)
        );
        for (w, s) in [
            (Word::closed(1), State::Closed),
            (Word::forced_open(2), State::ForcedOpen),
            (Word::disabled(3), State::Disabled),
        ] {
            assert_eq!(w.state(), s);
        }
        assert!(Word::closed(77).is_closed() && !Word::disabled(0).is_closed());
    }

    #[test]
    fn generations_wrap() {
        assert_eq!(next_gen(GEN_MASK), 0);
        assert!(gen_is_newer(0, GEN_MASK));
        assert!(gen_is_newer(5, 3) && !gen_is_newer(3, 5) && !gen_is_newer(4, 4));
        assert_eq!(Word::closed(next_gen(GEN_MASK)), Word::closed(0));
    }
}
