//! Model test: random insert / cancel / reset / poll / advance / compact sequences run against
//! a `TimingWheel` and a `BTreeMap<(deadline, seq), _>` model.
//!
//! Checked after every step: each timer fires exactly once and never early; after a full
//! `advance(now)` nothing is overdue beyond the mode's lateness bound; cancel returns the
//! model's value exactly when the timer is pending; stale and foreign keys are refused; `len`
//! matches.
//!
//! The clock may start before the wheel's `start`, and polls may pass a stale `now` (earlier
//! than one passed before): the wheel treats a stale `now` as the latest, and hands out
//! nothing until a `now` reaches `start`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use levee_timer::{Precision, TimerError, TimerKey, TimingWheel};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum When {
    /// `now` minus this many nanoseconds (a past deadline).
    Past(u64),
    /// Within the next few ticks.
    Near(u64),
    /// Within the next hour.
    Hour(u64),
    /// Anywhere up to `u64::MAX`.
    Far(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Insert(When),
    Cancel(usize),
    Reset(usize, When),
    Get(usize),
    /// Move time by this many nanoseconds, then drain everything due.
    Advance(u64),
    /// Move time, then take at most one due timer.
    PollOne(u64),
    /// Move time and advance, but take only this many due timers (the rest stay due).
    AdvancePartial(u64, usize),
    /// Drain with a stale `now`: this many nanoseconds before the clock (it may be before
    /// the latest `now` passed, and before `start`).
    AdvanceStale(u64),
    /// Take at most one due timer with a stale `now`.
    PollStale(u64),
    /// Cancel a timer that is pending (if any), picked by index.
    CancelPending(usize),
    /// Reset a timer that is pending (if any).
    ResetPending(usize, When),
    Compact,
    ForeignKey(usize),
}

const HOUR: u64 = 3_600_000_000_000;

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        1 => (0..HOUR).prop_map(When::Past),
        4 => (0..200_000_000u64).prop_map(When::Near),
        3 => (0..HOUR).prop_map(When::Hour),
        1 => any::<u64>().prop_map(When::Far),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => when().prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Cancel),
        2 => (any::<usize>(), when()).prop_map(|(i, w)| Op::Reset(i, w)),
        1 => any::<usize>().prop_map(Op::Get),
        3 => prop_oneof![0..5_000_000u64, 0..2 * HOUR, Just(u64::MAX)].prop_map(Op::Advance),
        2 => (0..50_000_000u64).prop_map(Op::PollOne),
        2 => (0..100_000_000u64, 0..4usize).prop_map(|(dt, n)| Op::AdvancePartial(dt, n)),
        1 => prop_oneof![0..100_000_000u64, 0..2 * HOUR].prop_map(Op::AdvanceStale),
        1 => prop_oneof![0..100_000_000u64, 0..2 * HOUR].prop_map(Op::PollStale),
        3 => any::<usize>().prop_map(Op::CancelPending),
        2 => (any::<usize>(), when()).prop_map(|(i, w)| Op::ResetPending(i, w)),
        1 => Just(Op::Compact),
        1 => any::<usize>().prop_map(Op::ForeignKey),
    ]
}

/// Mode, tick, start, and how long before `start` the clock begins.
fn config() -> impl Strategy<Value = (Precision, u64, u64, u64)> {
    (
        prop_oneof![Just(Precision::Exact), Just(Precision::Slack)],
        prop_oneof![Just(1_000u64), Just(1_000_000), Just(7_300_000), 1_000..50_000_000u64],
        prop_oneof![Just(0u64), 0..HOUR],
        prop_oneof![2 => Just(0u64), 1 => 0..200_000_000u64, 1 => 0..HOUR],
    )
}

struct Pending {
    key: TimerKey,
    /// The wheel's time when the timer was inserted or last reset (slack's bound uses it).
    placed_at: u64,
}

struct Harness {
    wheel: TimingWheel<u64>,
    /// (deadline, seq) -> pending timer.
    model: BTreeMap<(u64, u64), Pending>,
    deadline_of: HashMap<u64, u64>,
    /// Every key ever issued, with its seq; picked by index for cancel/reset/get.
    keys: Vec<(TimerKey, u64)>,
    /// The clock.
    now: u64,
    /// The latest `now` passed to the wheel (0 before the first), the wheel's notion of
    /// the present: a stale `now` counts as this.
    seen: u64,
    next_seq: u64,
    tick: u64,
    start: u64,
    mode: Precision,
}

impl Harness {
    fn deadline(&self, when: &When) -> u64 {
        match *when {
            When::Past(x) => self.now.saturating_sub(x),
            When::Near(x) | When::Hour(x) => self.now.saturating_add(x),
            When::Far(x) => x,
        }
    }

    /// How late a timer may legitimately still be unfired (exclusive bound on `now - deadline`).
    fn lateness_bound(&self, deadline: u64, placed_at: u64) -> u128 {
        let tick = u128::from(self.tick);
        match self.mode {
            Precision::Exact => tick,
            // < one tick + 8/63 of (deadline - wheel time at placement + one tick).
            Precision::Slack => {
                let remaining = u128::from(deadline.saturating_sub(placed_at)) + tick;
                tick + remaining * 8 / 63 + 1
            }
        }
    }

