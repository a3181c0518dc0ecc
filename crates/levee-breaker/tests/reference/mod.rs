//! The breaker's reference: a plain single-threaded state machine, and the comparison that
//! runs a sequence of operations on it and on levee's breaker side by side.
//!
//! After every step the decisions (permit or refusal, until when), the state, the window's
//! counts, the metrics and the transition events must be equal. The reference keeps the
//! window as a plain list of recent calls and judges it after every record, exactly as
//! Resilience4j describes; it knows nothing of atomics, generations in bits, or skipped
//! writes.
//!
//! Shared by the proptest model test (`tests/model.rs`) and the `breaker` fuzz target
//! (`fuzz/fuzz_targets/breaker.rs`, which includes this file by path), so both check the one
//! reference.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_breaker::{
    BreakerEvent, BreakerSettings, CircuitBreaker, OpenWait, Outcome, Permit, Reason,
    SlidingWindow, State,
};
use levee_core::ManualClock;

/// `Err` with a message naming both sides when they differ.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($what:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!("{}: levee {got:?}, reference {want:?}", format!($($what)+)));
        }
    }};
}

pub(crate) const MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// The reference.

#[derive(Debug, Clone, Copy, PartialEq)]
enum RState {
    Closed,
    Open { deadline_ms: u64, attempts: u32 },
    HalfOpen { attempts: u32, issued: u32, done: u32, failed: u32, slow: u32 },
    ForcedOpen,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RKind {
    Closed,
    Trial,
    Disabled,
}

#[derive(Debug, Clone, Copy)]
struct RPermit {
    generation: u64,
    kind: RKind,
    started: u64,
}

/// One call in the reference window: (bucket period, failed, slow).
type Call = (u64, bool, bool);

#[derive(Debug)]
struct Reference {
    s: BreakerSettings,
    state: RState,
    generation: u64,
    window: VecDeque<Call>,
    not_permitted: u64,
    events: Vec<(State, State, Reason)>,
    /// When the reference last turned half-open, in whole ms rounded up.
    half_open_since_ms: u64,
}

impl Reference {
    fn new(s: BreakerSettings) -> Self {
        Self {
            s,
            state: RState::Closed,
            generation: 0,
            window: VecDeque::new(),
            not_permitted: 0,
            events: Vec::new(),
            half_open_since_ms: 0,
        }
    }

    fn public(state: RState) -> State {
        match state {
            RState::Closed => State::Closed,
            RState::Open { .. } => State::Open,
            RState::HalfOpen { .. } => State::HalfOpen,
            RState::ForcedOpen => State::ForcedOpen,
            RState::Disabled => State::Disabled,
        }
    }

    fn go(&mut self, to: RState, reason: Reason) {
        self.events.push((Self::public(self.state), Self::public(to), reason));
        self.state = to;
        self.generation += 1;
        if to == RState::Closed {
            self.window.clear();
        }
    }

    /// The open wait after `attempts` earlier consecutive openings, in whole arithmetic.
    fn wait_ns(&self, attempts: u32) -> u64 {
        match self.s.open_wait {
            OpenWait::Fixed { wait } => wait.as_nanos() as u64,
            OpenWait::Exponential { initial, max, .. } => {
                let grown = (initial.as_nanos() as u64).saturating_mul(1 << attempts.min(40));
                grown.min(max.as_nanos() as u64)
            }
        }
    }

    fn open_at(&self, now: u64, attempts: u32) -> RState {
        RState::Open { deadline_ms: (now + self.wait_ns(attempts)).div_ceil(MS), attempts }
    }

    fn period(&self, now: u64) -> u64 {
        match self.s.window {
            SlidingWindow::Time { length, buckets } => {
                now / (length.as_nanos() as u64 / u64::from(buckets))
            }
            SlidingWindow::Count { .. } => 0,
        }
    }

    /// The calls the window holds at `now`.
    fn live(&self, now: u64) -> Vec<Call> {
        match self.s.window {
            SlidingWindow::Count { .. } => self.window.iter().copied().collect(),
            SlidingWindow::Time { buckets, .. } => {
                let current = self.period(now);
                self.window.iter().copied().filter(|c| c.0 + u64::from(buckets) > current).collect()
            }
        }
    }

