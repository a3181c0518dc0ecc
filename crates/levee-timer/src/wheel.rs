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

use std::fmt;
use std::iter::FusedIterator;
use std::time::Duration;

use levee_core::{ConfigError, nanos};

use crate::error::TimerError;
use crate::key::{TimerKey, next_wheel_id};
use crate::slab::{List, MAX_ENTRIES, PLACE_DUE, Slab};

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
/// The shortest tick the builder accepts; keeps every tick count far from `u64` overflow.
pub const MIN_TICK: Duration = Duration::from_micros(1);

/// How precisely a wheel fires: the trade between lateness and work per timer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Fires in the first tick boundary at or after the deadline: never early, less than one
    /// tick late. Timers far away are cascaded to finer levels as time nears (about
    /// `log64(remaining ticks)` moves each).
    #[default]
    Exact,
    /// Fires never early and less than one tick + 8/63 (12.7 %) of the time that remained
    /// when the timer was inserted (or reset) late. Each timer is placed once and never
    /// moved, and timers that are close together fire together: cheaper for timeouts that
    /// are usually cancelled before they fire.
    Slack,
}

/// Settings of a [`TimingWheel`]; [`build`](Self::build) validates them.
///
/// ```
/// use std::time::Duration;
/// use levee_timer::{Precision, TimingWheel};
///
/// let wheel: TimingWheel<u64> = TimingWheel::builder()
///     .tick(Duration::from_millis(10))
///     .mode(Precision::Slack)
///     .max_pending(1_000_000)
///     .start(5_000_000_000)
///     .build()
///     .unwrap();
/// assert_eq!(wheel.time(), 5_000_000_000);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    tick: Duration,
    mode: Precision,
    max_pending: Option<usize>,
    start: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Self { tick: Duration::from_millis(1), mode: Precision::Exact, max_pending: None, start: 0 }
    }
}

impl Builder {
    /// The granularity of time (default 1 ms, at least [`MIN_TICK`]). Exact timers fire less
    /// than one tick late.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Exact or slack firing (default [`Precision::Exact`]).
    pub fn mode(mut self, mode: Precision) -> Self {
        self.mode = mode;
        self
    }

    /// The most timers pending at once (default: about 4 billion, the index space); an
    /// insert beyond it fails with [`TimerError::Full`].
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = Some(max);
        self
    }

    /// The clock reading the wheel's ticks count from (default 0); usually the owner's
    /// `clock.now()` at creation. It is the first tick boundary: deadlines before it fire at
    /// it, once a `now` at or after it is passed (nothing fires before).
    pub fn start(mut self, start: u64) -> Self {
        self.start = start;
        self
    }

    pub(crate) fn max_pending_setting(&self) -> Option<usize> {
        self.max_pending
    }

    /// Builds the wheel.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `tick` when it is shorter than [`MIN_TICK`], or `max_pending`
    /// when it is zero or more than the wheel can index (`u32::MAX - 1`).
    pub fn build<T>(self) -> Result<TimingWheel<T>, ConfigError> {
        if self.tick < MIN_TICK {
            return Err(ConfigError::new("tick", "must be at least 1 µs"));
        }
        let max_pending = match self.max_pending {
            None => MAX_ENTRIES,
            Some(0) => return Err(ConfigError::new("max_pending", "must be greater than zero")),
            Some(n) if n > MAX_ENTRIES => {
                return Err(ConfigError::new(
                    "max_pending",
                    format!("must be at most {MAX_ENTRIES}, got {n}"),
                ));
            }
            Some(n) => n,
        };
        Ok(TimingWheel::from_builder(self, max_pending))
    }
}

/// The 64 slots of one level and the bitmap of the occupied ones.
#[derive(Debug, Clone)]
struct Level {
    occupied: u64,
    slots: [List; SLOTS],
}

/// A due timer handed out by [`TimingWheel::poll_expired_entry`] (with a [`TimerKey`]) or
/// [`ShardedWheel::poll_expired`](crate::ShardedWheel::poll_expired) (with a
/// [`TimerHandle`](crate::TimerHandle)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<T, K = TimerKey> {
    /// The key or handle the timer had (now stale).
    pub key: K,
    /// The deadline it was set for.
    pub deadline: u64,
    /// Its value.
    pub value: T,
}

