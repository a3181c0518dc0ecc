//! The rate limiter and bulkhead of levee-limit as pipeline policies.
//!
//! A refusal becomes [`Error::RateLimited`] (with the limiter's retry-after, so a retry
//! waits it out) or [`Error::BulkheadFull`]. A bulkhead permit is held while the rest of
//! the pipeline runs and released when the call ends, is cancelled, or panics (it is an RAII
//! guard inside the call's future).

use std::sync::Arc;
use std::time::Duration;

use levee_core::{Clock, EventHook, FastClock};
use levee_limit::{Bulkhead, RateLimiter};

use crate::stage::{Instrument, Outcome, Policy, Stage, adopt};
use crate::{Context, Error, Event, Operation, Timer};

/// A [`RateLimiter`] as a policy: each call (each attempt, when placed inside a retry) takes
/// one cell; a refused call fails with [`Error::RateLimited`], or first waits up to
/// [`max_wait`](Self::max_wait) for the limiter to admit it.
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
pub struct Limiter<C: Clock = FastClock> {
    limiter: Arc<RateLimiter<C>>,
    max_wait: Duration,
    hook: EventHook<Event>,
}

impl<C: Clock> Clone for Limiter<C> {
    fn clone(&self) -> Self {
        Self { limiter: self.limiter.clone(), max_wait: self.max_wait, hook: self.hook.clone() }
    }
}

impl<C: Clock> Limiter<C> {
    /// Refuses at once when `limiter` does.
    #[must_use]
    pub fn new(limiter: Arc<RateLimiter<C>>) -> Self {
        Self { limiter, max_wait: Duration::ZERO, hook: EventHook::none() }
    }

    /// Waits for the limiter up to `max_wait` in all (never past the call's deadline)
    /// before refusing.
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Reports refusals and waits to `hook`.
    #[must_use]
    pub fn with_hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// The shared limiter.
    #[must_use]
    pub fn limiter(&self) -> &Arc<RateLimiter<C>> {
        &self.limiter
    }

    async fn admit<Tm: Timer>(&self, ctx: &Context) -> Result<(), Duration> {
        let mut refusal = match self.limiter.check() {
            Ok(()) => return Ok(()),
            Err(t) => t.retry_after(),
        };
        if self.max_wait.is_zero() {
            return Err(refusal);
        }
        let start = Tm::now();
        let give_up =
            ctx.deadline().map_or(start + self.max_wait, |d| d.min(start + self.max_wait));
        loop {
            let wake = Tm::now() + refusal;
            if wake > give_up {
                return Err(refusal);
            }
            Tm::sleep_until(wake).await;
            match self.limiter.check() {
                Ok(()) => {
                    let waited = Tm::now().saturating_duration_since(start);
                    self.hook.emit(|| Event::RateLimitWaited { waited });
                    return Ok(());
                }
                // A clock that does not follow the timer (a manual clock) would never admit:
                // waiting at least a millisecond per round bounds the loop by `max_wait`.
                Err(t) => refusal = t.retry_after().max(Duration::from_millis(1)),
            }
        }
    }
}

impl<C: Clock> Instrument for Limiter<C> {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<Op: Operation, Tm: Timer, C: Clock> Policy<Op, Tm> for Limiter<C> {
    async fn run<'a, I: Stage<Op, Tm>>(
        &'a self,
        inner: &'a I,
        op: &'a Op,
        ctx: Context,
    ) -> Outcome<Op> {
        if let Err(retry_after) = self.admit::<Tm>(&ctx).await {
            self.hook.emit(|| Event::RateLimited { retry_after });
            return Err(Error::RateLimited { retry_after });
        }
        inner.run(op, ctx).await
    }
}

/// A [`Bulkhead`] as a policy: at most N calls run the rest of the pipeline at once. A full
/// bulkhead fails the call with [`Error::BulkheadFull`], after queueing if the bulkhead was
/// built with a queue (`max_queue`, `max_wait`). Blocking calls
/// ([`Pipeline::call`](crate::Pipeline::call)) never queue.
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

    /// Reports refusals to `hook`.
    #[must_use]
    pub fn with_hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
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

impl<Op: Operation, Tm: Timer, C: Clock> Policy<Op, Tm> for BulkheadPolicy<C> {
    async fn run<'a, I: Stage<Op, Tm>>(
        &'a self,
        inner: &'a I,
        op: &'a Op,
        ctx: Context,
    ) -> Outcome<Op> {
        let _permit = match self.bulkhead.try_acquire() {
            Ok(permit) => permit,
            Err(_) if Tm::BLOCKING => return self.refuse(),
            // The queue, if the bulkhead has one; `Full` at once if it has none.
            Err(_) => match self.bulkhead.acquire().await {
                Ok(permit) => permit,
                Err(_) => return self.refuse(),
            },
        };
        inner.run(op, ctx).await
    }
}

impl<L> crate::PipelineBuilder<L> {
    /// Adds a rate limiter that refuses at once (see [`Limiter`] to wait instead).
    pub fn limiter<C: Clock>(
        self,
        limiter: Arc<RateLimiter<C>>,
    ) -> crate::PipelineBuilder<crate::Chain<Limiter<C>, L>> {
        self.policy(Limiter::new(limiter))
    }

    /// Adds a bulkhead (see [`BulkheadPolicy`]).
    pub fn bulkhead<C: Clock>(
        self,
        bulkhead: Arc<Bulkhead<C>>,
    ) -> crate::PipelineBuilder<crate::Chain<BulkheadPolicy<C>, L>> {
        self.policy(BulkheadPolicy::new(bulkhead))
    }
}