    fn counts(calls: &[Call]) -> (u64, u64, u64) {
        let failed = calls.iter().filter(|c| c.1).count() as u64;
        let slow = calls.iter().filter(|c| c.2).count() as u64;
        (calls.len() as u64, failed, slow)
    }

    /// Which threshold `calls` calls with `failed` failures and `slow` slow calls cross.
    fn verdict(&self, calls: u64, failed: u64, slow: u64, min_calls: u64) -> Option<Reason> {
        if self.s.failure_count_threshold.is_some_and(|n| failed >= u64::from(n)) {
            return Some(Reason::FailureCount);
        }
        if calls == 0 || calls < min_calls {
            return None;
        }
        let bp = |pct: f64| (pct * 100.0).round() as u64;
        if failed > 0 && failed * 10_000 >= bp(self.s.failure_rate_threshold) * calls {
            return Some(Reason::FailureRate);
        }
        if self.s.slow_call_duration.is_some()
            && slow > 0
            && slow * 10_000 >= bp(self.s.slow_call_rate_threshold) * calls
        {
            return Some(Reason::SlowCallRate);
        }
        None
    }

    fn min_calls(&self) -> u64 {
        match self.s.window {
            SlidingWindow::Count { size } => u64::from(self.s.minimum_calls.min(size)),
            SlidingWindow::Time { .. } => u64::from(self.s.minimum_calls),
        }
    }

    fn acquire(&mut self, now: u64) -> Result<RPermit, (State, Option<u64>)> {
        let permit = |generation, kind| Ok(RPermit { generation, kind, started: now });
        match self.state {
            RState::Closed => permit(self.generation, RKind::Closed),
            RState::Disabled => permit(self.generation, RKind::Disabled),
            RState::ForcedOpen => {
                self.not_permitted += 1;
                Err((State::ForcedOpen, None))
            }
            RState::Open { deadline_ms, attempts } => {
                if now / MS >= deadline_ms {
                    let to = RState::HalfOpen { attempts, issued: 1, done: 0, failed: 0, slow: 0 };
                    self.go(to, Reason::WaitElapsed);
                    self.half_open_since_ms = now.div_ceil(MS);
                    permit(self.generation, RKind::Trial)
                } else {
                    self.not_permitted += 1;
                    Err((State::Open, Some(deadline_ms * MS)))
                }
            }
            RState::HalfOpen { attempts, .. } if self.half_open_timed_out(now) => {
                let to = self.open_at(now, (attempts + 1).min(15));
                self.go(to, Reason::HalfOpenTimeout);
                self.not_permitted += 1;
                let RState::Open { deadline_ms, .. } = to else { unreachable!() };
                Err((State::Open, Some(deadline_ms * MS)))
            }
            RState::HalfOpen { attempts, issued, done, failed, slow } => {
                if issued < self.s.half_open_calls {
                    self.state =
                        RState::HalfOpen { attempts, issued: issued + 1, done, failed, slow };
                    permit(self.generation, RKind::Trial)
                } else {
                    self.not_permitted += 1;
                    Err((State::HalfOpen, None))
                }
            }
        }
    }

    fn check(&self, now: u64) -> Result<(), (State, Option<u64>)> {
        match self.state {
            RState::Closed | RState::Disabled => Ok(()),
            RState::ForcedOpen => Err((State::ForcedOpen, None)),
            RState::Open { deadline_ms, .. } if now / MS < deadline_ms => {
                Err((State::Open, Some(deadline_ms * MS)))
            }
            RState::Open { .. } => Ok(()),
            RState::HalfOpen { attempts, .. } if self.half_open_timed_out(now) => {
                let RState::Open { deadline_ms, .. } = self.open_at(now, (attempts + 1).min(15))
                else {
                    unreachable!()
                };
                Err((State::Open, Some(deadline_ms * MS)))
            }
            RState::HalfOpen { issued, .. } if issued < self.s.half_open_calls => Ok(()),
            RState::HalfOpen { .. } => Err((State::HalfOpen, None)),
        }
    }

