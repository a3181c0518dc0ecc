//! Timeout: per attempt or overall, depending on where it sits in the pipeline.
//!
//! A timeout outside [`Retry`](crate::Retry) bounds the whole call (every attempt and every
//! backoff delay); one inside bounds each attempt. Either way it tightens the
//! [`Context`]'s deadline, so the operation sees it and can pass it on, and so a retry never
//! starts an attempt that the overall deadline would cut short.
//!
//! The happy path touches no timer: the operation is polled first, and only if it is not
//! ready does the timeout register a sleep. A timeout whose deadline is not tighter than
//! one already in force registers nothing at all; the enclosing one fires.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use levee_core::{ConfigError, EventHook, Listener};

use crate::stage::{Instrument, Outcome, Policy, Stage, adopt};
use levee_core::{Sleep, nanos};

use crate::{Context, Error, Event, Operation};

/// Fails a call with [`Error::Timeout`] when it runs longer than a fixed duration.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Error, Pipeline, Timeout};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let pipeline = Pipeline::builder()
///     .policy(Timeout::new(Duration::from_millis(100)).unwrap())
///     .build()
///     .unwrap();
/// let slow = pipeline
///     .execute(|_ctx| async {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Ok::<_, ()>(())
///     })
///     .await;
/// assert_eq!(slow, Err(Error::Timeout { timeout: Duration::from_millis(100) }));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Timeout {
    timeout: Duration,
    hook: EventHook<Event>,
}

impl Timeout {
    /// A timeout of `timeout`.
    ///
    /// # Errors
    /// When `timeout` is zero (setting `timeout`).
    pub fn new(timeout: Duration) -> Result<Self, ConfigError> {
        ConfigError::require_positive("timeout", timeout)?;
        Ok(Self { timeout, hook: EventHook::none() })
    }

    pub(crate) fn unchecked(timeout: Duration) -> Self {
        Self { timeout, hook: EventHook::none() }
    }

    /// Reports [`Event::TimedOut`] to `listener`, beside the listeners already attached.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<Event> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Reports [`Event::TimedOut`] to the listeners of `hook`, in place of those attached before.
    #[must_use]
    pub fn hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// Reports [`Event::TimedOut`] to `hook`.
    #[deprecated(since = "0.1.0", note = "use `hook`, or `listener` to add one listener")]
    #[must_use]
    pub fn with_hook(self, hook: EventHook<Event>) -> Self {
        self.hook(hook)
    }

    /// The configured duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.timeout
    }
}

impl Instrument for Timeout {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<'c, Op: Operation<'c>> Policy<'c, Op> for Timeout {
    async fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        let own = ctx.now().saturating_add(nanos(self.timeout));
        if ctx.deadline().is_some_and(|d| d <= own) {
            // An enclosing deadline is at least as tight: it fires, not this one.
            return inner.run(op, ctx).await;
        }
        TimeoutFuture {
            call: inner.run(op, ctx.with_deadline(own)),
            sleep: None,
            deadline: own,
            ctx,
            policy: self,
        }
        .await
    }
}

pin_project_lite::pin_project! {
    /// The rest of the pipeline racing this timeout's sleep on the pipeline's clock, which
    /// is only made (and only registered with the clock) once the call is found pending.
    struct TimeoutFuture<'a, F> {
        #[pin]
        call: F,
        #[pin]
        sleep: Option<Sleep>,
        deadline: u64,
        ctx: Context<'a>,
        policy: &'a Timeout,
    }
}

impl<T, E, F> Future for TimeoutFuture<'_, F>
where
    F: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(outcome) = this.call.poll(cx) {
            return Poll::Ready(outcome);
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(this.ctx.clock().sleep_until(*this.deadline)));
        }
        match this.sleep.as_pin_mut().map(|s| s.poll(cx)) {
            Some(Poll::Ready(())) => {
                let timeout = this.policy.timeout;
                this.policy.hook.emit(|| Event::TimedOut { timeout });
                Poll::Ready(Err(Error::Timeout { timeout }))
            }
            _ => Poll::Pending,
        }
    }
}
