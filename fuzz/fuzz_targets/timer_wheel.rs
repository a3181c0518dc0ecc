//! Drives a `TimingWheel` with arbitrary operation sequences against a `BTreeMap` model and
//! checks the wheel's internal invariants after every step.
//!
//! The clock may begin before the wheel's `start`, and `*Stale` operations pass a `now`
//! earlier than the clock (and than earlier calls): the wheel must treat it as the latest
//! `now` passed and hand out nothing before a `now` reaches `start`.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use levee_timer::{Precision, TimerError, TimerKey, TimingWheel};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum When {
    Past(u32),
    Near(u32),
    Far(u64),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Insert(When),
    Cancel(u16),
    Reset(u16, When),
    Advance(u32),
    AdvancePartial(u32, u8),
    Poll(u32),
    /// Drain with a `now` this many microseconds before the clock.
    AdvanceStale(u32),
    /// Take one due timer with a `now` this many nanoseconds before the clock.
    PollStale(u32),
    Compact,
    Foreign(u16),
}

#[derive(Debug, Arbitrary)]
struct Case {
    slack: bool,
    /// Tick in microseconds (at least 1).
    tick_us: u16,
    start: u32,
    /// The clock begins this many microseconds before `start`.
    lead: u32,
    ops: Vec<Op>,
}

struct Model {
    pending: BTreeMap<(u64, u64), (TimerKey, u64)>, // (deadline, seq) -> (key, placed_at)
    deadline_of: HashMap<u64, u64>,
    keys: Vec<(TimerKey, u64)>,
    /// The clock.
    now: u64,
    /// The latest `now` passed to the wheel: its present.
    seen: u64,
    start: u64,
    tick: u64,
    slack: bool,
}

impl Model {
    fn deadline(&self, when: &When) -> u64 {
        match *when {
            When::Past(x) => self.now.saturating_sub(u64::from(x) * 1000),
            When::Near(x) => self.now.saturating_add(u64::from(x) * 1000),
            When::Far(x) => x,
        }
    }

    fn bound(&self, deadline: u64, placed_at: u64) -> u128 {
        let tick = u128::from(self.tick);
        if self.slack {
            tick + (u128::from(deadline.saturating_sub(placed_at)) + tick) * 8 / 63 + 1
        } else {
            tick
        }
    }

    fn pass(&mut self, now: u64) -> u64 {
        self.seen = self.seen.max(now);
        now
    }

    fn fired(&mut self, key: TimerKey, seq: u64) {
        let deadline = self.deadline_of.remove(&seq).expect("fired twice or never scheduled");
        let (k, _) = self.pending.remove(&(deadline, seq)).expect("model out of sync");
        assert_eq!(k, key);
        assert!(deadline <= self.seen, "fired early");
        assert!(self.start <= self.seen, "fired before start");
    }

    /// After a full advance: nothing due is late beyond its bound, counted from its deadline
    /// or `start` (the first tick boundary), whichever is later.
    fn check_overdue(&self) {
        if self.seen < self.start {
            return;
        }
        for (&(deadline, _), &(_, placed_at)) in self.pending.range(..=(self.seen, u64::MAX)) {
            let late = self.seen - deadline.max(self.start);
            assert!(u128::from(late) < self.bound(deadline, placed_at), "overdue");
        }
    }

    /// `next_deadline` is never after the first timer fires, and exactly that (exact mode)
    /// when it is at most 64 ticks after the wheel's time.
    fn check_next(&self, wheel: &TimingWheel<u64>) {
        let next = wheel.next_deadline();
        let Some(&(first, _)) = self.pending.keys().next() else {
            assert_eq!(next, None);
            return;
        };
        let (next, time) = (next.expect("timers pending"), wheel.time());
        if !self.slack {
            let fires = match first.checked_sub(self.start) {
                Some(span) => {
                    self.start.saturating_add(span.div_ceil(self.tick).saturating_mul(self.tick))
                }
                None => self.start,
            }
            .max(time);
            assert!(next <= fires, "next deadline after the first timer fires");
            if next > time && u128::from(fires - time) <= 64 * u128::from(self.tick) {
                assert_eq!(next, fires, "next deadline inexact within 64 ticks");
            }
        }
    }