    /// Whether the half-open state has outlived `half_open_max_wait` at `now`.
    fn half_open_timed_out(&self, now: u64) -> bool {
        self.s.half_open_max_wait.is_some_and(|d| {
            let limit_ms = (d.as_nanos() as u64).div_ceil(MS);
            (now / MS).saturating_sub(self.half_open_since_ms) >= limit_ms
        })
    }

    fn release(&mut self, p: RPermit) {
        if let RState::HalfOpen { attempts, issued, done, failed, slow } = self.state
            && p.kind == RKind::Trial
            && p.generation == self.generation
        {
            self.state = RState::HalfOpen { attempts, issued: issued - 1, done, failed, slow };
        }
    }

    fn record(&mut self, p: RPermit, outcome: Outcome, elapsed: u64, now: u64) {
        if outcome == Outcome::Ignored {
            return self.release(p);
        }
        let slow = self.s.slow_call_duration.is_some_and(|d| elapsed > d.as_nanos() as u64);
        let failed = outcome == Outcome::Failure || (slow && self.s.slow_success_is_failure);
        match (p.kind, self.state) {
            (RKind::Closed, RState::Closed) if p.generation == self.generation => {
                let period = self.period(now);
                self.window.push_back((period, failed, slow));
                if let SlidingWindow::Count { size } = self.s.window
                    && self.window.len() > size as usize
                {
                    self.window.pop_front();
                }
                let (calls, f, sl) = Self::counts(&self.live(now));
                if let Some(reason) = self.verdict(calls, f, sl, self.min_calls()) {
                    self.go(self.open_at(now, 0), reason);
                }
            }
            (RKind::Trial, RState::HalfOpen { attempts, .. })
                if p.generation == self.generation && self.half_open_timed_out(now) =>
            {
                self.go(self.open_at(now, (attempts + 1).min(15)), Reason::HalfOpenTimeout);
            }
            (RKind::Trial, RState::HalfOpen { attempts, issued, done, failed: f, slow: sl })
                if p.generation == self.generation =>
            {
                let (done, f, sl) = (done + 1, f + u32::from(failed), sl + u32::from(slow));
                if done < self.s.half_open_calls {
                    self.state = RState::HalfOpen { attempts, issued, done, failed: f, slow: sl };
                } else if self.verdict(u64::from(done), u64::from(f), u64::from(sl), 0).is_some() {
                    self.go(self.open_at(now, (attempts + 1).min(15)), Reason::TrialsFailed);
                } else {
                    self.go(RState::Closed, Reason::TrialsPassed);
                }
            }
            _ => {}
        }
    }

