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

use crate::{Context, Error, Event, Operation, Timer};

/// What a stage resolves to: the operation's output, or a pipeline [`Error`].
pub type Outcome<Op> = Result<<Op as Operation>::Output, Error<<Op as Operation>::Error>>;

/// A runnable pipeline (or the rest of one, seen from a policy): runs one call of `Op`.
pub trait Stage<Op: Operation, Tm: Timer>: Send + Sync {
    /// Runs the call with `ctx`. The future borrows the stage and the operation.
    fn run<'a>(&'a self, op: &'a Op, ctx: Context)
    -> impl Future<Output = Outcome<Op>> + Send + 'a;
}

/// One resilience policy: runs the rest of the pipeline (`inner`) under its rule.
///
/// Implement it to add your own policy to a [`Pipeline`](crate::Pipeline) with
/// [`PipelineBuilder::policy`](crate::PipelineBuilder::policy).
pub trait Policy<Op: Operation, Tm: Timer>: Send + Sync {
    /// Runs `inner` (once, several times, or not at all) for one call.
    fn run<'a, I: Stage<Op, Tm>>(
        &'a self,
        inner: &'a I,
        op: &'a Op,
        ctx: Context,
    ) -> impl Future<Output = Outcome<Op>> + Send + 'a;
}

/// Gives a policy the pipeline's listener when it has none of its own.
pub trait Instrument {
    /// Adopts `hook` unless the policy already has listeners.
    fn instrument(&mut self, hook: &EventHook<Event>);
}

/// The end of every stack: calls the operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leaf;

impl<Op: Operation, Tm: Timer> Stage<Op, Tm> for Leaf {
    #[inline]
    async fn run<'a>(&'a self, op: &'a Op, ctx: Context) -> Outcome<Op> {
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

impl<Op, Tm, P, I> Stage<Op, Tm> for Layered<P, I>
where
    Op: Operation,
    Tm: Timer,
    P: Policy<Op, Tm>,
    I: Stage<Op, Tm>,
{
    #[inline]
    fn run<'a>(
        &'a self,
        op: &'a Op,
        ctx: Context,
    ) -> impl Future<Output = Outcome<Op>> + Send + 'a {
        self.policy.run(&self.inner, op, ctx)
    }
}

/// An optional policy: `None` passes straight through (one branch per call). This is how a
/// pipeline loaded from settings leaves out the policies the file does not configure.
impl<Op, Tm, P> Policy<Op, Tm> for Option<P>
where
    Op: Operation,
    Tm: Timer,
    P: Policy<Op, Tm>,
{
    async fn run<'a, I: Stage<Op, Tm>>(
        &'a self,
        inner: &'a I,
        op: &'a Op,
        ctx: Context,
    ) -> Outcome<Op> {
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
