//! Fallback: replace chosen errors with a value or with the result of another async call.
//!
//! [`Fallback`] and [`FallbackHandler`] are also at the crate root; the handlers ([`Value`],
//! [`WithFn`]) and the error selectors ([`Select`]: [`Always`], [`Kinds`], [`When`]) that
//! appear in a fallback's type stay in this module.

use std::future::Future;

use levee_core::{EventHook, Listener};

use crate::stage::{Instrument, Outcome, Policy, Stage, adopt};
use crate::{Context, Error, ErrorKind, Event, Operation};

/// Produces the replacement for an error.
///
/// ```
/// use levee_policy::fallback::{Fallback, FallbackHandler};
/// use levee_policy::{Error, Pipeline};
///
/// /// Answers from a local table when the backend fails.
/// struct LocalPrices;
///
/// impl FallbackHandler<u32, &'static str> for LocalPrices {
///     async fn handle(&self, error: Error<&'static str>) -> Result<u32, Error<&'static str>> {
///         match error {
///             Error::Operation("down") => Ok(999),
///             other => Err(other), // not ours to hide
///         }
///     }
/// }
///
/// let pipeline = Pipeline::builder().fallback(Fallback::<LocalPrices>::handler(LocalPrices)).build()?;
/// assert_eq!(pipeline.call(|_| Err("down")), Ok(999));
/// assert_eq!(pipeline.call(|_| Err::<u32, _>("bad request")), Err(Error::Operation("bad request")));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait FallbackHandler<T, E>: Send + Sync {
    /// Turns the error into the call's result (which may still be an error).
    fn handle(&self, error: Error<E>) -> impl Future<Output = Result<T, Error<E>>> + Send;
}

/// A fixed value, cloned for each call that falls back (see [`Fallback::value`]).
///
/// ```
/// use levee_policy::{Error, Pipeline};
/// use levee_policy::fallback::Fallback;
///
/// let pipeline = Pipeline::builder().fallback(Fallback::value(0u32)).build()?;
/// let answer: Result<u32, Error<&str>> = pipeline.call(|_| Err("down"));
/// assert_eq!(answer, Ok(0));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Value<T>(pub T);

impl<T: Clone + Send + Sync, E: Send> FallbackHandler<T, E> for Value<T> {
    fn handle(&self, _error: Error<E>) -> impl Future<Output = Result<T, Error<E>>> + Send {
        std::future::ready(Ok(self.0.clone()))
    }
}

/// An async function of the error (see [`Fallback::with`]).
///
/// ```
/// use levee_policy::fallback::{Fallback, WithFn};
/// use levee_policy::{Error, Pipeline};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let stale = |e: Error<&'static str>| async move { Ok(format!("stale ({})", e.kind().as_str())) };
/// let fallback: Fallback<WithFn<_>> = Fallback::with(stale);
/// let pipeline = Pipeline::builder().fallback(fallback).build().unwrap();
/// let out = pipeline.execute(|_ctx| async { Err("backend down") }).await;
/// assert_eq!(out.unwrap(), "stale (operation)");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct WithFn<F>(pub F);

impl<T, E, F, Fut> FallbackHandler<T, E> for WithFn<F>
where
    F: Fn(Error<E>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<T, Error<E>>> + Send,
{
    fn handle(&self, error: Error<E>) -> impl Future<Output = Result<T, Error<E>>> + Send {
        (self.0)(error)
    }
}

/// Chooses the errors a fallback replaces.
///
/// ```
/// use levee_policy::fallback::{Fallback, Select};
/// use levee_policy::{Error, ErrorKind, Pipeline};
///
/// /// Falls back only when the backend was not reached in time.
/// struct SlowOnly;
///
/// impl<E> Select<E> for SlowOnly {
///     fn select(&self, error: &Error<E>) -> bool {
///         error.kind() == ErrorKind::Timeout
///     }
/// }
///
/// let pipeline = Pipeline::builder()
///     .fallback(Fallback::value(0u32).on(|e: &Error<&str>| SlowOnly.select(e)))
///     .build()?;
/// // An operation error is not selected: it passes through.
/// assert_eq!(pipeline.call(|_| Err("bad request")), Err(Error::Operation("bad request")));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait Select<E>: Send + Sync {
    /// True to fall back on `error`.
    fn select(&self, error: &Error<E>) -> bool;
}

/// Every error (the default).
///
/// ```
/// use levee_policy::fallback::{Always, Fallback, Select, Value};
/// use levee_policy::{Error, Pipeline};
///
/// // A fallback without `.on(..)` / `.on_kinds(..)` selects every error.
/// let fallback: Fallback<Value<u32>, Always> = Fallback::value(0);
/// assert!(Select::<()>::select(&Always, &Error::Operation(())));
/// let pipeline = Pipeline::builder().fallback(fallback).build()?;
/// assert_eq!(pipeline.call(|_| Err::<u32, _>("down")), Ok(0));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Always;

impl<E> Select<E> for Always {
    #[inline]
    fn select(&self, _error: &Error<E>) -> bool {
        true
    }
}

