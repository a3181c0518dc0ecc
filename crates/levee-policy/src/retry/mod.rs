//! Retry: attempts, backoff, a retry-on predicate, retry-after hints and a retry budget.
//!
//! A failed attempt is retried when the predicate says so, while attempts remain, while the
//! [`RetryBudget`] (if any) has a token, and while the next attempt can start before the
//! [`Context`]'s deadline. The wait before it is the backoff's delay, or the error's
//! [`RetryAfter`] hint if that is longer: a retry never runs into an open circuit before it
//! may close, nor into a rate limiter before it admits. A hint longer than
//! `max_retry_after` ends the retries at once (waiting that long would be pointless).

mod backoff;
mod budget;

use std::sync::Arc;
use std::time::Duration;

use levee_core::{ConfigError, EventHook, Listener};

pub use backoff::Backoff;
pub use budget::{RetryBudget, RetryBudgetBuilder};

use crate::stage::{Instrument, Outcome, Policy, Stage, adopt};
use levee_core::nanos;

use crate::{Context, Error, Event, Operation, RetryAfter};

/// Decides whether an attempt's outcome is worth retrying, and how long to wait at least.
///
/// ```
/// use levee_policy::{Error, Retry, RetryOn};
///
/// /// Retries errors, and responses whose status says "try again".
/// struct Transient;
///
/// impl RetryOn<u16, std::io::Error> for Transient {
///     fn should_retry(&self, outcome: &Result<u16, Error<std::io::Error>>) -> bool {
///         matches!(outcome, Err(_) | Ok(502..=504))
///     }
/// }
///
/// let retry = Retry::builder().max_attempts(3).with_predicate(Transient).build()?;
/// assert_eq!(retry.max_attempts(), 3);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait RetryOn<T, E>: Send + Sync {
    /// True to retry this outcome (an error, or a response such as an HTTP 503).
    fn should_retry(&self, outcome: &Result<T, Error<E>>) -> bool;

    /// The least wait before retrying this error. By default the hint of a pipeline refusal
    /// (open circuit, rate limit).
    #[inline]
    fn retry_after(&self, error: &Error<E>) -> Option<Duration> {
        error.retry_after()
    }
}

/// Retries every error and no success (the default predicate).
///
/// ```
/// use levee_policy::{AnyError, Error, Pipeline, Retry, RetryOn};
///
/// // The default predicate: every error is retried, every success kept.
/// let retry: Retry<AnyError> = Retry::builder().max_attempts(3).build()?;
/// assert!(RetryOn::<u32, &str>::should_retry(&AnyError, &Err(Error::Operation("down"))));
/// assert!(!RetryOn::<u32, &str>::should_retry(&AnyError, &Ok(1)));
/// let pipeline = Pipeline::builder().retry(retry).build()?;
/// let calls = std::sync::atomic::AtomicU32::new(0);
/// let out: Result<u32, Error<&str>> = pipeline.call(|_| {
///     calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///     Err("down")
/// });
/// assert_eq!((out, calls.into_inner()), (Err(Error::Operation("down")), 3));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyError;

impl<T, E> RetryOn<T, E> for AnyError {
    #[inline]
    fn should_retry(&self, outcome: &Result<T, Error<E>>) -> bool {
        outcome.is_err()
    }
}

/// Retries the errors a closure selects (see [`RetryBuilder::retry_on_error`]).
///
/// ```
/// use levee_policy::{Error, Retry};
///
/// // Retry timeouts only; an operation error is final.
/// let retry = Retry::builder().retry_on_error(|e: &Error<String>| matches!(e, Error::Timeout { .. })).build()?;
/// # let _ = retry;
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct OnError<F>(pub F);

impl<T, E, F: Fn(&Error<E>) -> bool + Send + Sync> RetryOn<T, E> for OnError<F> {
    #[inline]
    fn should_retry(&self, outcome: &Result<T, Error<E>>) -> bool {
        outcome.as_ref().err().is_some_and(&self.0)
    }
}

/// Retries the outcomes a closure selects, errors or responses (see
/// [`RetryBuilder::retry_on`]).
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Backoff, Error, Pipeline, Retry};
///
/// // A 503 is an `Ok` response that is still worth retrying.
/// let retry = Retry::builder()
///     .max_attempts(3)
///     .backoff(Backoff::constant(Duration::ZERO))
///     .retry_on(|r: &Result<u16, Error<()>>| matches!(r, Ok(503) | Err(_)))
///     .build()?;
/// let pipeline = Pipeline::builder().retry(retry).build()?;
/// let status = pipeline.call(|ctx| Ok::<u16, ()>(if ctx.attempt() < 2 { 503 } else { 200 }));
/// assert_eq!(status, Ok(200));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct OnOutcome<F>(pub F);