/// A hierarchical timing wheel: many timers, each a deadline and a value, with O(1) insert,
/// cancel and reset, handed back once due.
///
/// Single-owner (`&mut self`): wrap it in a lock to share it.
/// Deadlines are `u64` nanoseconds on the owner's [`levee_core::Clock`]; the wheel never
/// reads a clock itself, the owner passes `now`. See the [crate docs](crate) for an example.
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
    /// Settings for a wheel; [`Builder::build`] picks the value type, so
    /// `TimingWheel::builder()` needs no type annotation.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<T> TimingWheel<T> {
    /// An exact wheel with 1 ms ticks, starting at time 0, bounded only by its index space.
    #[must_use]
    pub fn new() -> Self {
        Self::from_builder(Builder::default(), MAX_ENTRIES)
    }

    fn from_builder(b: Builder, max_pending: usize) -> Self {
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

    /// Puts an entry that is on no list where its tick says: the due list, or a slot.
    #[inline]
    fn place(&mut self, index: u32, tick: u64) {
        let elapsed = self.elapsed;
        if tick <= elapsed {
            self.slab.push_back(&mut self.due, index, PLACE_DUE);
            return;
        }
        let (i, slot) = match self.mode {
            Precision::Exact if tick - elapsed < NEAR_SLOTS => {
                // The near ring: slot `tick % 128`, in half `levels[slot / 64]`.
                let ring = (tick % NEAR_SLOTS) as usize;
                self.near_event = self.near_event.min(tick);
                (ring / SLOTS, ring % SLOTS)
            }
            Precision::Exact => {
                let level = self.exact_level(tick);
                let shift = level * EXACT_SHIFT;
                let k = tick >> shift;
                self.far_event = self.far_event.min((k << shift) - LOOKAHEAD);
                (level as usize + 1, (k & SLOT_MASK) as usize)
            }
            Precision::Slack => {
                let (level, k) = self.slack_level(tick);
                self.far_event = self.far_event.min(k << (level as u32 * SLACK_SHIFT));
                (level, (k & SLOT_MASK) as usize)
            }
        };
        let lv = &mut self.levels[i];
        self.slab.push_back(&mut lv.slots[slot], index, (i * SLOTS + slot) as u32);
        lv.occupied |= 1 << slot;
        self.nonempty |= 1 << i;
    }

    /// The coarse level (1 or more) for an exact entry at least [`NEAR_SLOTS`] ticks ahead:
    /// one whose ring, counted from the slot of `v = elapsed + LOOKAHEAD`, reaches its tick.
    ///
    /// With `d = tick - v` (at least 64) the level is `l = (bits(d) - 1) / 6`, so
    /// `64^l <= d < 64^(l+1)`: in slots of `64^l` ticks, `tick` lies `floor(d / 64^l)` or
    /// one more slots after `v`'s, that is 1 to 64. `d` is below the largest tick, which
    /// `from_builder` sized the levels for, so `l` is never beyond the top level. No branch:
    /// random deadlines would mispredict one.
    #[inline]
    fn exact_level(&self, tick: u64) -> u32 {
        let v = self.elapsed + LOOKAHEAD;
        let level = (u64::BITS - 1 - (tick - v).leading_zeros()) / EXACT_SHIFT;
        debug_assert!(level >= 1 && (level as usize) < self.levels.len() - 1, "level {level}");
        debug_assert!(
            (1..=SLOTS as u64)
                .contains(&((tick >> (level * EXACT_SHIFT)) - (v >> (level * EXACT_SHIFT)))),
            "beyond the ring"
        );
        level
    }

    /// The finest slack level whose 64 slots reach `tick` (> elapsed) after rounding it up to
    /// the level's slot size, and the rounded tick in that level's slot units.
    #[inline]
    fn slack_level(&self, tick: u64) -> (usize, u64) {
        let elapsed = self.elapsed;
        // `tick` rounded up to slots of `1 << shift` ticks (ticks stay below 2^55: no overflow).
        let rounded = |shift: u32| (tick + ((1 << shift) - 1)) >> shift;
        let delta = tick - elapsed;
        // With `delta <= 2^bits`: the level below `guess` cannot reach (64 slots of
        // 8^(guess-1) <= 2^(bits-3) ticks < delta), and the level above it always does
        // (slots of at least 2^(bits-5) ticks: delta spans at most 32 of them, plus 2 for
        // rounding). So the answer is `guess` or the next level. The top level reaches every
        // tick (`from_builder` sizes the levels so), so neither is beyond it. The level is
        // computed by arithmetic on the condition, not by choosing between two results: the
        // compiler may turn a choice into a branch, which random deadlines (split between two
        // levels) mispredict.
        let bits = u64::BITS - (delta - 1).leading_zeros();
        let guess = bits.saturating_sub(6) / SLACK_SHIFT;
        let shift = guess * SLACK_SHIFT;
        let fits = rounded(shift) - (elapsed >> shift) <= SLOTS as u64;
        let level = guess + u32::from(!fits);
        let k = rounded(level * SLACK_SHIFT);
        debug_assert!((level as usize) < self.levels.len(), "tick beyond the top level");
        debug_assert!(k - (elapsed >> (level * SLACK_SHIFT)) <= SLOTS as u64, "too few");
        (level as usize, k)
    }

    /// Removes an entry from whichever list holds it, keeping bitmaps and event caches right.
    ///
    /// An entry's `place` names the slot it was put in, but firing a slot splices the whole
    /// list onto the due list without relabelling, so an entry whose `place` is a slot may
    /// in fact be on the due list. That is harmless: unlinking only touches a list's
    /// head/tail when the entry is that list's first/last element, and an entry that is the
    /// due list's first or last is recognised by comparing with `due.head`/`due.tail`. An
    /// entry in the middle of the due list is unlinked through its neighbours alone, and the
    /// slot it names is merely re-checked for emptiness, which it already reflects.
    fn detach(&mut self, index: u32) {
        let place = self.slab.at(index).place;
        if place == PLACE_DUE || self.due.head == index || self.due.tail == index {
            self.slab.unlink(&mut self.due, index);
            return;
        }
        let (i, slot) = (place as usize / SLOTS, place as usize % SLOTS);
        let lv = &mut self.levels[i];
        self.slab.unlink(&mut lv.slots[slot], index);
        if lv.slots[slot].is_empty() && lv.occupied & (1 << slot) != 0 {
            lv.occupied &= !(1 << slot);
            if lv.occupied == 0 {
                self.nonempty &= !(1 << i);
            }
            if self.near_bits & (1 << i) != 0 {
                self.near_event = self.near_ring_event();
            } else {
                self.far_event = self.far_levels_event();
            }
        }
    }

    /// The tick of the near ring's earliest occupied slot ([`NO_EVENT`] when it is empty or
    /// the wheel has none).
    #[inline]
    fn near_ring_event(&self) -> u64 {
        if self.nonempty & self.near_bits == 0 {
            return NO_EVENT;
        }
        let occupied =
            u128::from(self.levels[0].occupied) | u128::from(self.levels[1].occupied) << 64;
        let current = (self.elapsed % NEAR_SLOTS) as u32;
        // Occupied slots lie 1..=127 ticks after the current one.
        let distance = occupied.rotate_right((current + 1) % 128).trailing_zeros() + 1;
        self.elapsed + u64::from(distance)
    }

    /// The shift of `levels[i]`, a level other than the near ring: its slots span
    /// `2^shift` ticks.
    #[inline]
    fn far_shift(&self, i: usize) -> u32 {
        match self.mode {
            Precision::Exact => (i as u32 - 1) * EXACT_SHIFT,
            Precision::Slack => i as u32 * SLACK_SHIFT,
        }
    }

    /// The tick at which far level `levels[i]`'s earliest occupied slot fires (slack) or is
    /// cascaded (exact: `lookahead` ticks before it starts).
    #[inline]
    fn far_level_event(&self, i: usize) -> u64 {
        let occupied = self.levels[i].occupied;
        debug_assert_ne!(occupied, 0);
        let shift = self.far_shift(i);
        let q = (self.elapsed + self.lookahead) >> shift;
        let current = (q & SLOT_MASK) as u32;
        // Occupied slots lie 1..=64 slots after the current one.
        let distance = u64::from(occupied.rotate_right((current + 1) % 64).trailing_zeros()) + 1;
        ((q + distance) << shift) - self.lookahead
    }

    /// The earliest [`far_level_event`](Self::far_level_event) ([`NO_EVENT`] when none).
    fn far_levels_event(&self) -> u64 {
        let mut next = NO_EVENT;
        let mut bits = self.nonempty & !self.near_bits;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            next = next.min(self.far_level_event(i));
        }
        next
    }

    /// Processes the next slot event if it is at or before `target`; otherwise moves time to
    /// `target`. Returns whether an event was processed.
    fn step(&mut self, target: u64) -> bool {
        let (near, far) = (self.near_event, self.far_event);
        let event = near.min(far);
        if event > target {
            self.elapsed = self.elapsed.max(target);
            return false;
        }
        self.elapsed = event;
        if near == event {
            // The near ring's slot for tick `event`: its entries are due.
            let ring = (event % NEAR_SLOTS) as usize;
            self.fire_slot(ring / SLOTS, ring % SLOTS);
        }
        if far == event {
            // Every far slot whose event is `event`: on each far level where `v = event +
            // lookahead` is a slot boundary, the slot starting at `v` (entries lie at least
            // one slot after the old `elapsed + lookahead`, so that slot's event is exactly
            // `event`). Cascaded entries go to finer levels, which this loop has passed, and
            // lie after `v`, so none lands in a slot being fired.
            let v = event + self.lookahead;
            let mut bits = self.nonempty & !self.near_bits;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let shift = self.far_shift(i);
                if v & ((1 << shift) - 1) != 0 {
                    break; // not a boundary here, nor on any coarser level
                }
                let slot = ((v >> shift) & SLOT_MASK) as usize;
                if self.levels[i].occupied & (1 << slot) != 0 {
                    self.fire_slot(i, slot);
                }
            }
            self.far_event = self.far_levels_event();
        }
        // Cascading lowered `near_event` to any entry it placed there; firing the near slot
        // emptied the earliest one.
        if near == event {
            self.near_event = self.near_ring_event();
        }
        true
    }

    /// Empties `levels[i]`'s slot whose time has come: onto the due list, or (exact, a
    /// coarse level) cascaded to finer levels.
    fn fire_slot(&mut self, i: usize, slot: usize) {
        let lv = &mut self.levels[i];
        let mut list = std::mem::replace(&mut lv.slots[slot], List::EMPTY);
        lv.occupied &= !(1 << slot);
        if lv.occupied == 0 {
            self.nonempty &= !(1 << i);
        }
        if self.near_bits & (1 << i) != 0 || self.mode == Precision::Slack {
            self.slab.append(&mut self.due, &mut list);
        } else {
            while let Some(index) = self.slab.pop_front(&mut list) {
                let tick = self.deadline_tick(self.slab.at(index).deadline);
                self.place(index, tick);
            }
        }
    }
}