    fn advance_all(&mut self, wheel: &mut TimingWheel<u64>, now: u64) {
        let fired: Vec<_> = wheel.advance(now).collect();
        for (key, s) in fired {
            self.fired(key, s);
        }
        self.check_overdue();
    }

    fn pick(&self, i: u16) -> Option<(TimerKey, u64)> {
        (!self.keys.is_empty()).then(|| self.keys[usize::from(i) % self.keys.len()])
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) else { return };
    let tick = u64::from(case.tick_us.max(1)) * 1000;
    let mode = if case.slack { Precision::Slack } else { Precision::Exact };
    let start = u64::from(case.start) * 1000;
    let mut wheel = TimingWheel::builder()
        .mode(mode)
        .tick(Duration::from_nanos(tick))
        .start(start)
        .build()
        .unwrap();
    let mut other: TimingWheel<u64> = TimingWheel::new();
    let mut m = Model {
        pending: BTreeMap::new(),
        deadline_of: HashMap::new(),
        keys: Vec::new(),
        now: start.saturating_sub(u64::from(case.lead) * 1000),
        seen: 0,
        start,
        tick,
        slack: case.slack,
    };
    let mut seq = 0u64;
    for op in case.ops.iter().take(2000) {
        match op {
            Op::Insert(when) => {
                let deadline = m.deadline(when);
                let key = wheel.insert(deadline, seq).unwrap();
                m.pending.insert((deadline, seq), (key, wheel.time()));
                m.deadline_of.insert(seq, deadline);
                m.keys.push((key, seq));
                seq += 1;
            }
            Op::Cancel(i) => {
                if let Some((key, s)) = m.pick(*i) {
                    let got = wheel.cancel(key);
                    match m.deadline_of.remove(&s) {
                        Some(d) => {
                            m.pending.remove(&(d, s));
                            assert_eq!(got, Some(s));
                        }
                        None => assert_eq!(got, None),
                    }
                }
            }
            Op::Reset(i, when) => {
                if let Some((key, s)) = m.pick(*i) {
                    let deadline = m.deadline(when);
                    let placed_at = wheel.time();
                    let got = wheel.reset(key, deadline);
                    match m.deadline_of.get(&s).copied() {
                        Some(old) => {
                            assert_eq!(got, Ok(()));
                            m.pending.remove(&(old, s));
                            m.pending.insert((deadline, s), (key, placed_at));
                            m.deadline_of.insert(s, deadline);
                        }
                        None => assert_eq!(got, Err(TimerError::StaleKey)),
                    }
                }
            }
            Op::Advance(dt) => {
                m.now = m.now.saturating_add(u64::from(*dt) * 1000);
                let now = m.pass(m.now);
                m.advance_all(&mut wheel, now);
            }
            Op::AdvanceStale(back) => {
                let now = m.pass(m.now.saturating_sub(u64::from(*back) * 1000));
                m.advance_all(&mut wheel, now);
            }
            Op::AdvancePartial(dt, n) => {
                m.now = m.now.saturating_add(u64::from(*dt) * 1000);
                let now = m.pass(m.now);
                let fired: Vec<_> = wheel.advance(now).take(usize::from(*n % 4)).collect();
                for (key, s) in fired {
                    m.fired(key, s);
                }
            }
            Op::Poll(dt) => {
                m.now = m.now.saturating_add(u64::from(*dt));
                let now = m.pass(m.now);
                if let Some((key, s)) = wheel.poll_expired(now) {
                    m.fired(key, s);
                }
            }
            Op::PollStale(back) => {
                let now = m.pass(m.now.saturating_sub(u64::from(*back)));
                if let Some((key, s)) = wheel.poll_expired(now) {
                    m.fired(key, s);
                }
            }
            Op::Compact => wheel.compact(),
            Op::Foreign(i) => {
                if let Some((key, _)) = m.pick(*i) {
                    assert_eq!(other.cancel(key), None);
                    assert_eq!(other.reset(key, 0), Err(TimerError::ForeignKey));
                }
            }
        }
        levee_timer::fuzz::check_invariants(&wheel);
        assert_eq!(wheel.len(), m.pending.len());
        m.check_next(&wheel);
    }
    m.now = u64::MAX;
    m.seen = u64::MAX;
    let rest: Vec<_> = wheel.advance(u64::MAX).collect();
    for (key, s) in rest {
        m.fired(key, s);
    }
    assert!(m.pending.is_empty() && wheel.is_empty());
});
