//! The hierarchical timing wheel (Varghese & Lauck, "Hashed and Hierarchical Timing Wheels",
//! SOSP 1987), with a cascading exact mode and a Linux-style (2016) non-cascading slack mode.
//!
//! # How it works
//!
//! Time is counted in ticks from the wheel's `start`. A deadline `d` becomes the tick
//! `ceil((d - start) / tick)`, and the wheel has processed every tick up to `elapsed`; an
//! entry whose tick is at or before `elapsed` is due and sits on the *due list*, from which
//! `poll_expired` hands entries out one at a time.
//!
//! Every other entry sits in one slot of one level. Each level has 64 slots, each slot an
//! intrusive doubly-linked list of slab indices (so cancel is O(1)), and a `u64` bitmap of
//! the occupied slots. A slot of level `l` spans `2^(shift * l)` ticks, and a level is a
//! ring: slot `k % 64` holds the entries whose tick, in that level's slot units, is `k`, for
//! the 64 values of `k` after the current one.
//!
//! - **Exact** (`shift = 6`): the finest level is a *near ring* of 128 one-tick slots (two
//!   64-slot halves) holding every entry less than 128 ticks ahead; an entry fires from it
//!   at its own tick. Farther entries go to the coarse level (1, 2, ...) whose slot size is
//!   the largest power of 64 within their distance, counted from `elapsed + 64` rather
//!   than from `elapsed` (`exact_level`). A coarse slot is *cascaded* (its entries moved to
//!   finer levels) 64 ticks before its start, so every entry due within 64 ticks is on the
//!   near ring, and the next deadline the wheel reports for it is its own tick, not a
//!   coarse slot's boundary. The near ring is 128 slots because a level-1 slot (64 ticks)
//!   cascaded 64 ticks early lands 64 to 127 ticks ahead. An entry thus fires in the first
//!   tick that ends after its deadline: never early, less than one tick late.
//! - **Slack** (`shift = 3`, as Linux's timer wheel since 4.8): an entry goes to the finest
//!   level whose 64 slots reach its tick, with the tick *rounded up* to that level's slot
//!   size, and is never moved again. The whole slot fires at once when time reaches it.
//!   Rounding up means never early; being at the finest level that reaches means the
//!   rounding is less than 8/63 (12.7 %) of the time that remained at insertion, plus one
//!   tick. Timeouts that are usually cancelled are thus touched exactly twice.
//!
//! The next event is the earliest occupied slot over all levels, found per level with one
//! `rotate_right` + `trailing_zeros` on the bitmap, so advancing over idle time costs nothing
//! per empty tick. The wheel keeps two such events: the near ring's (when an entry fires) and
//! the other levels' (when a slot fires or is cascaded). The wheel has as many levels as it
//! takes to cover every `u64` deadline at its tick (7 coarse levels besides the near ring for
//! exact 1 ms ticks), so no deadline is ever out of range, clamped or dropped.
//!
//! Firing a slot splices its whole list onto the due list in O(1) without relabelling the
//! entries; see [`TimingWheel::detach`] for why their stale `place` is harmless.
//!
//! # Files
//!
//! This file holds the [`TimingWheel`] type and its public API. The engine is split by
//! concept: `place` (where an entry goes, and how it leaves its list), `level` (a 64-slot
//! ring and finding the next occupied slot), `advance` (processing slot events: firing and
//! cascading), `slab` (entry storage and intrusive lists), `builder` (settings), `drain`
//! (what the wheel hands out), `invariants` (checked by tests and the fuzzer).

mod advance;
mod builder;
mod drain;
#[cfg(any(test, fuzzing))]
mod invariants;
mod level;
mod place;
mod slab;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use levee_core::nanos;

use crate::error::TimerError;
use crate::key::{TimerKey, next_wheel_id};

#[allow(deprecated)]
pub use builder::Builder;
pub use builder::{MIN_TICK, Precision, TimingWheelBuilder};
pub use drain::{Drain, Expired};
use level::Level;
pub(crate) use slab::MAX_ENTRIES;
use slab::{List, Slab};

