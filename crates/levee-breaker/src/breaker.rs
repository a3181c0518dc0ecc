//! The circuit breaker: one state word, one sliding window, transitions by compare-and-swap.

use std::any::TypeId;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use levee_core::sync::{AtomicU64, CachePadded, Mutex, Ordering, Retained};
use levee_core::{Clock, CoarseClock, ConfigError, EventHook, FastClock, StripedCounter};

use crate::builder::CircuitBreakerBuilder;
use crate::entered::{Entered, unwrap_deadline};
use crate::permit::{Kind, Ticket};
use crate::settings::{Rules, Verdict, bump_attempts};
use crate::state::{Trials, Word, next_gen};
use crate::window::{CountWindow, Sample, Tally, TimeWindow, Window};
use crate::{
    BreakerEvent, BreakerMetrics, BreakerSettings, CallError, Classify, DefaultClassifier, Open,
    OwnedPermit, Permit, Reason, SlidingWindow, State,
};

mod reconfigure;

const MS: u64 = 1_000_000;

/// A lock-free circuit breaker.
///
/// Share it by reference, or in an `Arc` for [`try_acquire_owned`](Self::try_acquire_owned)
/// and the tower layer. Build one with [`CircuitBreaker::builder`] or from
/// [`BreakerSettings`].
///
/// On the closed path, acquiring is one atomic load. Recording a success in a healthy count
/// window (full, no failure or slow call) is two more loads and writes nothing; any other
/// record claims a window slot with one compare-and-swap. In a time window, a success that
/// cannot change the verdict is a few loads and one store to the thread's own stripe (no
/// clock read on `FastClock`); any other record reads the clock and updates the shared totals
/// with compare-and-swaps. Tracking slow calls adds two clock reads. See the crate
/// documentation for the whole design.
///
/// ```
/// use levee_breaker::{CallError, CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().name("payments").count_window(4).minimum_calls(2).build()?;
/// for _ in 0..2 {
///     let _ = breaker.call(|| Err::<(), _>("backend down"));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// assert!(matches!(breaker.call(|| Ok::<_, ()>(1)), Err(CallError::Open(_))));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct CircuitBreaker<C: Clock = FastClock> {
    /// State, generation and the state's data (see `state.rs`).
    state: CachePadded<AtomicU64>,
    /// The settings and the rules compiled from them; replaced by `reconfigure`.
    config: Retained<Config>,
    /// Serialises `reconfigure` calls (never taken by a call through the breaker).
    change: Mutex<()>,
    window: Window,
    clock: C,
    /// Clock reading at build time: open deadlines are milliseconds from here.
    origin: u64,
    name: Arc<str>,
    not_permitted: StripedCounter,
    /// When the current state was entered (statistics only).
    entered_at: AtomicU64,
    /// When the current state was entered, in milliseconds, tagged with its generation: what
    /// an open deadline's high bits and a half-open state's age are read from (`entered.rs`).
    entered: Entered,
    hook: EventHook<BreakerEvent>,
    /// A coarse reading of `clock` for bucketing a time window's successes: [`CoarseClock`]
    /// when `clock` is [`FastClock`] (the coarse clock reads on its scale), else none.
    coarse: Option<CoarseClock>,
}

impl CircuitBreaker<FastClock> {
    /// A builder with the default settings and [`FastClock`].
    pub fn builder() -> CircuitBreakerBuilder<FastClock> {
        CircuitBreakerBuilder::new()
    }