/// The errors of the listed kinds (see [`Fallback::on_kinds`]).
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Error, ErrorKind, Pipeline};
/// use levee_policy::fallback::Fallback;
///
/// // A cached answer when the call timed out; other errors pass through.
/// let pipeline = Pipeline::builder()
///     .fallback(Fallback::value("cached").on_kinds([ErrorKind::Timeout]))
///     .build()?;
/// let passed: Result<&str, Error<&str>> = pipeline.call(|_| Err("bad request"));
/// assert_eq!(passed, Err(Error::Operation("bad request")));
/// # let _ = Duration::ZERO;
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Kinds(Vec<ErrorKind>);

impl<E> Select<E> for Kinds {
    fn select(&self, error: &Error<E>) -> bool {
        self.0.contains(&error.kind())
    }
}

/// The errors a closure selects (see [`Fallback::on`]).
///
/// ```
/// use levee_policy::{Error, Pipeline};
/// use levee_policy::fallback::Fallback;
///
/// let pipeline = Pipeline::builder()
///     .fallback(Fallback::value(Vec::<u32>::new()).on(|e: &Error<&str>| matches!(e, Error::Operation("not found"))))
///     .build()?;
/// let answer: Result<Vec<u32>, Error<&str>> = pipeline.call(|_| Err("not found"));
/// assert_eq!(answer, Ok(vec![]));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct When<F>(pub F);

impl<E, F: Fn(&Error<E>) -> bool + Send + Sync> Select<E> for When<F> {
    #[inline]
    fn select(&self, error: &Error<E>) -> bool {
        (self.0)(error)
    }
}

/// Replaces chosen errors with a value or another call's result.
///
/// ```
/// use levee_policy::{Error, ErrorKind, Fallback, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let pipeline = Pipeline::builder()
///     .fallback(Fallback::value("stale but useful").on_kinds([ErrorKind::Operation]))
///     .build()
///     .unwrap();
/// let out = pipeline.execute(|_ctx| async { Err::<&str, _>("backend down") }).await;
/// assert_eq!(out, Ok("stale but useful"));
///
/// // An async fallback gets the error.
/// let pipeline = Pipeline::builder()
///     .fallback(Fallback::with(|e: Error<&'static str>| async move {
///         Ok(format!("fallback after {}", e.kind().as_str()))
///     }))
///     .build()
///     .unwrap();
/// let out = pipeline.execute(|_ctx| async { Err("backend down") }).await;
/// assert_eq!(out.unwrap(), "fallback after operation");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Fallback<H, S = Always> {
    handler: H,
    select: S,
    hook: EventHook<Event>,
}

impl<T> Fallback<Value<T>> {
    /// Falls back to `value`.
    #[must_use]
    pub fn value(value: T) -> Self {
        Self { handler: Value(value), select: Always, hook: EventHook::none() }
    }
}

impl<F> Fallback<WithFn<F>> {
    /// Falls back to the result of `f(error)`, an async function.
    #[must_use]
    pub fn with(f: F) -> Self {
        Self { handler: WithFn(f), select: Always, hook: EventHook::none() }
    }
}

impl<H, S> Fallback<H, S> {
    /// Any [`FallbackHandler`].
    #[must_use]
    pub fn handler(handler: H) -> Fallback<H, Always> {
        Fallback { handler, select: Always, hook: EventHook::none() }
    }

    /// Falls back only on the errors `select` chooses.
    #[must_use]
    pub fn on<F>(self, select: F) -> Fallback<H, When<F>> {
        Fallback { handler: self.handler, select: When(select), hook: self.hook }
    }

    /// Falls back only on errors of these kinds (an open circuit, a timeout, a refusal...).
    #[must_use]
    pub fn on_kinds(self, kinds: impl IntoIterator<Item = ErrorKind>) -> Fallback<H, Kinds> {
        Fallback {
            handler: self.handler,
            select: Kinds(kinds.into_iter().collect()),
            hook: self.hook,
        }
    }

    /// Reports [`Event::FallbackUsed`] to `listener`, beside the listeners already attached.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<Event> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Reports [`Event::FallbackUsed`] to the listeners of `hook`, in place of those attached
    /// before.
    #[must_use]
    pub fn hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// Reports [`Event::FallbackUsed`] to `hook`.
    #[deprecated(since = "0.1.0", note = "use `hook`, or `listener` to add one listener")]
    #[must_use]
    pub fn with_hook(self, hook: EventHook<Event>) -> Self {
        self.hook(hook)
    }
}

impl<H, S> Instrument for Fallback<H, S> {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        adopt(&mut self.hook, hook);
    }
}

impl<'c, Op, H, S> Policy<'c, Op> for Fallback<H, S>
where
    Op: Operation<'c>,
    H: FallbackHandler<Op::Output, Op::Error>,
    S: Select<Op::Error>,
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
        match inner.run(op, ctx).await {
            Err(error) if self.select.select(&error) => {
                let cause = error.kind();
                self.hook.emit(|| Event::FallbackUsed { cause });
                self.handler.handle(error).await
            }
            other => other,
        }
    }
}