const SLOTS: usize = 64;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
const EXACT_SHIFT: u32 = 6;
const SLACK_SHIFT: u32 = 3;
/// One-tick slots of an exact wheel's near ring: `levels[0]` and `levels[1]`.
const NEAR_SLOTS: u64 = 2 * SLOTS as u64;
/// `nonempty` bits of the near ring's two halves (exact wheels).
const NEAR_BITS: u32 = 0b11;
/// How far ahead of `elapsed` an exact wheel's coarse levels count: a coarse slot is
/// cascaded this many ticks before its start, so nothing within it is on a coarse level.
const LOOKAHEAD: u64 = SLOTS as u64;
/// An event cache when no slot is occupied.
const NO_EVENT: u64 = u64::MAX;
/// The tick `now == u64::MAX` maps to: beyond every slot event (those stay below 2^55 since
/// ticks are at least 1 µs), so a wheel advanced to the end of time fires everything.
const END_TICK: u64 = u64::MAX >> 1;

/// A hierarchical timing wheel: many timers, each a deadline and a value, with O(1) insert,
/// cancel and reset, handed back once due.
///
/// Single-owner (`&mut self`): wrap it in a lock to share it.
/// Deadlines are `u64` nanoseconds on the owner's [`levee_core::Clock`]; the wheel never
/// reads a clock itself, the owner passes `now`. See the [crate docs](crate) for an example.
///
/// ```
/// use std::time::Duration;
/// use levee_timer::{Precision, TimingWheel};
///
/// let mut wheel = TimingWheel::builder().tick(Duration::from_millis(1)).mode(Precision::Exact).build()?;
/// wheel.insert(3_000_000, "b").unwrap(); // deadlines are clock readings in nanoseconds
/// wheel.insert(1_000_000, "a").unwrap();
/// assert_eq!(wheel.next_deadline(), Some(1_000_000));
/// let due: Vec<_> = wheel.advance(3_000_000).map(|(_, v)| v).collect();
/// assert_eq!(due, ["a", "b"]);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct TimingWheel<T> {
    slab: Slab<T>,
    /// Exact: `[near ring low half, near ring high half, level 1, level 2, ...]`;
    /// slack: `[level 0, level 1, ...]`.
    levels: Box<[Level]>,
    /// Bit `i` is set while `levels[i]` has an occupied slot.
    nonempty: u32,
    due: List,
    /// Ticks since `start` the wheel has processed.
    elapsed: u64,
    /// The latest `now` passed to `poll_expired` or `advance` (0 before the first): an
    /// earlier `now` is treated as this one.
    latest: u64,
    /// Tick of the near ring's earliest occupied slot (exact), or [`NO_EVENT`].
    near_event: u64,
    /// Tick at which the earliest occupied slot of the other levels fires (slack) or is
    /// cascaded (exact), or [`NO_EVENT`].
    far_event: u64,
    tick: u64,
    start: u64,
    /// `nonempty` bits of the near ring: [`NEAR_BITS`] (exact) or 0 (slack).
    near_bits: u32,
    /// How far ahead of `elapsed` the far levels count: [`LOOKAHEAD`] (exact) or 0.
    lookahead: u64,
    mode: Precision,
    max_pending: usize,
    id: u32,
}

impl<T> Default for TimingWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimingWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimingWheel")
            .field("id", &self.id)
            .field("len", &self.len())
            .field("tick", &Duration::from_nanos(self.tick))
            .field("mode", &self.mode)
            .field("time", &self.time())
            .field("levels", &self.levels.len())
            .finish_non_exhaustive()
    }
}

impl TimingWheel<()> {
    /// Settings for a wheel; [`TimingWheelBuilder::build`] picks the value type, so
    /// `TimingWheel::builder()` needs no type annotation.
    pub fn builder() -> TimingWheelBuilder {
        TimingWheelBuilder::default()
    }
}

impl<T> TimingWheel<T> {
    /// An exact wheel with 1 ms ticks, starting at time 0, bounded only by its index space.
    #[must_use]
    pub fn new() -> Self {
        Self::from_builder(TimingWheelBuilder::default(), MAX_ENTRIES)
    }

    fn from_builder(b: TimingWheelBuilder, max_pending: usize) -> Self {
        let tick = nanos(b.tick);
        // The largest tick any deadline maps to; the levels must reach it.
        let max_tick = match u64::MAX.checked_sub(b.start) {
            Some(0) | None => 1,
            Some(span) => (span - 1) / tick + 1,
        };
        let bits = u64::BITS - max_tick.leading_zeros();
        let (levels, near_bits, lookahead) = match b.mode {
            // The near ring's two halves, then levels 1..=top: an entry goes to level
            // `(bits(distance) - 1) / 6` (`exact_level`), and no distance exceeds `max_tick`.
            Precision::Exact => (2 + ((bits - 1) / EXACT_SHIFT).max(1), NEAR_BITS, LOOKAHEAD),
            // The top level's 64 slots of 8^top ticks must reach `max_tick` from tick 0.
            Precision::Slack => (bits.saturating_sub(6).div_ceil(SLACK_SHIFT) + 1, 0, 0),
        };
        let empty = Level { occupied: 0, slots: [List::EMPTY; SLOTS] };
        Self {
            slab: Slab::new(),
            levels: vec![empty; levels as usize].into_boxed_slice(),
            nonempty: 0,
            due: List::EMPTY,
            elapsed: 0,
            latest: 0,
            near_event: NO_EVENT,
            far_event: NO_EVENT,
            tick,
            start: b.start,
            near_bits,
            lookahead,
            mode: b.mode,
            max_pending,
            id: next_wheel_id(),
        }
    }