    /// A breaker with `settings`, [`FastClock`] and no listener.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting.
    pub fn from_settings(settings: BreakerSettings) -> Result<Self, ConfigError> {
        CircuitBreakerBuilder::new().settings(settings).build()
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// Builds from validated settings.
    pub(crate) fn assemble(
        settings: BreakerSettings,
        clock: C,
        name: Arc<str>,
        hook: EventHook<BreakerEvent>,
    ) -> Self {
        let origin = clock.now();
        let coarse = (matches!(settings.window, SlidingWindow::Time { .. })
            && TypeId::of::<C>() == TypeId::of::<FastClock>())
        .then(|| CoarseClock::new().ok())
        .flatten();
        Self {
            state: CachePadded::new(AtomicU64::new(Word::closed(0).0)),
            window: Window::new(settings.window, origin),
            config: Retained::new(Config { rules: Rules::new(&settings), settings }),
            change: Mutex::new(()),
            origin,
            clock,
            name,
            // 8 stripes (1 KiB): breakers come by the hundred in a registry.
            not_permitted: StripedCounter::with_stripes(8),
            entered_at: AtomicU64::new(origin),
            entered: Entered::new(0, 0),
            hook,
            coarse,
        }
    }

    /// Asks to make a call.
    ///
    /// Closed or disabled: always a permit (one atomic load). Open: refused until the wait has
    /// passed; the first call after that turns the breaker half-open and gets the first trial
    /// permit. Half-open: one of exactly `half_open_calls` trial permits, or refused when all
    /// are taken. Forced open: refused.
    ///
    /// # Errors
    /// [`Open`] when the call is refused; it says until when, where that is known.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Open> {
        let ticket = self.acquire_ticket();
        match ticket.refused() {
            None => Ok(Permit::new(self, ticket)),
            Some(open) => Err(open),
        }
    }

    /// [`try_acquire`](Self::try_acquire) for a permit that holds the breaker by `Arc`.
    ///
    /// # Errors
    /// [`Open`] when the call is refused.
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit<C>, Open> {
        let ticket = self.acquire_ticket();
        match ticket.refused() {
            None => Ok(OwnedPermit::new(Arc::clone(self), ticket)),
            Some(open) => Err(open),
        }
    }

    /// A permit's ticket, or a refusal encoded as one.
    #[inline]
    fn acquire_ticket(&self) -> Ticket {
        // Acquire pairs with the AcqRel of every transition CAS: a permit's generation is
        // never older than a state this thread has already observed.
        let word = Word(self.state.load(Ordering::Acquire));
        if word.is_closed() {
            return Ticket::permit(Kind::Closed, word.generation(), self.start_time());
        }
        self.acquire_slow(word)
    }

    #[inline]
    fn start_time(&self) -> u64 {
        if self.rules().times_calls { self.clock.now() } else { 0 }
    }

    #[inline(never)]
    fn acquire_slow(&self, mut word: Word) -> Ticket {
        let mut now = None;
        loop {
            match word.state() {
                State::Closed => {
                    return Ticket::permit(Kind::Closed, word.generation(), self.start_time());
                }
                State::Disabled => return Ticket::permit(Kind::Disabled, word.generation(), 0),
                State::ForcedOpen => return self.refuse(State::ForcedOpen, None),
                State::Open => {
                    let t = *now.get_or_insert_with(|| self.clock.now());
                    if let Some(until) = self.open_until(word, t) {
                        return self.refuse(State::Open, Some((until, t)));
                    }
                    let first = Trials { issued: 1, ..Trials::default() };
                    let next = Word::half_open(next_gen(word.generation()), word.attempts(), first);
                    match self.cas(word, next) {
                        Ok(()) => {
                            self.transitioned(word, next, t, Reason::WaitElapsed, None);
                            return Ticket::permit(
                                Kind::Trial,
                                next.generation(),
                                self.start_time(),
                            );
                        }
                        Err(actual) => word = actual,
                    }
                }
                State::HalfOpen => {
                    if self.rules().half_open_max_ms != u64::MAX {
                        let t = *now.get_or_insert_with(|| self.clock.now());
                        if self.half_open_timed_out(word, t) {
                            match self.reopen_timed_out(word, t) {
                                Ok(until) => return self.refuse(State::Open, Some((until, t))),
                                Err(actual) => word = actual,
                            }
                            continue;
                        }
                    }
                    let trials = word.trials();
                    if trials.issued >= self.rules().half_open_calls {
                        return self.refuse(State::HalfOpen, None);
                    }
                    let next = Word::half_open(
                        word.generation(),
                        word.attempts(),
                        Trials { issued: trials.issued + 1, ..trials },
                    );
                    match self.cas(word, next) {
                        Ok(()) => {
                            return Ticket::permit(
                                Kind::Trial,
                                word.generation(),
                                self.start_time(),
                            );
                        }
                        Err(actual) => word = actual,
                    }
                }
            }
        }
    }