    /// Passes `now` to the wheel: the wheel's present becomes the latest `now` so far.
    fn pass(&mut self, now: u64) -> u64 {
        self.seen = self.seen.max(now);
        now
    }

    fn fired(&mut self, key: TimerKey, seq: u64) -> Result<(), TestCaseError> {
        let deadline = self.deadline_of.remove(&seq);
        prop_assert!(deadline.is_some(), "seq {} fired but is not pending", seq);
        let deadline = deadline.unwrap();
        let pending = self.model.remove(&(deadline, seq)).unwrap();
        prop_assert_eq!(pending.key, key);
        // Never early: not before the latest `now` passed reached the deadline, nor before
        // it reached `start`.
        prop_assert!(
            deadline <= self.seen && self.start <= self.seen,
            "seq {} (deadline {}) fired early: latest now {}, start {}",
            seq,
            deadline,
            self.seen,
            self.start
        );
        Ok(())
    }

    /// After a full `advance`: every timer is handed out within its lateness bound, counted
    /// from its deadline or from `start` (the first tick boundary), whichever is later.
    fn check_nothing_overdue(&self) -> Result<(), TestCaseError> {
        if self.seen < self.start {
            return Ok(()); // nothing is due before the first tick boundary
        }
        for (&(deadline, seq), p) in self.model.range(..=(self.seen, u64::MAX)) {
            let late = u128::from(self.seen - deadline.max(self.start));
            let bound = self.lateness_bound(deadline, p.placed_at);
            prop_assert!(
                late < bound,
                "seq {} (deadline {}, placed at {}) is {} ns overdue at {}, bound {}",
                seq,
                deadline,
                p.placed_at,
                late,
                self.seen,
                bound
            );
        }
        Ok(())
    }

    /// The index in `keys` of a pending timer.
    fn pick_pending(&self, i: usize) -> Option<usize> {
        if self.model.is_empty() {
            return None;
        }
        let (_, p) = self.model.iter().nth(i % self.model.len())?;
        self.keys.iter().position(|(k, _)| *k == p.key)
    }

    fn pick(&self, i: usize) -> Option<(TimerKey, u64)> {
        (!self.keys.is_empty()).then(|| self.keys[i % self.keys.len()])
    }

    fn step(&mut self, op: &Op, other: &mut TimingWheel<u64>) -> Result<(), TestCaseError> {
        match op {
            Op::Insert(when) => {
                let deadline = self.deadline(when);
                let seq = self.next_seq;
                self.next_seq += 1;
                let placed_at = self.wheel.time();
                let key = self.wheel.insert(deadline, seq).unwrap();
                self.model.insert((deadline, seq), Pending { key, placed_at });
                self.deadline_of.insert(seq, deadline);
                self.keys.push((key, seq));
            }
            Op::Cancel(i) => {
                if let Some((key, seq)) = self.pick(*i) {
                    let got = self.wheel.cancel(key);
                    match self.deadline_of.remove(&seq) {
                        Some(d) => {
                            self.model.remove(&(d, seq));
                            prop_assert_eq!(got, Some(seq));
                        }
                        None => prop_assert_eq!(got, None, "stale key cancelled something"),
                    }
                }
            }
            Op::Reset(i, when) => {
                if let Some((key, seq)) = self.pick(*i) {
                    let deadline = self.deadline(when);
                    let placed_at = self.wheel.time();
                    let got = self.wheel.reset(key, deadline);
                    match self.deadline_of.get(&seq).copied() {
                        Some(old) => {
                            prop_assert_eq!(got, Ok(()));
                            let p = self.model.remove(&(old, seq)).unwrap();
                            self.model.insert((deadline, seq), Pending { key: p.key, placed_at });
                            self.deadline_of.insert(seq, deadline);
                            prop_assert_eq!(self.wheel.deadline(key), Some(deadline));
                        }
                        None => prop_assert_eq!(got, Err(TimerError::StaleKey)),
                    }
                }
            }
            Op::Get(i) => {
                if let Some((key, seq)) = self.pick(*i) {
                    let pending = self.deadline_of.contains_key(&seq);
                    prop_assert_eq!(self.wheel.get(key).copied(), pending.then_some(seq));
                    prop_assert_eq!(self.wheel.contains(key), pending);
                }
            }
            Op::Advance(dt) => {
                self.now = self.now.saturating_add(*dt);
                let now = self.pass(self.now);
                self.advance_all(now)?;
            }
            Op::AdvanceStale(back) => {
                let now = self.pass(self.now.saturating_sub(*back));
                self.advance_all(now)?;
            }
            Op::PollOne(dt) => {
                self.now = self.now.saturating_add(*dt);
                let now = self.pass(self.now);
                if let Some((key, seq)) = self.wheel.poll_expired(now) {
                    self.fired(key, seq)?;
                }
            }
            Op::PollStale(back) => {
                let now = self.pass(self.now.saturating_sub(*back));
                if let Some((key, seq)) = self.wheel.poll_expired(now) {
                    self.fired(key, seq)?;
                }
            }
            Op::AdvancePartial(dt, n) => {
                self.now = self.now.saturating_add(*dt);
                let now = self.pass(self.now);
                let fired: Vec<_> = self.wheel.advance(now).take(*n).collect();
                for (key, seq) in fired {
                    self.fired(key, seq)?;
                }
            }
            Op::CancelPending(i) => {
                if let Some(i) = self.pick_pending(*i) {
                    self.step(&Op::Cancel(i), other)?;
                }
            }
            Op::ResetPending(i, when) => {
                if let Some(i) = self.pick_pending(*i) {
                    self.step(&Op::Reset(i, when.clone()), other)?;
                }
            }
            Op::Compact => self.wheel.compact(),
            Op::ForeignKey(i) => {
                if let Some((key, _)) = self.pick(*i) {
                    prop_assert_eq!(other.cancel(key), None);
                    prop_assert_eq!(other.reset(key, 0), Err(TimerError::ForeignKey));
                    prop_assert_eq!(other.get(key), None);
                }
            }
        }
        prop_assert_eq!(self.wheel.len(), self.model.len());
        self.check_next_deadline()?;
        if self.seen >= self.start {
            prop_assert!(self.wheel.time() <= self.seen);
        } else {
            prop_assert_eq!(self.wheel.time(), self.start);
        }
        Ok(())
    }

