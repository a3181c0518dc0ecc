//! Hedging: when an attempt is slow, start another beside it; the first success wins and
//! the others are cancelled (dropped).
//!
//! The hedge delay is fixed, or a percentile (p95 by default) of the latency this policy has
//! observed, as in "The Tail at Scale" (Dean and Barroso, CACM 2013): hedging after the p95
//! costs about 5 % more requests and cuts the tail. The percentile is read from a striped
//! [`LatencyRecorder`] and cached in an atomic, refreshed every `refresh_every` successes, so
//! a call pays two clock reads and one record, never a histogram merge.
//!
//! A failed attempt starts the next hedge at once (while hedges remain), so hedging also
//! covers fast failures; a refused one (open circuit, rate limit, full bulkhead) does not,
//! since asking again at once would be refused too. When no attempt is left running and none
//! is due at once, the last error is returned. The first attempt costs no allocation; each hedge started is boxed.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use levee_core::sync::{AtomicU64, Ordering};
use levee_core::{ConfigError, EventHook, LatencyRecorder, Listener, Sleep, nanos};

use crate::stage::{Instrument, Outcome, Policy, Stage, adopt};
use crate::{Context, Event, Operation};

/// When to start a hedge.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Hedge, HedgeDelay};
///
/// // One hedge after the p95 latency observed so far (50 ms until there are enough samples).
/// let hedge = Hedge::new(1, HedgeDelay::p95(Duration::from_millis(50)))?;
/// assert_eq!(hedge.current_delay(), Duration::from_millis(50));
/// let fixed = Hedge::new(2, HedgeDelay::Fixed { delay: Duration::from_millis(20) })?;
/// assert_eq!(fixed.current_delay(), Duration::from_millis(20));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case", deny_unknown_fields))]
pub enum HedgeDelay {
    /// A fixed delay after the previous attempt started (zero: all at once).
    Fixed {
        /// The delay.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        delay: Duration,
    },
    /// The observed latency at `quantile` (0.95 for p95), at least `min`.
    Percentile {
        /// Which percentile, in `(0, 1]`.
        quantile: f64,
        /// Used until `min_samples` successes have been observed.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
        initial: Duration,
        /// The least delay, so a very fast backend is not hedged on every call.
        #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration", default))]
        min: Duration,
        /// Successes to observe before trusting the percentile (at least 1).
        #[cfg_attr(feature = "serde", serde(default = "hundred"))]
        min_samples: u64,
        /// Recompute the percentile every this many successes (at least 1).
        #[cfg_attr(feature = "serde", serde(default = "hundred"))]
        refresh_every: u64,
    },
}

#[cfg(feature = "serde")]
fn hundred() -> u64 {
    100
}

impl HedgeDelay {
    /// The observed p95, starting from `initial` until 100 samples are in.
    #[must_use]
    pub fn p95(initial: Duration) -> Self {
        Self::Percentile {
            quantile: 0.95,
            initial,
            min: Duration::ZERO,
            min_samples: 100,
            refresh_every: 100,
        }
    }
}

/// The hedging policy.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Hedge, HedgeDelay, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let hedge = Hedge::new(1, HedgeDelay::Fixed { delay: Duration::from_millis(50) }).unwrap();
/// let pipeline = Pipeline::builder().policy(hedge).build().unwrap();
/// // The primary (hedge 0) stalls; the hedge started after 50 ms answers.
/// let winner = pipeline
///     .execute(|ctx| async move {
///         if ctx.hedge() == 0 {
///             tokio::time::sleep(Duration::from_secs(10)).await;
///         }
///         Ok::<_, ()>(ctx.hedge())
///     })
///     .await;
/// assert_eq!(winner, Ok(1));
/// # }
/// ```
#[derive(Debug)]
pub struct Hedge {
    max_hedges: u32,
    delay: HedgeDelay,
    recorder: Arc<LatencyRecorder>,
    cached_nanos: AtomicU64,
    successes: AtomicU64,
    hook: EventHook<Event>,
}

impl Hedge {
    /// Up to `max_hedges` extra attempts, started `delay` apart.
    ///
    /// # Errors
    /// `max_hedges` zero or above 16; a `quantile` outside `(0, 1]`; zero `min_samples` or
    /// `refresh_every`.
    pub fn new(max_hedges: u32, delay: HedgeDelay) -> Result<Self, ConfigError> {
        Self::with_recorder(max_hedges, delay, Arc::new(LatencyRecorder::new()))
    }