    /// Counts a refusal. `until` is the open deadline and the time of the refusal.
    fn refuse(&self, state: State, until: Option<(u64, u64)>) -> Ticket {
        self.not_permitted.incr();
        Ticket::refusal(state, until)
    }

    /// Whether a call would be permitted now, without taking a permit, counting a refusal or
    /// changing state. For retry policies that must not retry into an open circuit.
    ///
    /// # Errors
    /// [`Open`] when [`try_acquire`](Self::try_acquire) would refuse right now.
    pub fn check(&self) -> Result<(), Open> {
        let word = self.word();
        let refused = match word.state() {
            State::Closed | State::Disabled => return Ok(()),
            State::ForcedOpen => Ticket::refusal(State::ForcedOpen, None),
            State::Open => {
                let now = self.clock.now();
                match self.open_until(word, now) {
                    Some(until) => Ticket::refusal(State::Open, Some((until, now))),
                    None => return Ok(()),
                }
            }
            State::HalfOpen => {
                let now = self.clock.now();
                if self.half_open_timed_out(word, now) {
                    // try_acquire would reopen the circuit now.
                    let (_, until) = self.open_word(0, bump_attempts(word.attempts()), now);
                    Ticket::refusal(State::Open, Some((until, now)))
                } else if word.trials().issued < self.rules().half_open_calls {
                    return Ok(());
                } else {
                    Ticket::refusal(State::HalfOpen, None)
                }
            }
        };
        refused.refused().map_or(Ok(()), Err)
    }

