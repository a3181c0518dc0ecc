//! The rate limiters and bulkhead of levee-limit as pipeline policies.
//!
//! Any limiter of levee-limit's family works ([`AsyncRateLimit`]: GCRA, windows, warm-up,
//! pacer, one key of a keyed limiter, or a remote limiter). A refusal becomes
//! [`Error::RateLimited`] (with the limiter's retry-after, so a retry waits it out) or
//! [`Error::BulkheadFull`]. A bulkhead permit is held while the rest of
//! the pipeline runs and released when the call ends, is cancelled, or panics (it is an RAII
//! guard inside the call's future).

use std::sync::Arc;
use std::time::Duration;

use levee_core::{Clock, EventHook, FastClock, Listener, nanos};
use levee_limit::{AsyncRateLimit, Bulkhead, CheckNError, RateLimiter};

use crate::stage::{Instrument, Outcome, Policy, Stage, adopt};
use crate::{Context, Error, Event, Operation};

/// A rate limiter as a policy: each call (each attempt, when placed inside a retry) takes
/// one cell; a refused call fails with [`Error::RateLimited`], or first waits up to
/// [`max_wait`](Self::max_wait) for the limiter to admit it, sleeping on the pipeline's
/// clock (give the limiter the same clock).
///
/// `L` is any [`AsyncRateLimit`]: a [`RateLimiter`] by default, or any other limiter of
/// levee-limit's family, or a remote one. A local limiter decides without awaiting anything
/// and without allocating.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use levee_limit::{Quota, RateLimiter};
/// use levee_policy::{Error, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let limiter = Arc::new(RateLimiter::new(Quota::per_second(1)).unwrap());
/// let pipeline = Pipeline::builder().limiter(limiter).build().unwrap();
/// assert!(pipeline.execute(|_| async { Ok::<_, ()>(1) }).await.is_ok());
/// let refused = pipeline.execute(|_| async { Ok::<_, ()>(2) }).await;
/// assert!(matches!(refused, Err(Error::RateLimited { .. })));
/// # }
/// ```
#[derive(Debug)]
pub struct Limiter<L = RateLimiter> {
    limiter: Arc<L>,
    max_wait: Duration,
    hook: EventHook<Event>,
}

impl<L> Clone for Limiter<L> {
    fn clone(&self) -> Self {
        Self { limiter: self.limiter.clone(), max_wait: self.max_wait, hook: self.hook.clone() }
    }
}

impl<L: AsyncRateLimit> Limiter<L> {
    /// Refuses at once when `limiter` does.
    #[must_use]
    pub fn new(limiter: Arc<L>) -> Self {
        Self { limiter, max_wait: Duration::ZERO, hook: EventHook::none() }
    }

    /// Waits for the limiter up to `max_wait` in all (never past the call's deadline)
    /// before refusing.
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Reports refusals and waits to `listener`, beside the listeners already attached.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<Event> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Reports refusals and waits to the listeners of `hook`, in place of those attached before.
    #[must_use]
    pub fn hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// Reports refusals and waits to `hook`.
    #[deprecated(since = "0.1.0", note = "use `hook`, or `listener` to add one listener")]
    #[must_use]
    pub fn with_hook(self, hook: EventHook<Event>) -> Self {
        self.hook(hook)
    }

    /// The shared limiter.
    #[must_use]
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }

    /// One cell from a limiter that decides in memory (`None` for a remote one): the hot
    /// path, kept free of any future of its own.
    #[inline]
    fn decide_now(&self) -> Option<Result<(), Duration>> {
        self.limiter.try_decide_now(1).map(|decision| decision.map_err(retry_after))
    }

    /// One cell from the limiter, awaiting a remote limiter's answer.
    async fn decide(&self) -> Result<(), Duration> {
        match self.decide_now() {
            Some(decision) => decision,
            None => self.limiter.check_n(1).await.map_err(retry_after),
        }
    }

    /// Admits the call: at once when the limiter admits, or refuses with nothing to wait
    /// for; otherwise through [`admit_slowly`](Self::admit_slowly).
    async fn admit(&self, ctx: &Context<'_>) -> Result<(), Duration> {
        match self.decide_now() {
            Some(Ok(())) => Ok(()),
            Some(Err(refusal)) if self.max_wait.is_zero() => Err(refusal),
            _ => self.admit_slowly(ctx).await,
        }
    }

    /// A remote limiter's decision, or a wait of up to `max_wait` on the pipeline's clock.
    async fn admit_slowly(&self, ctx: &Context<'_>) -> Result<(), Duration> {
        let mut refusal = match self.decide().await {
            Ok(()) => return Ok(()),
            Err(retry_after) => retry_after,
        };
        if self.max_wait.is_zero() {
            return Err(refusal);
        }
        let start = ctx.now();
        let until = start.saturating_add(nanos(self.max_wait));
        let give_up = ctx.deadline().map_or(until, |d| d.min(until));
        loop {
            let wake = ctx.now().saturating_add(nanos(refusal));
            if wake > give_up {
                return Err(refusal);
            }
            ctx.clock().sleep_until(wake).await;
            match self.decide().await {
                Ok(()) => {
                    let waited = Duration::from_nanos(ctx.now().saturating_sub(start));
                    self.hook.emit(|| Event::RateLimitWaited { waited });
                    return Ok(());
                }
                Err(retry_after) => refusal = retry_after,
            }
        }
    }
}

