//! How policies compose: a statically nested stack, generic over the operation, with no
//! boxing and no allocation per call.
//!
//! A [`Policy`] wraps "the rest of the pipeline" (any [`Stage`]); [`Layered`] pairs a policy
//! with the stage it wraps, and [`Leaf`] (which calls the operation) ends the stack. The
//! pipeline `timeout -> retry -> breaker` is the type
//! `Layered<Timeout, Layered<Retry, Layered<Breaker, Leaf>>>`, and a call is one future whose
//! size and layout the compiler knows: nothing is boxed, nothing dispatched dynamically.

use std::future::Future;

use levee_core::EventHook;

use crate::{Context, Error, Event, Operation};

/// What a stage resolves to: the operation's output, or a pipeline [`Error`].
///
/// ```
/// use levee_policy::{Context, Error, Outcome, Pipeline, SyncOperation};
///
/// type Lookup = SyncOperation<fn(Context<'_>) -> Result<u32, &'static str>>;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let pipeline = Pipeline::builder().build().unwrap();
/// let op: Lookup = SyncOperation(|_ctx| Err("down"));
/// // `run_with` resolves to the `Outcome` of the operation: its output or a pipeline error.
/// let out: Outcome<'_, Lookup> = pipeline.run_with(&op, Context::new(pipeline.clock())).await;
/// assert_eq!(out, Err(Error::Operation("down")));
/// # });
/// ```
pub type Outcome<'c, Op> =
    Result<<Op as Operation<'c>>::Output, Error<<Op as Operation<'c>>::Error>>;

/// A runnable pipeline (or the rest of one, seen from a policy): runs one call of `Op`.
///
/// `'c` is the lifetime of the call: the [`Context`] (and through it the pipeline's clock)
/// and the borrows of the stage and the operation.
///
/// ```
/// use levee_policy::{Context, Leaf, Stage, SyncOperation};
/// use levee_core::FastClock;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // Every stack is a Stage; `Leaf`, the innermost, just calls the operation.
/// let op = SyncOperation(|ctx: Context<'_>| Ok::<u32, ()>(ctx.attempt()));
/// let clock = FastClock;
/// assert_eq!(Leaf.run(&op, Context::new(&clock)).await, Ok(0));
/// # });
/// ```
pub trait Stage<'c, Op: Operation<'c>>: Send + Sync {
    /// Runs the call with `ctx`. The future borrows the stage and the operation.
    fn run<'s>(
        &'s self,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> impl Future<Output = Outcome<'c, Op>> + Send + 's
    where
        'c: 's;
}

/// One resilience policy: runs the rest of the pipeline (`inner`) under its rule, taking
/// time and sleeps from the call's [`Context`] (the pipeline's clock).
///
/// Implement it to add your own policy to a [`Pipeline`](crate::Pipeline) with
/// [`PipelineBuilder::policy`](crate::PipelineBuilder::policy).
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use levee_core::EventHook;
/// use levee_policy::{Context, Error, Event, Instrument, Operation, Outcome, Pipeline, Policy, Stage};
///
/// /// A policy of your own: counts calls, then runs the rest of the pipeline.
/// #[derive(Default)]
/// struct CountCalls(AtomicU32);
///
/// impl Instrument for CountCalls {
///     fn instrument(&mut self, _hook: &EventHook<Event>) {} // no events of its own
/// }
///
/// impl<'c, Op: Operation<'c>> Policy<'c, Op> for CountCalls {
///     async fn run<'s, I: Stage<'c, Op>>(&'s self, inner: &'s I, op: &'s Op, ctx: Context<'c>) -> Outcome<'c, Op>
///     where
///         'c: 's,
///     {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         inner.run(op, ctx).await
///     }
/// }
///
/// let pipeline = Pipeline::builder().policy(CountCalls::default()).build()?;
/// assert_eq!(pipeline.call(|_| Ok::<u32, ()>(1)), Ok(1));
/// assert_eq!(pipeline.call(|_| Err::<u32, ()>(())), Err(Error::Operation(())));
/// assert_eq!(pipeline.stack().policy.0.load(Ordering::Relaxed), 2);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait Policy<'c, Op: Operation<'c>>: Send + Sync {
    /// Runs `inner` (once, several times, or not at all) for one call.
    fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> impl Future<Output = Outcome<'c, Op>> + Send + 's
    where
        'c: 's;
}