    /// Runs `f` if permitted and records its result (`Ok` success, `Err` failure), timing it
    /// when slow calls are tracked.
    ///
    /// # Errors
    /// [`CallError::Open`] if refused (`f` is not run), [`CallError::Inner`] with `f`'s error.
    #[inline]
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_with(&DefaultClassifier, f)
    }

    /// [`call`](Self::call) with a classifier that decides which results are failures and
    /// which are ignored.
    ///
    /// # Errors
    /// [`CallError::Open`] if refused (`f` is not run), [`CallError::Inner`] with `f`'s error.
    #[inline]
    pub fn call_with<T, E, K>(
        &self,
        classifier: &K,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>>
    where
        K: Classify<T, E> + ?Sized,
    {
        let permit = self.try_acquire().map_err(CallError::Open)?;
        let result = f();
        permit.record_outcome(classifier.classify(&result));
        result.map_err(CallError::Inner)
    }

    /// Awaits `fut` if permitted and records its result. Dropping the returned future before it
    /// completes records nothing and hands a trial permit back.
    ///
    /// # Errors
    /// [`CallError::Open`] if refused (`fut` is dropped unpolled), [`CallError::Inner`] with
    /// `fut`'s error.
    pub async fn call_async<T, E, F>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_async_with(&DefaultClassifier, fut).await
    }

    /// [`call_async`](Self::call_async) with a classifier.
    ///
    /// # Errors
    /// [`CallError::Open`] if refused (`fut` is dropped unpolled), [`CallError::Inner`] with
    /// `fut`'s error.
    pub async fn call_async_with<T, E, F, K>(
        &self,
        classifier: &K,
        fut: F,
    ) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
        K: Classify<T, E> + ?Sized,
    {
        let permit = self.try_acquire().map_err(CallError::Open)?;
        let result = fut.await;
        permit.record_outcome(classifier.classify(&result));
        result.map_err(CallError::Inner)
    }

    /// Records a permit's result (called by the permits).
    #[inline]
    pub(crate) fn complete(&self, ticket: Ticket, outcome: Outcome, elapsed: Option<u64>) {
        match ticket.kind() {
            Kind::Closed if outcome != Outcome::Ignored => {
                let sample = self.sample(outcome, ticket.started, elapsed);
                self.record_closed(ticket.generation(), sample);
            }
            Kind::Trial => self.complete_trial(ticket, outcome, elapsed),
            Kind::Closed | Kind::Disabled | Kind::Done | Kind::Refused => {}
        }
    }

    #[inline(never)]
    fn complete_trial(&self, ticket: Ticket, outcome: Outcome, elapsed: Option<u64>) {
        if outcome == Outcome::Ignored {
            self.release(ticket.generation());
        } else {
            let sample = self.sample(outcome, ticket.started, elapsed);
            self.record_trial(ticket.generation(), sample);
        }
    }

    #[inline]
    fn sample(&self, outcome: Outcome, started: u64, elapsed: Option<u64>) -> Sample {
        let elapsed = match elapsed {
            Some(e) => e,
            None if self.rules().times_calls => self.clock.now().saturating_sub(started),
            None => 0,
        };
        let slow = self.rules().is_slow(elapsed);
        let failed = outcome == Outcome::Failure || (slow && self.rules().slow_success_is_failure);
        Sample { failed, slow }
    }

    #[inline]
    fn record_closed(&self, generation: u32, sample: Sample) {
        let word = self.word();
        if word != Word::closed(generation) {
            return; // the breaker moved on: this result belongs to a finished generation
        }
        match &self.window {
            Window::Count(window) => {
                if !window.unchanged_by(generation, sample) {
                    self.record_counted(word, window, sample);
                }
            }
            Window::Time(window) => self.record_timed(word, window, sample),
        }
    }

    /// [`record_closed`](Self::record_closed) in a count window, for a record that may change
    /// it. Out of line, so that the healthy path stays small; the window's own common case (a
    /// success that moves a window holding a failure on) is inlined here.
    #[inline(never)]
    fn record_counted(&self, word: Word, window: &CountWindow, sample: Sample) {
        if let Some(tally) = window.record(word.generation(), sample, self.rules().min_calls) {
            self.judge(word, tally, None);
        }
    }

    /// [`record_closed`](Self::record_closed) in a time window.
    #[inline]
    fn record_timed(&self, word: Word, window: &TimeWindow, sample: Sample) {
        if sample.failed || sample.slow {
            return self.record_in_window(word, sample, None);
        }
        // A success in a window without failures changes no verdict, so the bucket it lands
        // in may come from a coarse reading; any other success is judged on the exact time
        // (see `window/time.rs`).
        let generation = word.generation();
        let clean = window.is_clean(generation);
        let now = if clean { self.bucket_time() } else { self.clock.now() };
        if !window.add_success(generation, now, self.rules().min_calls, clean) {
            let exact = !clean || self.coarse.is_none();
            self.record_in_window(word, sample, exact.then_some(now));
        }
    }

    /// The time a success is bucketed by: the breaker's clock, or a coarse reading of it when
    /// there is one ([`CoarseClock`] for [`FastClock`]).
    #[inline]
    fn bucket_time(&self) -> u64 {
        match &self.coarse {
            Some(coarse) => coarse.now(),
            None => self.clock.now(),
        }
    }

    /// Records `sample` on the window's shared path and judges the result. `now` is an exact
    /// reading already taken, if any.
    #[inline(never)]
    fn record_in_window(&self, word: Word, sample: Sample, now: Option<u64>) {
        let now = if self.window.needs_time() {
            Some(now.unwrap_or_else(|| self.clock.now()))
        } else {
            None
        };
        if let Some(tally) =
            self.window.record(word.generation(), sample, now.unwrap_or(0), self.rules().min_calls)
        {
            self.judge(word, tally, now);
        }
    }

    /// Opens the circuit from `word` if the window's `tally` is over a threshold.
    #[inline(never)]
    fn judge(&self, word: Word, tally: Tally, now: Option<u64>) {
        if let Some(verdict) = self.rules().closed_verdict(tally.calls, tally.failed, tally.slow) {
            self.open(word, reason_of(verdict), now);
        }
    }

    fn record_trial(&self, generation: u32, sample: Sample) {
        let mut word = self.word();
        let mut now = None;
        loop {
            if word.state() != State::HalfOpen || word.generation() != generation {
                return;
            }
            if self.rules().half_open_max_ms != u64::MAX {
                // A trial that outlived the half-open state's time limit reopens the circuit
                // whether or not a call came in meanwhile to notice the limit.
                let t = *now.get_or_insert_with(|| self.clock.now());
                if self.half_open_timed_out(word, t) {
                    match self.reopen_timed_out(word, t) {
                        Ok(_) => return,
                        Err(actual) => word = actual,
                    }
                    continue;
                }
            }
            let mut trials = word.trials();
            trials.done += 1;
            trials.failed += u8::from(sample.failed);
            trials.slow += u8::from(sample.slow);
            if trials.done < self.rules().half_open_calls {
                match self.cas(word, Word::half_open(generation, word.attempts(), trials)) {
                    Ok(()) => return,
                    Err(actual) => word = actual,
                }
                continue;
            }
            // The last trial decides.
            let t = *now.get_or_insert_with(|| self.clock.now());
            let calls = u64::from(trials.done);
            let (next, reason, until) = match self.rules().trial_verdict(
                calls,
                u64::from(trials.failed),
                u64::from(trials.slow),
            ) {
                Some(_) => {
                    let (next, until) =
                        self.open_word(next_gen(generation), bump_attempts(word.attempts()), t);
                    (next, Reason::TrialsFailed, Some(until))
                }
                None => (Word::closed(next_gen(generation)), Reason::TrialsPassed, None),
            };
            match self.cas(word, next) {
                Ok(()) => return self.transitioned(word, next, t, reason, until),
                Err(actual) => word = actual,
            }
        }
    }

    /// Hands back a trial permit that was dropped or whose result was ignored.
    pub(crate) fn release(&self, generation: u32) {
        let mut word = self.word();
        while word.state() == State::HalfOpen && word.generation() == generation {
            let trials = word.trials();
            if trials.issued <= trials.done {
                return; // nothing outstanding (cannot happen for a live trial permit)
            }
            let next = Word::half_open(
                generation,
                word.attempts(),
                Trials { issued: trials.issued - 1, ..trials },
            );
            match self.cas(word, next) {
                Ok(()) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// Whether half-open `word` has outlived `half_open_max_wait` at `now`. Never early: the
    /// entry time is rounded up to a whole millisecond and the limit too.
    fn half_open_timed_out(&self, word: Word, now: u64) -> bool {
        if self.rules().half_open_max_ms == u64::MAX {
            return false;
        }
        let Some(since_ms) = self.entered.of(word.generation()) else {
            return false; // entered just now; its writer has not stored the time yet
        };
        let now_ms = now.saturating_sub(self.origin) / MS;
        now_ms.saturating_sub(since_ms) >= self.rules().half_open_max_ms
    }

    /// Reopens half-open `word` whose time ran out, with a longer wait (a timeout is a failed
    /// trial round). `Ok` with the open deadline, or the word that won the race.
    fn reopen_timed_out(&self, word: Word, now: u64) -> Result<u64, Word> {
        let (next, until) =
            self.open_word(next_gen(word.generation()), bump_attempts(word.attempts()), now);
        self.cas(word, next)?;
        self.transitioned(word, next, now, Reason::HalfOpenTimeout, Some(until));
        Ok(until)
    }

    /// Opens the circuit from closed state `from` (once: losers of the CAS do nothing).
    fn open(&self, from: Word, reason: Reason, now: Option<u64>) {
        let now = now.unwrap_or_else(|| self.clock.now());
        let (next, until) = self.open_word(next_gen(from.generation()), 0, now);
        if self.cas(from, next).is_ok() {
            self.transitioned(from, next, now, reason, Some(until));
        }
    }

    /// An open state word entered at `now` after `attempts` earlier consecutive openings, and
    /// its deadline.
    fn open_word(&self, generation: u32, attempts: u8, now: u64) -> (Word, u64) {
        let wait = levee_core::nanos(self.settings().open_wait.wait(u32::from(attempts)));
        let deadline_ms = now.saturating_sub(self.origin).saturating_add(wait).div_ceil(MS);
        // The word keeps the deadline mod 2^32 ms (49 days); `open_until` unwraps it with the
        // entry time that `transitioned` notes for this generation.
        let until = self.origin.saturating_add(deadline_ms.saturating_mul(MS));
        (Word::open(generation, deadline_ms as u32, attempts), until)
    }

    /// Until when an open word refuses calls, `None` once its deadline has passed.
    ///
    /// The word keeps the deadline modulo 2^32 ms; the entry time noted for its generation
    /// gives the rest, however long ago that was. Until the transition's winner has stored that
    /// note, the state is an instant old, and the deadline is the one within the longest
    /// possible wait of now.
    #[inline]
    fn open_until(&self, word: Word, now: u64) -> Option<u64> {
        let since_origin = now.saturating_sub(self.origin);
        let deadline_ms = match self.entered.of(word.generation()) {
            Some(entered_ms) => unwrap_deadline(entered_ms, word.deadline_ms()),
            None => {
                let now_ms = since_origin / MS;
                let remaining = word.deadline_ms().wrapping_sub(now_ms as u32);
                if remaining > self.rules().max_wait_ms {
                    return None; // passed (the deadline is behind now, modulo 2^32)
                }
                now_ms + u64::from(remaining)
            }
        };
        // `floor(since_origin / MS) < deadline_ms`, compared in nanoseconds: the deadline is
        // known before the clock is read and the reading is not, so converting the deadline
        // keeps the division off a refusal's critical path.
        let deadline = deadline_ms.saturating_mul(MS);
        (since_origin < deadline).then(|| self.origin.saturating_add(deadline))
    }

    #[inline]
    fn word(&self) -> Word {
        Word(self.state.load(Ordering::Acquire))
    }

    /// One transition attempt. AcqRel: each transition is ordered after the one it replaces.
    #[inline]
    fn cas(&self, from: Word, to: Word) -> Result<(), Word> {
        self.state
            .compare_exchange(from.0, to.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Word)
    }

    /// What the winner of a transition's compare-and-swap does next: notes the new state's
    /// entry time, keeps the window's generation tags fresh (`Window::refresh`), then tells the
    /// listeners.
    fn transitioned(&self, from: Word, to: Word, at: u64, reason: Reason, open_until: Option<u64>) {
        self.entered.note(to.generation(), at.saturating_sub(self.origin).div_ceil(MS));
        self.window.refresh(to.generation());
        self.entered_at.store(at, Ordering::Relaxed);
        self.hook.emit(|| BreakerEvent {
            name: self.name.clone(),
            from: from.state(),
            to: to.state(),
            generation: to.generation(),
            reason,
            at,
            open_until,
        });
    }

    /// Moves to the state `make` builds from the current word and time.
    fn manual(&self, make: impl Fn(Word, u64) -> (Word, Option<u64>)) {
        let now = self.clock.now();
        let mut word = self.word();
        loop {
            let (next, until) = make(word, now);
            match self.cas(word, next) {
                Ok(()) => return self.transitioned(word, next, now, Reason::Manual, until),
                Err(actual) => word = actual,
            }
        }
    }

    /// Closes the circuit with an empty window and no backoff history, whatever the state.
    pub fn reset(&self) {
        self.manual(|w, _| (Word::closed(next_gen(w.generation())), None));
    }

    /// Opens the circuit now, as if the thresholds had been crossed (first-opening wait).
    pub fn trip(&self) {
        self.manual(|w, now| {
            let (next, until) = self.open_word(next_gen(w.generation()), 0, now);
            (next, Some(until))
        });
    }

    /// Moves a closed or open breaker to half-open now, so that only `half_open_calls` trial
    /// calls go through and their outcome decides, as after an open wait. For callers that
    /// know more than the breaker has seen: peers guarding the same dependency report it down
    /// (probe instead of sending full traffic into an outage) or back up (try a trial before
    /// the open wait has passed). Returns whether it moved; half-open, forced-open and
    /// disabled breakers stay as they are.
    ///
    /// A closed breaker's window is left behind with its generation (the trials decide), and a
    /// failed trial round opens it as a failed round after an opening does (the open wait for
    /// one earlier opening); an open breaker keeps its consecutive-openings count. The event's
    /// reason is [`Reason::Probe`].
    ///
    /// ```
    /// use levee_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().half_open_calls(1).build()?;
    /// assert!(breaker.probe());
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// breaker.try_acquire().unwrap().success();
    /// assert!(breaker.try_acquire().is_ok() && breaker.state() == State::Closed);
    /// # Ok::<(), levee_core::ConfigError>(())
    /// ```
    pub fn probe(&self) -> bool {
        let now = self.clock.now();
        let mut word = self.word();
        loop {
            let attempts = match word.state() {
                State::Closed => 0,
                State::Open => word.attempts(),
                State::HalfOpen | State::ForcedOpen | State::Disabled => return false,
            };
            let next = Word::half_open(next_gen(word.generation()), attempts, Trials::default());
            match self.cas(word, next) {
                Ok(()) => {
                    self.transitioned(word, next, now, Reason::Probe, None);
                    return true;
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Refuses every call until [`reset`](Self::reset) (or [`disable`](Self::disable)).
    pub fn force_open(&self) {
        self.manual(|w, _| (Word::forced_open(next_gen(w.generation())), None));
    }

    /// Permits every call and records nothing until [`reset`](Self::reset) (or
    /// [`force_open`](Self::force_open)).
    pub fn disable(&self) {
        self.manual(|w, _| (Word::disabled(next_gen(w.generation())), None));
    }

    /// The current state. An open breaker whose wait has passed reads open until a call asks
    /// for a permit.
    #[must_use]
    pub fn state(&self) -> State {
        self.word().state()
    }

    /// A snapshot of the state and the window.
    #[must_use]
    pub fn metrics(&self) -> BreakerMetrics {
        let word = self.word();
        let now = self.clock.now();
        let state = word.state();
        let (calls, failed, slow, judged) = match state {
            State::Closed => {
                let t = self.window.tally(word.generation(), now);
                (t.calls, t.failed, t.slow, t.calls >= self.rules().min_calls)
            }
            State::HalfOpen => {
                let t = word.trials();
                (u64::from(t.done), u64::from(t.failed), u64::from(t.slow), t.done > 0)
            }
            _ => (0, 0, 0, false),
        };
        let rate = |n: u64| (judged && calls > 0).then(|| n as f64 * 100.0 / calls as f64);
        let (openings, in_flight) = match state {
            State::Open => (u32::from(word.attempts()) + 1, 0),
            State::HalfOpen => {
                let t = word.trials();
                (u32::from(word.attempts()) + 1, u32::from(t.issued - t.done))
            }
            _ => (0, 0),
        };
        BreakerMetrics {
            name: self.name.clone(),
            state,
            calls,
            failed_calls: failed,
            slow_calls: slow,
            failure_rate: rate(failed),
            slow_call_rate: if self.rules().times_calls { rate(slow) } else { None },
            not_permitted: self.not_permitted.get(),
            time_in_state: Duration::from_nanos(
                now.saturating_sub(self.entered_at.load(Ordering::Relaxed)),
            ),
            open_until: if state == State::Open { self.open_until(word, now) } else { None },
            consecutive_openings: openings,
            trials_in_flight: in_flight,
        }
    }

    /// The breaker's name (empty unless set).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings it runs on now: those it was built with, or the last
    /// [`reconfigure`](Self::reconfigure)d ones.
    #[must_use]
    pub fn settings(&self) -> &BreakerSettings {
        &self.config.load().get().settings
    }

    /// The rules compiled from the current settings (one acquire load).
    #[inline(always)]
    fn rules(&self) -> &Rules {
        &self.config.load().get().rules
    }

    /// The clock it reads; [`Open::until`] is a reading of this clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

/// One generation of settings: what `reconfigure` replaces.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) rules: Rules,
    pub(crate) settings: BreakerSettings,
}

const fn reason_of(verdict: Verdict) -> Reason {
    match verdict {
        Verdict::FailureRate => Reason::FailureRate,
        Verdict::SlowCallRate => Reason::SlowCallRate,
        Verdict::FailureCount => Reason::FailureCount,
    }
}

use crate::Outcome;
