//! levee-breaker's circuit breaker as a pipeline policy.
//!
//! The call takes a permit (refused with [`Error::CircuitOpen`] and the breaker's
//! retry-after while the circuit is open), runs the rest of the pipeline, and reports the
//! outcome as the classifier sees it. A permit dropped without a report (the call was
//! cancelled) is released by the breaker, so a half-open trial is never leaked.

use std::sync::Arc;

use levee_breaker::{CircuitBreaker, Outcome as BreakerOutcome};
use levee_core::{Clock, EventHook, FastClock, Listener};

use crate::stage::{Instrument, Outcome, Policy, Stage, adopt};
use crate::{Context, Error, Event, Operation};

/// Decides what a call's result says about the backend.
///
/// ```
/// use std::sync::Arc;
/// use levee_breaker::{CircuitBreaker, Outcome};
/// use levee_policy::{Breaker, ClassifyOutcome, Error, Pipeline};
///
/// /// HTTP statuses: 5xx is the backend failing, anything else is its answer.
/// struct ServerErrors;
///
/// impl<E> ClassifyOutcome<u16, E> for ServerErrors {
///     fn classify(&self, outcome: &Result<u16, Error<E>>) -> Outcome {
///         match outcome {
///             Ok(status) if *status >= 500 => Outcome::Failure,
///             Ok(_) => Outcome::Success,
///             Err(_) => Outcome::Failure,
///         }
///     }
/// }
///
/// let breaker = Arc::new(CircuitBreaker::builder().build()?);
/// let pipeline = Pipeline::builder().policy(Breaker::new(breaker.clone()).classify(
///     |r: &Result<u16, Error<()>>| ServerErrors.classify(r),
/// )).build()?;
/// assert_eq!(pipeline.call(|_| Ok::<u16, ()>(503)), Ok(503)); // passed on, counted as a failure
/// assert_eq!(breaker.metrics().failed_calls, 1);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait ClassifyOutcome<T, E>: Send + Sync {
    /// Success, failure, or neither (not the backend's doing).
    fn classify(&self, outcome: &Result<T, Error<E>>) -> BreakerOutcome;
}

/// Successes count as successes; the operation's errors and timeouts as failures; refusals of
/// policies inside the breaker (a rate limit, a full bulkhead) are ignored, since the
/// backend never saw the call.
///
/// ```
/// use std::sync::Arc;
/// use levee_breaker::CircuitBreaker;
/// use levee_policy::{Breaker, Error, Pipeline};
///
/// // The default classifier: a rate-limit refusal inside the breaker is not a backend failure.
/// let breaker = Arc::new(CircuitBreaker::builder().build()?);
/// let pipeline = Pipeline::builder().policy(Breaker::new(breaker.clone())).build()?;
/// let _: Result<(), Error<&str>> = pipeline.call(|_| Err("500"));
/// assert_eq!(breaker.metrics().failed_calls, 1);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BackendFailures;

impl<T, E> ClassifyOutcome<T, E> for BackendFailures {
    #[inline]
    fn classify(&self, outcome: &Result<T, Error<E>>) -> BreakerOutcome {
        match outcome {
            Ok(_) => BreakerOutcome::Success,
            Err(Error::Operation(_) | Error::Timeout { .. }) => BreakerOutcome::Failure,
            Err(_) => BreakerOutcome::Ignored,
        }
    }
}

/// A classifier closure (see [`Breaker::classify`]).
///
/// ```
/// use std::sync::Arc;
/// use levee_breaker::{CircuitBreaker, Outcome};
/// use levee_policy::{Breaker, Error, Pipeline};
///
/// // A 404 is the caller's business, not the backend's health.
/// let breaker = Arc::new(CircuitBreaker::builder().build()?);
/// let stage = Breaker::new(breaker.clone()).classify(|r: &Result<u16, Error<()>>| match r {
///     Ok(404) => Outcome::Ignored,
///     Ok(s) if *s >= 500 => Outcome::Failure,
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure,
/// });
/// let pipeline = Pipeline::builder().policy(stage).build()?;
/// assert_eq!(pipeline.call(|_| Ok::<u16, ()>(404)), Ok(404));
/// assert_eq!(breaker.metrics().calls, 0);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClassifyWith<F>(pub F);