#[cfg(any(test, fuzzing))]
impl<T> TimingWheel<T> {
    /// Walks every list and checks the wheel's invariants; panics on the first violation.
    /// O(len + levels): for tests and the fuzzer.
    pub(crate) fn check_invariants(&self) {
        use crate::slab::NIL;
        let limit = self.slab.len() + 1;
        // Walks a list, checking links both ways; returns its members.
        let walk = |list: &List| -> Vec<u32> {
            let mut members = Vec::new();
            let (mut prev, mut at) = (NIL, list.head);
            while at != NIL {
                assert!(members.len() < limit, "list cycle");
                let e = self.slab.at(at);
                assert!(e.value.is_some(), "free entry {at} on a list");
                if prev != NIL {
                    // A head's `prev` is stale by design.
                    assert_eq!(e.prev, prev, "broken prev link at {at}");
                }
                members.push(at);
                prev = at;
                at = e.next;
            }
            assert_eq!(list.tail, prev, "tail is not the last entry");
            members
        };
        let mut seen = 0;
        for index in walk(&self.due) {
            let e = self.slab.at(index);
            let tick = self.deadline_tick(e.deadline);
            assert!(tick <= self.elapsed, "due entry {index} (tick {tick}) after {}", self.elapsed);
            seen += 1;
        }
        let mut nonempty = 0u32;
        let elapsed = self.elapsed;
        for (i, lv) in self.levels.iter().enumerate() {
            if lv.occupied != 0 {
                nonempty |= 1 << i;
            }
            for (slot, list) in lv.slots.iter().enumerate() {
                let members = walk(list);
                assert_eq!(lv.occupied & (1 << slot) != 0, !members.is_empty(), "bitmap");
                for index in members {
                    let e = self.slab.at(index);
                    assert_eq!(e.place as usize, i * SLOTS + slot, "entry {index} mislabelled");
                    let tick = self.deadline_tick(e.deadline);
                    if self.near_bits & (1 << i) != 0 {
                        // Near ring: 1..=127 ticks ahead, in slot `tick % 128`.
                        assert!(tick > elapsed, "entry {index} overdue on the near ring");
                        assert!(tick - elapsed < NEAR_SLOTS, "entry {index} beyond the near ring");
                        assert_eq!(tick % NEAR_SLOTS, (i * SLOTS + slot) as u64, "near slot");
                    } else {
                        // Far level: its slot (slack: its tick rounded up) is 1..=64 slots
                        // after that of `elapsed + lookahead`, so its event is ahead.
                        let shift = self.far_shift(i);
                        let k = match self.mode {
                            Precision::Exact => tick >> shift,
                            Precision::Slack => tick.div_ceil(1 << shift),
                        };
                        let q = (elapsed + self.lookahead) >> shift;
                        assert!(k > q && k - q <= SLOTS as u64, "entry {index} off the ring");
                        assert_eq!(
                            (k & SLOT_MASK) as usize,
                            slot,
                            "entry {index} in the wrong slot"
                        );
                        // Exact: nothing within the lookahead is on a coarse level.
                        let exact = self.mode == Precision::Exact;
                        assert!(!exact || tick > elapsed + LOOKAHEAD, "entry {index} too near");
                    }
                    seen += 1;
                }
            }
        }
        assert_eq!(nonempty, self.nonempty, "nonempty level bits");
        assert_eq!(self.near_ring_event(), self.near_event, "cached near event");
        assert_eq!(self.far_levels_event(), self.far_event, "cached far event");
        assert_eq!(seen, self.slab.len(), "entries on no list");
    }
}