    /// Like [`new`](Self::new), recording latency into `recorder` (to share or export it).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_recorder(
        max_hedges: u32,
        delay: HedgeDelay,
        recorder: Arc<LatencyRecorder>,
    ) -> Result<Self, ConfigError> {
        ConfigError::require_nonzero("max_hedges", max_hedges)?;
        if max_hedges > 16 {
            return Err(ConfigError::new("max_hedges", "must be at most 16"));
        }
        if let HedgeDelay::Percentile { quantile, min_samples, refresh_every, .. } = delay {
            if !(quantile > 0.0 && quantile <= 1.0) {
                return Err(ConfigError::new(
                    "quantile",
                    format!("must be in (0, 1], got {quantile}"),
                ));
            }
            ConfigError::require_nonzero("min_samples", min_samples)?;
            ConfigError::require_nonzero("refresh_every", refresh_every)?;
        }
        Ok(Self {
            max_hedges,
            delay,
            recorder,
            cached_nanos: AtomicU64::new(u64::MAX),
            successes: AtomicU64::new(0),
            hook: EventHook::none(),
        })
    }

    /// Reports [`Event::HedgeStarted`] and [`Event::HedgeWon`] to `listener`, beside the listeners
    /// already attached.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<Event> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Reports [`Event::HedgeStarted`] and [`Event::HedgeWon`] to the listeners of `hook`, in place
    /// of those attached before.
    #[must_use]
    pub fn hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// Reports [`Event::HedgeStarted`] and [`Event::HedgeWon`] to `hook`.
    #[deprecated(since = "0.1.0", note = "use `hook`, or `listener` to add one listener")]
    #[must_use]
    pub fn with_hook(self, hook: EventHook<Event>) -> Self {
        self.hook(hook)
    }

    /// The latency of successful attempts observed so far.
    #[must_use]
    pub fn recorder(&self) -> &Arc<LatencyRecorder> {
        &self.recorder
    }

    /// The delay a call starting now would hedge after.
    #[must_use]
    pub fn current_delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed { delay } => delay,
            HedgeDelay::Percentile { initial, .. } => {
                match self.cached_nanos.load(Ordering::Relaxed) {
                    u64::MAX => initial,
                    n => Duration::from_nanos(n),
                }
            }
        }
    }

    fn record_success(&self, started: u64, now: u64) {
        let HedgeDelay::Percentile { quantile, min, min_samples, refresh_every, .. } = self.delay
        else {
            return;
        };
        self.recorder.record_nanos(now.saturating_sub(started));
        let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= min_samples && (n - min_samples) % refresh_every == 0 {
            let observed = self.recorder.merged().value_at_quantile(quantile);
            let delay = observed.max(nanos(min)).min(u64::MAX - 1);
            self.cached_nanos.store(delay, Ordering::Relaxed);
        }
    }
}

/// Where hedged attempts live: boxed, because their number is only known at run time. Typed
/// after the primary attempt, whose future type they share.
type Slots<F> = Vec<(Option<Pin<Box<F>>>, u64)>;

fn hedge_slots<F>(_primary: &Pin<&mut Option<F>>) -> Slots<F> {
    Vec::new()
}

impl Instrument for Hedge {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<'c, Op: Operation<'c>> Policy<'c, Op> for Hedge {
    async fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        let delay = nanos(self.current_delay());
        let start = ctx.now();
        let mut primary = pin!(Some(inner.run(op, ctx)));
        let mut hedges = hedge_slots(&primary);
        let mut started = 0u32;
        let mut live = 1u32;
        let mut start_now = 0u32;
        let mut next_at = start.saturating_add(delay);
        let mut sleep = pin!(None::<Sleep>);
        let mut last_error = None;
        poll_fn(|cx| {
            loop {
                if let Some(call) = primary.as_mut().as_pin_mut() {
                    if let Poll::Ready(outcome) = call.poll(cx) {
                        primary.set(None);
                        live -= 1;
                        match outcome {
                            Ok(v) => {
                                self.record_success(start, ctx.now());
                                return Poll::Ready(Ok(v));
                            }
                            Err(e) => {
                                // A refusal (open circuit, rate limit) says "not now": it
                                // does not call for another attempt at once.
                                start_now += u32::from(!e.is_refusal());
                                last_error = Some(e);
                            }
                        }
                    }
                }
                for (n, (slot, began)) in hedges.iter_mut().enumerate() {
                    let Some(call) = slot.as_mut() else { continue };
                    if let Poll::Ready(outcome) = call.as_mut().poll(cx) {
                        *slot = None;
                        live -= 1;
                        match outcome {
                            Ok(v) => {
                                let hedge = n as u32 + 1;
                                self.hook.emit(|| Event::HedgeWon { hedge });
                                self.record_success(*began, ctx.now());
                                return Poll::Ready(Ok(v));
                            }
                            Err(e) => {
                                // A refusal (open circuit, rate limit) says "not now": it
                                // does not call for another attempt at once.
                                start_now += u32::from(!e.is_refusal());
                                last_error = Some(e);
                            }
                        }
                    }
                }
                if live == 0 && (start_now == 0 || started >= self.max_hedges) {
                    if let Some(e) = last_error.take() {
                        return Poll::Ready(Err(e));
                    }
                }
                if started < self.max_hedges {
                    let due = if start_now > 0 {
                        start_now -= 1;
                        true
                    } else {
                        if sleep.is_none() {
                            sleep.set(Some(ctx.clock().sleep_until(next_at)));
                        }
                        sleep.as_mut().as_pin_mut().is_some_and(|s| s.poll(cx).is_ready())
                    };
                    if due {
                        started += 1;
                        live += 1;
                        let hedge = started;
                        self.hook.emit(|| Event::HedgeStarted { hedge });
                        let now = ctx.now();
                        hedges.push((Some(Box::pin(inner.run(op, ctx.with_hedge(hedge)))), now));
                        next_at = now.saturating_add(delay);
                        sleep.set(None);
                        continue;
                    }
                }
                return Poll::Pending;
            }
        })
        .await
    }
}