impl<T, E, F: Fn(&Result<T, Error<E>>) -> bool + Send + Sync> RetryOn<T, E> for OnOutcome<F> {
    #[inline]
    fn should_retry(&self, outcome: &Result<T, Error<E>>) -> bool {
        (self.0)(outcome)
    }
}

/// Also honours the operation error's own [`RetryAfter`] hint (see
/// [`RetryBuilder::honour_retry_after`]).
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Retry, RetryAfter};
///
/// /// An upstream 429 that says when to come back.
/// #[derive(Debug)]
/// struct TooMany(Duration);
///
/// impl RetryAfter for TooMany {
///     fn retry_after(&self) -> Option<Duration> {
///         Some(self.0)
///     }
/// }
///
/// // Wait at least the hint before retrying, but never more than 5 s.
/// let retry = Retry::builder()
///     .honour_retry_after()
///     .max_retry_after(Duration::from_secs(5))
///     .build()?;
/// # let _: &Retry<_> = &retry;
/// # let _ = TooMany(Duration::ZERO);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WithHint<P>(pub P);

impl<T, E: RetryAfter, P: RetryOn<T, E>> RetryOn<T, E> for WithHint<P> {
    #[inline]
    fn should_retry(&self, outcome: &Result<T, Error<E>>) -> bool {
        self.0.should_retry(outcome)
    }

    fn retry_after(&self, error: &Error<E>) -> Option<Duration> {
        match error {
            Error::Operation(e) => e.retry_after(),
            other => self.0.retry_after(other),
        }
    }
}

/// The retry policy. Build it with [`Retry::builder`].
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use levee_policy::{Backoff, Pipeline, Retry};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let retry = Retry::builder()
///     .max_attempts(3)
///     .backoff(Backoff::constant(Duration::from_millis(10)))
///     .build()
///     .unwrap();
/// let pipeline = Pipeline::builder().policy(retry).build().unwrap();
/// let calls = AtomicU32::new(0);
/// let out = pipeline
///     .execute(|_ctx| {
///         let n = calls.fetch_add(1, Ordering::Relaxed);
///         async move { if n < 2 { Err("flaky") } else { Ok(n) } }
///     })
///     .await;
/// assert_eq!(out, Ok(2));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Retry<P = AnyError> {
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<Arc<RetryBudget>>,
    max_retry_after: Option<Duration>,
    predicate: P,
    hook: EventHook<Event>,
}

/// Builds a [`Retry`]; every setting is checked in [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Backoff, Retry};
///
/// #[derive(Debug)]
/// enum DbError { Contention, Constraint }
///
/// // Retry only contention, up to 4 attempts, exponential backoff with jitter.
/// let retry = Retry::builder()
///     .max_attempts(4)
///     .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)).with_jitter(0.2))
///     .retry_on_error(|e: &DbError| matches!(e, DbError::Contention))
///     .build()?;
/// assert_eq!(retry.max_attempts(), 4);
/// # let _ = DbError::Constraint;
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetryBuilder<P = AnyError> {
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<Arc<RetryBudget>>,
    max_retry_after: Option<Duration>,
    predicate: P,
    hook: EventHook<Event>,
}

impl Retry {
    /// A builder with the defaults: 3 attempts, [`Backoff::default`], no budget, every error
    /// retried, no limit on retry-after hints (beyond the deadline).
    #[must_use]
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            max_attempts: 3,
            backoff: Backoff::default(),
            budget: None,
            max_retry_after: None,
            predicate: AnyError,
            hook: EventHook::none(),
        }
    }
}