/// The due timers of one [`TimingWheel::advance`], handed out in firing order.
///
/// Timers not taken when it is dropped stay due in the wheel.
#[derive(Debug)]
pub struct Drain<'a, T> {
    wheel: &'a mut TimingWheel<T>,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = (TimerKey, T);

    fn next(&mut self) -> Option<Self::Item> {
        let wheel = &mut *self.wheel;
        if !wheel.started() {
            return None; // timers due at `start` wait for a `now` that reaches it
        }
        let index = wheel.slab.pop_front(&mut wheel.due)?;
        let e = wheel.take_due(index);
        Some((e.key, e.value))
    }
}

impl<T> FusedIterator for Drain<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn drain<T>(w: &mut TimingWheel<T>, now: u64) -> Vec<T> {
        w.advance(now).map(|(_, v)| v).collect()
    }

    #[test]
    fn fires_at_the_first_tick_boundary_after_the_deadline() {
        let mut w = TimingWheel::new();
        w.insert(5 * MS, "five").unwrap();
        w.insert(5 * MS + 1, "five+1ns").unwrap();
        assert!(drain(&mut w, 5 * MS - 1).is_empty());
        assert_eq!(drain(&mut w, 5 * MS), vec!["five"]);
        assert!(drain(&mut w, 6 * MS - 1).is_empty());
        assert_eq!(drain(&mut w, 6 * MS), vec!["five+1ns"]);
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadlines_fire_on_the_next_poll() {
        let mut w = TimingWheel::builder().start(100 * MS).build().unwrap();
        w.insert(0, 'a').unwrap();
        w.insert(100 * MS, 'b').unwrap();
        assert_eq!(w.next_deadline(), Some(100 * MS));
        assert_eq!(w.poll_expired(100 * MS).map(|(_, v)| v), Some('a'));
        assert_eq!(w.poll_expired(100 * MS).map(|(_, v)| v), Some('b'));
        assert_eq!(w.poll_expired(100 * MS), None);
        w.insert(50 * MS, 'c').unwrap();
        assert_eq!(w.poll_expired(0).map(|(_, v)| v), Some('c'), "a stale now is the latest");
    }

    #[test]
    fn a_now_before_start_hands_out_nothing_early() {
        // Regression: a `now` before `start` used to hand out every timer due at or before
        // `start`, including ones whose deadline was still ahead of that `now`.
        let mut w = TimingWheel::builder().start(100 * MS).build().unwrap();
        w.insert(50 * MS, "before start").unwrap();
        w.insert(100 * MS, "at start").unwrap();
        w.insert(30 * MS, "long past").unwrap();
        assert_eq!(w.poll_expired(40 * MS), None, "50 ms is still ahead of 40 ms");
        assert!(drain(&mut w, 99 * MS).is_empty(), "the wheel's first tick boundary is start");
        assert_eq!(w.next_deadline(), Some(100 * MS));
        let mut due = drain(&mut w, 100 * MS);
        due.sort_unstable();
        assert_eq!(due, ["at start", "before start", "long past"]);
    }

    #[test]
    fn an_earlier_now_is_treated_as_the_latest() {
        // Regression: `poll_expired` advances lazily, so a `now` earlier than the previous
        // one used to hide timers the previous `now` had made due.
        let mut w = TimingWheel::new();
        w.insert(10 * MS, 1).unwrap();
        w.insert(20 * MS, 2).unwrap();
        w.insert(40 * MS, 3).unwrap();
        assert_eq!(w.poll_expired(30 * MS).map(|(_, v)| v), Some(1));
        assert_eq!(w.poll_expired(5 * MS).map(|(_, v)| v), Some(2), "due by 30 ms");
        assert_eq!(w.poll_expired(5 * MS), None, "40 ms is still ahead");
        assert!(drain(&mut w, 0).is_empty());
        assert_eq!(drain(&mut w, 40 * MS), vec![3]);
    }

    #[test]
    fn next_deadline_is_exact_within_64_ticks() {
        // Regression: a timer two ticks away but across a 64-tick boundary was reported at
        // that boundary (its level-1 slot) instead of its own tick.
        let mut w = TimingWheel::new();
        assert!(drain(&mut w, 63 * MS).is_empty());
        w.insert(65 * MS, "a").unwrap();
        assert_eq!(w.next_deadline(), Some(65 * MS));
        // Far timers are placed before time moves close to them; their slot is cascaded in
        // time for the report to be exact once they are within 64 ticks.
        let mut w = TimingWheel::new();
        for d in [4_097 * MS, 4_100 * MS, 300_000 * MS + 5] {
            w.insert(d, d).unwrap();
        }
        assert!(drain(&mut w, 4_000 * MS).is_empty());
        assert!(w.next_deadline().unwrap() <= 4_097 * MS, "97 ticks away: a bound");
        for now in [4_033 * MS, 4_050 * MS, 4_096 * MS] {
            assert!(drain(&mut w, now).is_empty());
            assert_eq!(w.next_deadline(), Some(4_097 * MS), "at {now}");
        }
        assert_eq!(drain(&mut w, 4_097 * MS), vec![4_097 * MS]);
        assert_eq!(w.next_deadline(), Some(4_100 * MS));
        assert_eq!(drain(&mut w, 4_100 * MS), vec![4_100 * MS]);
        let fire = 300_001 * MS;
        assert!(drain(&mut w, fire - 64 * MS).is_empty());
        assert_eq!(w.next_deadline(), Some(fire));
        assert_eq!(drain(&mut w, fire), vec![300_000 * MS + 5]);
    }

    #[test]
    fn far_deadlines_cascade_and_fire_exactly() {
        let mut w = TimingWheel::new();
        let far = [64 * MS, 4096 * MS + 3 * MS, 3_600_000 * MS + 7, u64::MAX / 2, u64::MAX];
        for &d in &far {
            w.insert(d, d).unwrap();
        }
        for &d in &far {
            assert!(drain(&mut w, d - 1).is_empty(), "nothing before {d}");
            let fire = d.div_ceil(MS).saturating_mul(MS);
            let got = drain(&mut w, fire);
            assert_eq!(got, vec![d], "{d} fires at {fire}");
        }
    }

    #[test]
    fn next_deadline_tracks_the_earliest_slot() {
        let mut w = TimingWheel::new();
        assert_eq!(w.next_deadline(), None);
        let a = w.insert(10 * MS, 1).unwrap();
        let b = w.insert(3 * MS + 1, 2).unwrap();
        assert_eq!(w.next_deadline(), Some(4 * MS));
        w.cancel(b);
        assert_eq!(w.next_deadline(), Some(10 * MS));
        w.cancel(a);
        assert_eq!(w.next_deadline(), None);
        // A far exact timer: the first wake-up is a cascade, then closer, never late.
        w.insert(100_000 * MS, 3).unwrap();
        let mut wakeups = 0;
        let mut got = None;
        while got.is_none() {
            let at = w.next_deadline().unwrap();
            assert!(at <= 100_000 * MS);
            wakeups += 1;
            got = w.poll_expired(at);
        }
        assert_eq!(got.map(|(_, v)| v), Some(3));
        assert!(wakeups <= 4, "{wakeups} wake-ups");
    }

    #[test]
    fn cancel_reset_and_stale_keys() {
        let mut w = TimingWheel::new();
        let a = w.insert(10 * MS, "a").unwrap();
        let b = w.insert(20 * MS, "b").unwrap();
        assert_eq!(w.get(a), Some(&"a"));
        assert_eq!(w.deadline(b), Some(20 * MS));
        assert_eq!(w.cancel(a), Some("a"));
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.reset(a, 5), Err(TimerError::StaleKey));
        // A new timer reuses a's storage; a's key still does not reach it.
        let c = w.insert(30 * MS, "c").unwrap();
        assert_eq!(c.index, a.index);
        assert_eq!(w.get(a), None);
        w.reset(b, MS).unwrap();
        assert_eq!(drain(&mut w, MS), vec!["b"]);
        assert_eq!(w.reset(b, MS), Err(TimerError::StaleKey), "fired keys are stale");
        let mut other: TimingWheel<&str> = TimingWheel::new();
        assert_eq!(other.cancel(c), None);
        assert_eq!(other.reset(c, 0), Err(TimerError::ForeignKey));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn cancel_of_spliced_due_entries_keeps_lists_whole() {
        // Three timers in one slot are spliced onto the due list; cancel the middle, the
        // last and the first, interleaved with polls and new inserts into the same slot index.
        for victim in 0..3 {
            let mut w = TimingWheel::new();
            let keys: Vec<_> = (0..3).map(|i| w.insert(2 * MS, i).unwrap()).collect();
            w.insert(MS, 100).unwrap(); // due earlier, stays in front on the due list
            let _ = w.advance(2 * MS); // dropped unread: all four are due
            assert_eq!(w.cancel(keys[victim]), Some(victim));
            w.insert(66 * MS, 200).unwrap(); // same level-0 slot index as 2 ms
            let mut rest: Vec<_> = w.advance(2 * MS).map(|(_, v)| v).collect();
            rest.sort_unstable();
            let mut want: Vec<_> = (0..3).filter(|&i| i != victim).collect();
            want.push(100);
            assert_eq!(rest, want);
            assert_eq!(drain(&mut w, 66 * MS), vec![200]);
        }
    }

    #[test]
    fn slack_is_never_early_and_within_its_bound() {
        let mut w = TimingWheel::builder().mode(Precision::Slack).build().unwrap();
        let deadlines: Vec<u64> =
            (0..2000).map(|i| (i * i * 7919 + 1) % (3_600_000 * MS)).collect();
        for &d in &deadlines {
            w.insert(d, d).unwrap();
        }
        let mut now = 0;
        let mut fired = 0;
        while let Some(at) = w.next_deadline() {
            now = at.max(now);
            for (_, d) in w.advance(now) {
                assert!(d <= now, "{d} fired early at {now}");
                let bound = MS + (d + MS) * 8 / 63;
                assert!(now - d <= bound, "{d} fired at {now}, {} late > {bound}", now - d);
                fired += 1;
            }
        }
        assert_eq!(fired, deadlines.len());
    }

    #[test]
    fn slack_groups_timers_into_few_events() {
        let mut w = TimingWheel::builder().mode(Precision::Slack).build().unwrap();
        for i in 0..10_000u64 {
            w.insert(1_800_000 * MS + i * 10 * MS, i).unwrap(); // 30 min + up to 100 s
        }
        let mut wakeups = 0;
        while let Some(at) = w.next_deadline() {
            wakeups += 1;
            assert!(w.advance(at).count() > 0, "every slack wake-up fires something");
        }
        assert!(wakeups < 50, "{wakeups} wake-ups for 100 s of timers");
    }

    #[test]
    fn slack_level_is_the_finest_that_reaches() {
        for tick_len in [MIN_TICK, Duration::from_millis(1), Duration::from_secs(1)] {
            let mut w: TimingWheel<()> =
                TimingWheel::builder().mode(Precision::Slack).tick(tick_len).build().unwrap();
            let top = w.levels.len() - 1;
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            for i in 0..200_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Every tick the wheel can be asked for: up to that of `u64::MAX`.
                let max_tick = w.deadline_tick(u64::MAX);
                w.elapsed = if i % 2 == 0 { x >> 40 } else { x >> (x % 64) } % max_tick;
                let delta = 1 + ((x >> 3) >> (x % 61)) % (max_tick - w.elapsed);
                let tick = w.elapsed + delta;
                let reach = |level: usize| {
                    let shift = level as u32 * SLACK_SHIFT;
                    tick.div_ceil(1 << shift) - (w.elapsed >> shift) <= SLOTS as u64
                };
                let want = (0..=top).find(|&l| reach(l)).unwrap_or(top);
                let (level, k) = w.slack_level(tick);
                assert_eq!(level, want, "tick {tick} elapsed {}", w.elapsed);
                assert_eq!(k, tick.div_ceil(1 << (level as u32 * SLACK_SHIFT)));
            }
        }
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let e = TimingWheel::builder().tick(Duration::from_nanos(999)).build::<()>().unwrap_err();
        assert_eq!(e.setting, "tick");
        let e = TimingWheel::builder().max_pending(0).build::<()>().unwrap_err();
        assert_eq!(e.setting, "max_pending");
        let e = TimingWheel::builder().max_pending(usize::MAX).build::<()>().unwrap_err();
        assert_eq!(e.setting, "max_pending");
    }

    #[test]
    fn full_hands_the_value_back() {
        let mut w = TimingWheel::builder().max_pending(2).build().unwrap();
        let a = w.insert(1, String::from("a")).unwrap();
        w.insert(2, String::from("b")).unwrap();
        let err = w.insert(3, String::from("c")).unwrap_err();
        assert_eq!(err.to_string(), "timer wheel is full: 2 timers pending (max_pending)");
        assert_eq!(err.into_value().as_deref(), Some("c"));
        w.cancel(a);
        assert!(w.insert(3, String::from("c")).is_ok());
    }

    #[test]
    fn level_counts_cover_the_whole_u64_range() {
        let exact: TimingWheel<()> = TimingWheel::new();
        // The near ring's two halves and levels 1..=7: distances below 2^45 ms-ticks.
        assert_eq!(exact.levels.len(), 9);
        let mut slack: TimingWheel<()> =
            TimingWheel::builder().mode(Precision::Slack).tick(MIN_TICK).build().unwrap();
        slack.insert(u64::MAX, ()).unwrap();
        slack.insert(u64::MAX - 1, ()).unwrap();
        assert_eq!(slack.advance(u64::MAX - 2).count(), 0);
        assert_eq!(slack.advance(u64::MAX).count(), 2);
    }

    #[test]
    fn invariants_hold_through_random_operations() {
        for mode in [Precision::Exact, Precision::Slack] {
            let mut w = TimingWheel::builder().mode(mode).build().unwrap();
            let mut x = 88_172_645_463_325_252u64;
            let mut rand = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let (mut now, mut keys) = (0u64, Vec::new());
            for _ in 0..4_000 {
                match rand() % 8 {
                    0..=2 => {
                        let d =
                            now + rand() % [100 * MS, 10_000 * MS, 1 << 50][rand() as usize % 3];
                        keys.push(w.insert(d, ()).unwrap());
                    }
                    3 if !keys.is_empty() => {
                        let k = keys[rand() as usize % keys.len()];
                        w.cancel(k);
                    }
                    4 if !keys.is_empty() => {
                        let k = keys[rand() as usize % keys.len()];
                        let _ = w.reset(k, now + rand() % (1000 * MS));
                    }
                    5 => {
                        now += rand() % (50 * MS);
                        let take = rand() as usize % 4;
                        let _ = w.advance(now).take(take).count();
                    }
                    6 => {
                        now += rand() % (5 * MS);
                        w.poll_expired(now);
                    }
                    _ => {
                        if rand() % 64 == 0 {
                            w.compact();
                        }
                    }
                }
                w.check_invariants();
            }
        }
    }

    #[test]
    fn compact_returns_memory_and_keeps_keys() {
        let mut w = TimingWheel::new();
        let keys: Vec<_> = (0..10_000u64).map(|i| w.insert(i * MS, i).unwrap()).collect();
        let full = w.allocated_bytes();
        for k in &keys[..9_000] {
            w.cancel(*k);
        }
        w.compact();
        assert!(w.allocated_bytes() <= full / 4, "{} of {full} bytes kept", w.allocated_bytes());
        for (i, k) in keys.iter().enumerate().skip(9_000) {
            assert_eq!(w.get(*k), Some(&(i as u64)));
        }
        assert_eq!(w.advance(u64::MAX).count(), 1_000);
        w.compact();
        assert_eq!(w.allocated_bytes(), 0);
    }
}