impl<T, E, F> ClassifyOutcome<T, E> for ClassifyWith<F>
where
    F: Fn(&Result<T, Error<E>>) -> BreakerOutcome + Send + Sync,
{
    #[inline]
    fn classify(&self, outcome: &Result<T, Error<E>>) -> BreakerOutcome {
        (self.0)(outcome)
    }
}

/// A [`CircuitBreaker`] as a policy.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use levee_breaker::CircuitBreaker;
/// use levee_policy::{Error, Pipeline};
///
/// let breaker = Arc::new(CircuitBreaker::builder().build().unwrap());
/// let pipeline = Pipeline::builder().breaker(breaker.clone()).build().unwrap();
/// assert_eq!(pipeline.call(|_| Ok::<_, ()>(1)), Ok(1));
/// breaker.force_open();
/// assert!(matches!(pipeline.call(|_| Ok::<_, ()>(1)), Err(Error::CircuitOpen { .. })));
/// ```
#[derive(Debug)]
pub struct Breaker<C: Clock = FastClock, K = BackendFailures> {
    breaker: Arc<CircuitBreaker<C>>,
    classify: K,
    hook: EventHook<Event>,
}

impl<C: Clock, K: Clone> Clone for Breaker<C, K> {
    fn clone(&self) -> Self {
        Self {
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            hook: self.hook.clone(),
        }
    }
}

impl<C: Clock> Breaker<C> {
    /// Guards calls with `breaker`, classifying with [`BackendFailures`].
    #[must_use]
    pub fn new(breaker: Arc<CircuitBreaker<C>>) -> Self {
        Self { breaker, classify: BackendFailures, hook: EventHook::none() }
    }
}

impl<C: Clock, K> Breaker<C, K> {
    /// Classifies outcomes with `f` instead (a 404 is not a backend failure, say).
    #[must_use]
    pub fn classify<F>(self, f: F) -> Breaker<C, ClassifyWith<F>> {
        Breaker { breaker: self.breaker, classify: ClassifyWith(f), hook: self.hook }
    }

    /// Reports refusals to `listener`, beside the listeners already attached (the breaker's own
    /// transitions go to its own listeners).
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<Event> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Reports refusals to the listeners of `hook`, in place of those attached before.
    #[must_use]
    pub fn hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// Reports refusals to `hook`.
    #[deprecated(since = "0.1.0", note = "use `hook`, or `listener` to add one listener")]
    #[must_use]
    pub fn with_hook(self, hook: EventHook<Event>) -> Self {
        self.hook(hook)
    }

    /// The shared breaker.
    #[must_use]
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }
}

impl<C: Clock, K> Instrument for Breaker<C, K> {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<'c, Op, C, K> Policy<'c, Op> for Breaker<C, K>
where
    Op: Operation<'c>,
    C: Clock,
    K: ClassifyOutcome<Op::Output, Op::Error>,
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
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(open) => {
                let retry_after = open.retry_after();
                self.hook.emit(|| Event::CircuitRejected { retry_after });
                return Err(Error::CircuitOpen { retry_after });
            }
        };
        let outcome = inner.run(op, ctx).await;
        permit.record_outcome(self.classify.classify(&outcome));
        outcome
    }
}

impl<L, Ck> crate::PipelineBuilder<L, Ck> {
    /// Adds a circuit breaker, classifying with [`BackendFailures`] (see [`Breaker`] for
    /// another classifier).
    pub fn breaker<C: Clock>(
        self,
        breaker: Arc<CircuitBreaker<C>>,
    ) -> crate::PipelineBuilder<crate::Chain<Breaker<C>, L>, Ck> {
        self.policy(Breaker::new(breaker))
    }
}