impl<P> RetryBuilder<P> {
    /// Attempts in all, the first included (at least 1; 1 means never retry).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The delay schedule.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Limits retries with `budget`; share one budget between every retry policy that
    /// calls the same backend.
    #[must_use]
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Gives up at once when an error's retry-after hint is longer than `max`.
    #[must_use]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = Some(max);
        self
    }

    /// Reports retries, exhaustion and abandonment to `listener`, beside the listeners already
    /// attached.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<Event> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Reports retries, exhaustion and abandonment to the listeners of `hook`, in place of those
    /// attached before.
    #[must_use]
    pub fn hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// Reports retries, exhaustion and abandonment to `hook`.
    #[deprecated(since = "0.1.0", note = "use `hook`, or `listener` to add one listener")]
    #[must_use]
    pub fn with_hook(self, hook: EventHook<Event>) -> Self {
        self.hook(hook)
    }

    /// Retries the outcomes `predicate` selects: errors, and responses too (`Ok` values that
    /// mean "try again", such as an HTTP 503).
    #[must_use]
    pub fn retry_on<F>(self, predicate: F) -> RetryBuilder<OnOutcome<F>> {
        self.with_predicate(OnOutcome(predicate))
    }

    /// Retries the errors `predicate` selects; successes are never retried.
    #[must_use]
    pub fn retry_on_error<F>(self, predicate: F) -> RetryBuilder<OnError<F>> {
        self.with_predicate(OnError(predicate))
    }

    /// Any [`RetryOn`] implementation.
    #[must_use]
    pub fn with_predicate<Q>(self, predicate: Q) -> RetryBuilder<Q> {
        RetryBuilder {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            max_retry_after: self.max_retry_after,
            predicate,
            hook: self.hook,
        }
    }

    /// Also waits for the retry-after hint inside the operation's own error (which must
    /// implement [`RetryAfter`]), as for an HTTP 429 with a `Retry-After` header.
    #[must_use]
    pub fn honour_retry_after(self) -> RetryBuilder<WithHint<P>> {
        RetryBuilder {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            max_retry_after: self.max_retry_after,
            predicate: WithHint(self.predicate),
            hook: self.hook,
        }
    }

    /// Checks the settings and builds the policy.
    ///
    /// # Errors
    /// `max_attempts` zero; an invalid backoff (see [`Backoff::validate`]); a zero
    /// `max_retry_after`.
    pub fn build(self) -> Result<Retry<P>, ConfigError> {
        ConfigError::require_nonzero("max_attempts", self.max_attempts)?;
        self.backoff.validate()?;
        if let Some(max) = self.max_retry_after {
            ConfigError::require_positive("max_retry_after", max)?;
        }
        Ok(Retry {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            max_retry_after: self.max_retry_after,
            predicate: self.predicate,
            hook: self.hook,
        })
    }
}

impl<P> Retry<P> {
    /// Attempts in all, the first included.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The retry budget, to share it or watch it.
    #[must_use]
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.budget.as_ref()
    }
}

impl<P> Retry<P> {
    /// Decides whether retry number `attempt` happens, and when: `None` to give up (and
    /// return `outcome`). Kept out of line: the happy path never gets here.
    #[cold]
    #[inline(never)]
    fn next_delay<T, E>(
        &self,
        attempt: u32,
        previous: Duration,
        outcome: &Result<T, Error<E>>,
        ctx: &Context<'_>,
    ) -> Option<(Duration, u64)>
    where
        P: RetryOn<T, E>,
    {
        if attempt >= self.max_attempts {
            self.hook.emit(|| Event::RetriesExhausted { attempts: attempt });
            return None;
        }
        let mut delay = self.backoff.delay(attempt, previous);
        if let Err(error) = outcome {
            if let Some(hint) = self.predicate.retry_after(error) {
                if self.max_retry_after.is_some_and(|max| hint > max) {
                    self.hook.emit(|| Event::RetryAbandoned { attempts: attempt, wait: hint });
                    return None;
                }
                delay = delay.max(hint);
            }
        }
        let start_at = ctx.now().saturating_add(nanos(delay));
        if ctx.deadline().is_some_and(|deadline| start_at >= deadline) {
            self.hook.emit(|| Event::RetryAbandoned { attempts: attempt, wait: delay });
            return None;
        }
        if let Some(budget) = &self.budget {
            if !budget.try_withdraw() {
                self.hook.emit(|| Event::RetryBudgetExhausted { attempts: attempt });
                return None;
            }
        }
        self.hook.emit(|| Event::Retry {
            attempt,
            delay,
            cause: outcome.as_ref().err().map(Error::kind),
        });
        Some((delay, start_at))
    }
}

impl<P> Instrument for Retry<P> {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<'c, Op, P> Policy<'c, Op> for Retry<P>
where
    Op: Operation<'c>,
    P: RetryOn<Op::Output, Op::Error>,
{
    async fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        let mut attempt = 0u32;
        let mut previous = Duration::ZERO;
        loop {
            let outcome = inner.run(op, ctx.with_attempt(attempt)).await;
            if !self.predicate.should_retry(&outcome) {
                return outcome;
            }
            attempt += 1;
            let Some((delay, start_at)) = self.next_delay(attempt, previous, &outcome, &ctx) else {
                return outcome;
            };
            drop(outcome);
            if !delay.is_zero() {
                ctx.clock().sleep_until(start_at).await;
            }
            previous = delay;
        }
    }
}