    // ----- time conversions -----

    /// The tick a deadline fires at: the first tick boundary at or after it.
    #[inline]
    fn deadline_tick(&self, deadline: u64) -> u64 {
        match deadline.checked_sub(self.start) {
            Some(0) | None => 0,
            Some(span) => (span - 1) / self.tick + 1,
        }
    }

    /// The last tick boundary at or before `now` (which is at or after `start`). `u64::MAX`,
    /// the end of time, is past every slot (even one rounded up beyond the last deadline's
    /// tick), so everything fires.
    #[inline]
    fn now_tick(&self, now: u64) -> u64 {
        if now == u64::MAX { END_TICK } else { (now - self.start) / self.tick }
    }

    /// Records a `now` from the owner and returns the tick the wheel may process up to:
    /// that of the latest `now` so far (time never goes backwards for the wheel), or `None`
    /// while the latest `now` is before `start`, the wheel's first tick boundary, when
    /// nothing is due yet.
    #[inline]
    fn reach(&mut self, now: u64) -> Option<u64> {
        let now = self.latest.max(now);
        self.latest = now;
        self.started().then(|| self.now_tick(now))
    }

    /// True once a `now` at or after `start` was passed: only then may a timer be handed out
    /// (every timer fires at `start` or later).
    #[inline]
    fn started(&self) -> bool {
        self.latest >= self.start
    }

    #[inline]
    fn tick_time(&self, tick: u64) -> u64 {
        self.start.saturating_add(tick.saturating_mul(self.tick))
    }

    // ----- public API -----

    /// Schedules `value` for `deadline` (clock nanoseconds) and returns its key.
    ///
    /// A deadline at or before the wheel's [`time`](Self::time) is due at once: the next
    /// [`poll_expired`](Self::poll_expired) returns it (once a `now` at or after the
    /// builder's `start` was passed: nothing fires before). Every `u64` deadline is accepted.
    ///
    /// # Errors
    /// [`TimerError::Full`] with the value when `max_pending` timers are pending.
    pub fn insert(&mut self, deadline: u64, value: T) -> Result<TimerKey, TimerError<T>> {
        if self.slab.len() >= self.max_pending {
            return Err(TimerError::Full { value, max_pending: self.max_pending });
        }
        let (index, generation) = match self.slab.insert(deadline, value) {
            Ok(ok) => ok,
            Err(value) => return Err(TimerError::Full { value, max_pending: MAX_ENTRIES }),
        };
        self.place(index, self.deadline_tick(deadline));
        Ok(TimerKey { wheel: self.id, index, generation })
    }