/// Gives a policy the pipeline's listener when it has none of its own.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use levee_core::EventHook;
/// use levee_policy::{Error, Event, Instrument, Pipeline, Timeout};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let timeouts = Arc::new(AtomicU32::new(0));
/// let count = Arc::clone(&timeouts);
/// let hook = EventHook::none().with(move |_: &Event| {
///     count.fetch_add(1, Ordering::Relaxed);
/// });
/// // `build` instruments each policy with the pipeline's listener unless it has its own;
/// // a policy adopts a hook the same way by hand.
/// let mut timeout = Timeout::new(Duration::from_millis(50)).unwrap();
/// timeout.instrument(&hook);
/// let pipeline = Pipeline::builder().policy(timeout).build().unwrap();
/// let out: Result<(), Error<()>> = pipeline.execute(|_ctx| std::future::pending()).await;
/// assert!(matches!(out, Err(Error::Timeout { .. })));
/// assert_eq!(timeouts.load(Ordering::Relaxed), 1);
/// # });
/// ```
pub trait Instrument {
    /// Adopts `hook` unless the policy already has listeners.
    fn instrument(&mut self, hook: &EventHook<Event>);
}

/// The end of every stack: calls the operation.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Layered, Leaf, Pipeline, Timeout};
///
/// // A hand-made stack: a timeout around the operation call.
/// let stack = Layered { policy: Timeout::new(Duration::from_secs(1))?, inner: Leaf };
/// let pipeline = Pipeline::from_stack(stack);
/// assert_eq!(pipeline.call(|_| Ok::<u32, ()>(7)), Ok(7));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Leaf;

impl<'c, Op: Operation<'c>> Stage<'c, Op> for Leaf {
    #[inline]
    async fn run<'s>(&'s self, op: &'s Op, ctx: Context<'c>) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        op.call(ctx).await.map_err(Error::Operation)
    }
}

/// A policy wrapped around the rest of the pipeline.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Layered, Leaf, Pipeline, Retry, Timeout};
///
/// // The type a builder makes for `.timeout(..).retry(..)`: the first policy outermost.
/// let pipeline: Pipeline<Layered<Timeout, Layered<Retry, Leaf>>> = Pipeline::builder()
///     .timeout(Duration::from_secs(1))
///     .retry(Retry::builder().max_attempts(3).build()?)
///     .build()?;
/// assert_eq!(pipeline.stack().policy.duration(), Duration::from_secs(1));
/// assert_eq!(pipeline.stack().inner.policy.max_attempts(), 3);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Layered<P, I> {
    /// The outer policy.
    pub policy: P,
    /// What it wraps.
    pub inner: I,
}

impl<'c, Op, P, I> Stage<'c, Op> for Layered<P, I>
where
    Op: Operation<'c>,
    P: Policy<'c, Op>,
    I: Stage<'c, Op>,
{
    #[inline]
    fn run<'s>(
        &'s self,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> impl Future<Output = Outcome<'c, Op>> + Send + 's
    where
        'c: 's,
    {
        self.policy.run(&self.inner, op, ctx)
    }
}

/// An optional policy: `None` passes straight through (one branch per call). This is how a
/// pipeline loaded from settings leaves out the policies the file does not configure.
impl<'c, Op, P> Policy<'c, Op> for Option<P>
where
    Op: Operation<'c>,
    P: Policy<'c, Op>,
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
        match self {
            Some(policy) => policy.run(inner, op, ctx).await,
            None => inner.run(op, ctx).await,
        }
    }
}

impl<P: Instrument> Instrument for Option<P> {
    fn instrument(&mut self, hook: &EventHook<Event>) {
        if let Some(p) = self {
            p.instrument(hook);
        }
    }
}

pub(crate) fn adopt(own: &mut EventHook<Event>, pipeline: &EventHook<Event>) {
    if own.is_empty() {
        own.clone_from(pipeline);
    }
}