    /// `next_deadline` is never after the first timer fires, and in exact mode it is exactly
    /// that when it is at most 64 ticks after the wheel's time (and nothing is due yet).
    fn check_next_deadline(&self) -> Result<(), TestCaseError> {
        let next = self.wheel.next_deadline();
        let Some(&(first, _)) = self.model.keys().next() else {
            prop_assert_eq!(next, None);
            return Ok(());
        };
        prop_assert!(next.is_some(), "timers pending but no next deadline");
        let (next, time) = (next.unwrap(), self.wheel.time());
        if self.mode == Precision::Exact {
            // A timer inserted past its deadline is due at once, at the wheel's time.
            let fires = self.tick_ceil(first).max(time);
            prop_assert!(
                next <= fires,
                "next deadline {} after the first fires at {}",
                next,
                fires
            );
            let near = u128::from(fires.saturating_sub(time)) <= 64 * u128::from(self.tick);
            if next > time && near {
                prop_assert_eq!(next, fires, "inexact within 64 ticks of {}", time);
            }
        }
        Ok(())
    }

    /// A full `advance(now)` (`now` already passed through [`pass`](Self::pass)): hands out
    /// every due timer, and then the wheel's next deadline is no later than the model's.
    fn advance_all(&mut self, now: u64) -> Result<(), TestCaseError> {
        let fired: Vec<_> = self.wheel.advance(now).collect();
        for (key, seq) in fired {
            self.fired(key, seq)?;
        }
        self.check_nothing_overdue()?;
        if let Some(next) = self.wheel.next_deadline() {
            // Nothing is due before the wheel says so.
            let first = self.model.keys().next().map(|&(d, _)| d);
            prop_assert!(first.is_some());
            if self.mode == Precision::Exact {
                prop_assert!(next <= self.tick_ceil(first.unwrap()));
            }
            if self.seen >= self.start {
                prop_assert!(next > self.wheel.time(), "nothing is due after a full advance");
            } else {
                prop_assert!(next >= self.start, "nothing is due before start");
            }
        }
        Ok(())
    }

    /// The wheel time at which an exact timer with this deadline fires.
    fn tick_ceil(&self, deadline: u64) -> u64 {
        match deadline.checked_sub(self.start) {
            Some(span) => {
                self.start.saturating_add(span.div_ceil(self.tick).saturating_mul(self.tick))
            }
            None => self.start,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn wheel_matches_btreemap_model(
        (mode, tick, start, lead) in config(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let wheel = TimingWheel::builder()
            .mode(mode)
            .tick(Duration::from_nanos(tick))
            .start(start)
            .build()
            .unwrap();
        let mut h = Harness {
            wheel,
            model: BTreeMap::new(),
            deadline_of: HashMap::new(),
            keys: Vec::new(),
            now: start.saturating_sub(lead),
            seen: 0,
            next_seq: 0,
            tick,
            start,
            mode,
        };
        let mut other = TimingWheel::new();
        for op in &ops {
            h.step(op, &mut other)?;
        }
        // The end of time fires everything that is left, exactly once.
        h.now = u64::MAX;
        h.seen = u64::MAX;
        let rest: Vec<_> = h.wheel.advance(u64::MAX).collect();
        for (key, seq) in rest {
            h.fired(key, seq)?;
        }
        prop_assert!(h.model.is_empty());
        prop_assert!(h.wheel.is_empty());
        prop_assert_eq!(h.wheel.next_deadline(), None);
    }
}