/// How long a refusal says to wait. A cell always fits a burst of at least one; a limiter
/// that says otherwise never admits: refuse for good.
fn retry_after(refusal: CheckNError) -> Duration {
    match refusal {
        CheckNError::Throttled(t) => t.retry_after(),
        CheckNError::InsufficientCapacity(_) => Duration::MAX,
    }
}

impl<L> Instrument for Limiter<L> {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<'c, Op: Operation<'c>, L: AsyncRateLimit> Policy<'c, Op> for Limiter<L> {
    async fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        if let Err(retry_after) = self.admit(&ctx).await {
            self.hook.emit(|| Event::RateLimited { retry_after });
            return Err(Error::RateLimited { retry_after });
        }
        inner.run(op, ctx).await
    }
}

/// A [`Bulkhead`] as a policy: at most N calls run the rest of the pipeline at once. A full
/// bulkhead fails the call with [`Error::BulkheadFull`], after queueing if the bulkhead was
/// built with a queue (`max_queue`, `max_wait`; the wait sleeps on the bulkhead's clock).
/// Blocking calls ([`Pipeline::call`](crate::Pipeline::call), [`Context::is_blocking`])
/// never queue.
///
/// ```
/// use std::sync::Arc;
/// use levee_limit::Bulkhead;
/// use levee_policy::{Error, Pipeline};
///
/// let bulkhead = Arc::new(Bulkhead::new(1).unwrap());
/// let pipeline = Pipeline::builder().bulkhead(bulkhead.clone()).build().unwrap();
/// let _busy = bulkhead.try_acquire().unwrap(); // someone else holds the only permit
/// assert_eq!(pipeline.call(|_| Ok::<_, ()>(1)), Err(Error::BulkheadFull { max_concurrent: 1 }));
/// ```
#[derive(Debug)]
pub struct BulkheadPolicy<C: Clock = FastClock> {
    bulkhead: Arc<Bulkhead<C>>,
    hook: EventHook<Event>,
}

impl<C: Clock> Clone for BulkheadPolicy<C> {
    fn clone(&self) -> Self {
        Self { bulkhead: self.bulkhead.clone(), hook: self.hook.clone() }
    }
}

impl<C: Clock> BulkheadPolicy<C> {
    /// Guards calls with `bulkhead`.
    #[must_use]
    pub fn new(bulkhead: Arc<Bulkhead<C>>) -> Self {
        Self { bulkhead, hook: EventHook::none() }
    }

    /// Reports refusals to `listener`, beside the listeners already attached.
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

    /// The shared bulkhead.
    #[must_use]
    pub fn bulkhead(&self) -> &Arc<Bulkhead<C>> {
        &self.bulkhead
    }

    fn refuse<T, E>(&self) -> Result<T, Error<E>> {
        let max_concurrent = self.bulkhead.limit();
        self.hook.emit(|| Event::BulkheadRejected { max_concurrent });
        Err(Error::BulkheadFull { max_concurrent })
    }
}

impl<C: Clock> Instrument for BulkheadPolicy<C> {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<'c, Op: Operation<'c>, C: Clock> Policy<'c, Op> for BulkheadPolicy<C> {
    async fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        let _permit = match self.bulkhead.try_acquire() {
            Ok(permit) => permit,
            Err(_) if ctx.is_blocking() => return self.refuse(),
            // The queue, if the bulkhead has one; `Full` at once if it has none.
            Err(_) => match self.bulkhead.acquire().await {
                Ok(permit) => permit,
                Err(_) => return self.refuse(),
            },
        };
        inner.run(op, ctx).await
    }
}

impl<Ls, Ck> crate::PipelineBuilder<Ls, Ck> {
    /// Adds a rate limiter (any of levee-limit's family) that refuses at once (see
    /// [`Limiter`] to wait instead).
    pub fn limiter<L: AsyncRateLimit>(
        self,
        limiter: Arc<L>,
    ) -> crate::PipelineBuilder<crate::Chain<Limiter<L>, Ls>, Ck> {
        self.policy(Limiter::new(limiter))
    }

    /// Adds a bulkhead (see [`BulkheadPolicy`]).
    pub fn bulkhead<C: Clock>(
        self,
        bulkhead: Arc<Bulkhead<C>>,
    ) -> crate::PipelineBuilder<crate::Chain<BulkheadPolicy<C>, Ls>, Ck> {
        self.policy(BulkheadPolicy::new(bulkhead))
    }
}
