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
pub type Outcome<'c, Op> =
    Result<<Op as Operation<'c>>::Output, Error<<Op as Operation<'c>>::Error>>;

/// A runnable pipeline (or the rest of one, seen from a policy): runs one call of `Op`.
///
/// `'c` is the lifetime of the call: the [`Context`] (and through it the pipeline's clock)
/// and the borrows of the stage and the operation.
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
pub trait Instrument {
    /// Adopts `hook` unless the policy already has listeners.
    fn instrument(&mut self, hook: &EventHook<Event>);
}

/// The end of every stack: calls the operation.
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