    /// Cancels a pending timer and returns its value; `None` for a stale key (fired or
    /// cancelled) or a key from another wheel.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let index = self.check(key).ok()?;
        self.detach(index);
        Some(self.slab.remove(index))
    }

    /// Moves a pending timer to a new deadline (earlier or later); the key stays valid.
    ///
    /// # Errors
    /// [`TimerError::StaleKey`] when the timer already fired or was cancelled,
    /// [`TimerError::ForeignKey`] when the key is from another wheel.
    pub fn reset(&mut self, key: TimerKey, deadline: u64) -> Result<(), TimerError> {
        let index = self.check(key)?;
        self.detach(index);
        self.slab.at_mut(index).deadline = deadline;
        self.place(index, self.deadline_tick(deadline));
        Ok(())
    }

    /// The value of a pending timer.
    #[must_use]
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        let index = self.check(key).ok()?;
        self.slab.at(index).value.as_ref()
    }

    /// Mutable access to the value of a pending timer.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        let index = self.check(key).ok()?;
        self.slab.at_mut(index).value.as_mut()
    }

    /// The deadline of a pending timer.
    #[must_use]
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        let index = self.check(key).ok()?;
        Some(self.slab.at(index).deadline)
    }

    /// True while `key` names a pending timer of this wheel.
    #[must_use]
    pub fn contains(&self, key: TimerKey) -> bool {
        self.check(key).is_ok()
    }

    /// When the wheel next needs attention: `poll_expired` returns nothing for any `now`
    /// before it. `None` when no timer is pending.
    ///
    /// At or before [`time`](Self::time) when timers are already due. Otherwise exactly
    /// when the earliest timer fires, in slack mode and when that is at most 64 ticks after
    /// [`time`](Self::time) in exact mode. For exact timers farther away it is the start of
    /// the earliest occupied slot of a coarse level, a bound the timers in it do not fire
    /// before: a caller that sleeps until then may find nothing due yet and asks again (a
    /// handful of wake-ups over a timer's whole life, never one per tick).
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.due.is_empty() {
            return Some(self.time());
        }
        // A far slot's entries fire no earlier than its start, `lookahead` ticks after the
        // tick it is cascaded at; so the earliest timer within `lookahead` ticks is on the
        // near ring and is reported by its own tick.
        let bound = self.near_event.min(self.far_event.saturating_add(self.lookahead));
        (bound != NO_EVENT).then(|| self.tick_time(bound))
    }

    /// Hands out one due timer (deadline at or before `now`, rounded as the
    /// [`Precision`] says), advancing the wheel as far as needed and no further; `None` when
    /// nothing more is due by `now`. Call it in a loop to drain.
    ///
    /// `now` never goes backwards for the wheel: a `now` before the latest one passed (to
    /// this method or [`advance`](Self::advance)) is treated as the latest. While every
    /// `now` is before the builder's `start`, nothing is due.
    pub fn poll_expired(&mut self, now: u64) -> Option<(TimerKey, T)> {
        self.poll_expired_entry(now).map(|e| (e.key, e.value))
    }

    /// [`poll_expired`](Self::poll_expired) that also returns the timer's deadline (for
    /// example to measure lateness).
    pub fn poll_expired_entry(&mut self, now: u64) -> Option<Expired<T>> {
        let target = self.reach(now)?;
        loop {
            if let Some(index) = self.slab.pop_front(&mut self.due) {
                return Some(self.take_due(index));
            }
            if !self.step(target) {
                return None;
            }
        }
    }

    /// Advances the wheel to `now` and returns the timers due by then, in firing order
    /// (arbitrary among timers of one tick or slot).
    ///
    /// All due timers are found before the first is returned. Timers the iterator has not
    /// returned when it is dropped stay due: the next `poll_expired` or `advance` returns them.
    pub fn advance(&mut self, now: u64) -> Drain<'_, T> {
        if let Some(target) = self.reach(now) {
            while self.step(target) {}
        }
        Drain { wheel: self }
    }

    /// Pending timers (including due ones not yet handed out).
    #[must_use]
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when no timer is pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Timers the wheel can hold without allocating.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    /// Bytes of timer storage currently allocated (entries only; the levels are a fixed
    /// ~0.5 KiB each).
    #[must_use]
    pub fn allocated_bytes(&self) -> usize {
        self.slab.allocated_bytes()
    }

    /// Returns memory to the allocator: releases every storage chunk (1024 entries) that
    /// holds no pending timer, and makes new timers fill the lowest chunks first so a later
    /// compaction can release more. O(capacity); keys stay valid.
    pub fn compact(&mut self) {
        self.slab.compact();
    }

    /// The wheel's current time: the latest tick boundary it has advanced to. It is the
    /// builder's `start` until a later `now` is passed, and never after the latest `now`
    /// once that reached `start`.
    #[must_use]
    pub fn time(&self) -> u64 {
        self.tick_time(self.elapsed)
    }

    /// The tick length in nanoseconds.
    #[must_use]
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// The precision mode.
    #[must_use]
    pub fn precision(&self) -> Precision {
        self.mode
    }

    /// The configured bound on pending timers.
    #[must_use]
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// This wheel's id, as carried by its keys.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    // ----- internals -----

    fn check(&self, key: TimerKey) -> Result<u32, TimerError> {
        if key.wheel != self.id {
            return Err(TimerError::ForeignKey);
        }
        match self.slab.get(key.index) {
            Some(e) if e.generation == key.generation && e.value.is_some() => Ok(key.index),
            _ => Err(TimerError::StaleKey),
        }
    }

    fn take_due(&mut self, index: u32) -> Expired<T> {
        let entry = self.slab.at(index);
        let key = TimerKey { wheel: self.id, index, generation: entry.generation };
        let deadline = entry.deadline;
        Expired { key, deadline, value: self.slab.remove(index) }
    }
}