    fn manual(&mut self, op: &Op, now: u64) {
        let to = match op {
            Op::Reset => RState::Closed,
            Op::Trip => self.open_at(now, 0),
            Op::ForceOpen => RState::ForcedOpen,
            Op::Disable => RState::Disabled,
            _ => unreachable!(),
        };
        self.go(to, Reason::Manual);
    }
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// One step of a sequence.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Nanoseconds.
    Advance(u64),
    Acquire,
    /// Record permit `index % held` with an explicit duration in ms.
    Record(usize, Outcome, u64),
    /// Record permit `index % held`, the duration measured by the permit.
    RecordMeasured(usize, Outcome),
    Drop(usize),
    Check,
    Reset,
    Trip,
    ForceOpen,
    Disable,
}

/// Runs `ops` on a breaker with `settings` and on the reference; the first difference is the
/// error.
pub(crate) fn run(settings: BreakerSettings, ops: &[Op]) -> Result<(), String> {
    let clock = ManualClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let breaker = CircuitBreaker::builder()
        .settings(settings.clone())
        .clock(clock.clone())
        .listener(move |e: &BreakerEvent| sink.lock().unwrap().push((e.from, e.to, e.reason)))
        .build()
        .unwrap();
    let mut reference = Reference::new(settings);
    let mut held: Vec<(Permit<'_, ManualClock>, RPermit)> = Vec::new();

    for (step, op) in ops.iter().enumerate() {
        let now = levee_core::Clock::now(&clock);
        match op {
            Op::Advance(ns) => {
                clock.advance_nanos(*ns);
            }
            Op::Acquire => {
                let got = breaker.try_acquire();
                let want = reference.acquire(now);
                match (got, want) {
                    (Ok(p), Ok(r)) => {
                        ensure_eq!(
                            p.is_trial(),
                            r.kind == RKind::Trial,
                            "step {}: permit kind",
                            step
                        );
                        held.push((p, r));
                    }
                    (Err(open), Err((state, until))) => {
                        ensure_eq!(open.state(), state, "step {}: refusing state", step);
                        ensure_eq!(open.until(), until, "step {}: until", step);
                        ensure_eq!(
                            open.retry_after(),
                            until.map(|u| Duration::from_nanos(u - now)),
                            "step {}: retry after",
                            step
                        );
                    }
                    (got, want) => {
                        return Err(format!(
                            "step {step}: levee {:?}, reference {want:?}",
                            got.map(|p| p.is_trial())
                        ));
                    }
                }
            }
            Op::Record(i, outcome, ms) if !held.is_empty() => {
                let (p, r) = held.swap_remove(i % held.len());
                p.record(*outcome, Duration::from_millis(*ms));
                reference.record(r, *outcome, ms * MS, now);
            }
            Op::RecordMeasured(i, outcome) if !held.is_empty() => {
                let (p, r) = held.swap_remove(i % held.len());
                match outcome {
                    Outcome::Success => p.success(),
                    Outcome::Failure => p.failure(),
                    Outcome::Ignored => p.ignore(),
                }
                reference.record(r, *outcome, now - r.started, now);
            }
            Op::Drop(i) if !held.is_empty() => {
                let (p, r) = held.swap_remove(i % held.len());
                drop(p);
                reference.release(r);
            }
            Op::Record(..) | Op::RecordMeasured(..) | Op::Drop(_) => {}
            Op::Check => {
                let got = breaker.check().map_err(|open| (open.state(), open.until()));
                ensure_eq!(got, reference.check(now), "step {}: check", step);
            }
            Op::Reset | Op::Trip | Op::ForceOpen | Op::Disable => {
                match op {
                    Op::Reset => breaker.reset(),
                    Op::Trip => breaker.trip(),
                    Op::ForceOpen => breaker.force_open(),
                    _ => breaker.disable(),
                }
                reference.manual(op, now);
            }
        }

        // Everything observable agrees after every step.
        let now = levee_core::Clock::now(&clock);
        let m = breaker.metrics();
        ensure_eq!(m.state, Reference::public(reference.state), "step {} ({:?}): state", step, op);
        let (calls, failed, slow) = match reference.state {
            RState::Closed => Reference::counts(&reference.live(now)),
            RState::HalfOpen { done, failed, slow, .. } => {
                (u64::from(done), u64::from(failed), u64::from(slow))
            }
            _ => (0, 0, 0),
        };
        ensure_eq!(
            (m.calls, m.failed_calls, m.slow_calls),
            (calls, failed, slow),
            "step {}: counts",
            step
        );
        ensure_eq!(m.not_permitted, reference.not_permitted, "step {}: refusals", step);
        let (openings, in_flight, open_until) = match reference.state {
            RState::Open { attempts, deadline_ms } => {
                (attempts + 1, 0, (now / MS < deadline_ms).then_some(deadline_ms * MS))
            }
            RState::HalfOpen { attempts, issued, done, .. } => (attempts + 1, issued - done, None),
            _ => (0, 0, None),
        };
        ensure_eq!(m.consecutive_openings, openings, "step {}: openings", step);
        ensure_eq!(m.trials_in_flight, in_flight, "step {}: trials in flight", step);
        ensure_eq!(m.open_until, open_until, "step {}: open until", step);
        ensure_eq!(&*events.lock().unwrap(), &reference.events, "step {}: events", step);
    }
    Ok(())
}
