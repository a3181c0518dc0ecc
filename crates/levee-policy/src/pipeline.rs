//! The pipeline: policies applied in the order written, as one statically composed stack.

use std::future::Future;
use std::time::Duration;

use levee_core::{ConfigError, EventHook, Listener};

use crate::stage::{Instrument, Layered, Leaf, Outcome, Stage};
use crate::timer::{BlockingTimer, TokioTimer, block_on};
use crate::{Context, Error, Event, Fallback, Hedge, Operation, Retry, SyncOperation, Timeout};

/// A resilience pipeline: a stack of policies around an operation.
///
/// Built with [`Pipeline::builder`]; the first policy written is the outermost. A call is
/// one future whose layout the compiler knows: no boxing, no allocation when nothing fails.
/// Share a pipeline by reference or in an `Arc`; every policy's state (a breaker, a limiter, a
/// retry budget) is shared by all calls.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Backoff, Error, Pipeline, Retry};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let pipeline = Pipeline::builder()
///     .timeout(Duration::from_secs(2)) // overall deadline
///     .retry(Retry::builder().max_attempts(3).backoff(Backoff::constant(Duration::from_millis(100))).build().unwrap())
///     .timeout(Duration::from_millis(500)) // per attempt
///     .build()
///     .unwrap();
///
/// // Async operations get the attempt's context, with the deadline to pass on.
/// let answer = pipeline
///     .execute(|ctx| async move {
///         assert!(ctx.remaining().unwrap() <= Duration::from_millis(500));
///         Ok::<_, std::io::Error>(42)
///     })
///     .await;
/// assert_eq!(answer.unwrap(), 42);
///
/// // Blocking operations run on the calling thread.
/// let answer: Result<u32, Error<&str>> = pipeline.call(|ctx| if ctx.attempt() < 1 { Err("flaky") } else { Ok(7) });
/// assert_eq!(answer, Ok(7));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Pipeline<S> {
    stack: S,
}

impl Pipeline<Leaf> {
    /// An empty builder.
    pub fn builder() -> PipelineBuilder<Identity> {
        PipelineBuilder { layers: Identity, hook: EventHook::none(), error: None }
    }
}

impl<S> Pipeline<S> {
    /// A pipeline around an already composed stack.
    #[must_use]
    pub fn from_stack(stack: S) -> Self {
        Self { stack }
    }

    /// The composed stack of policies.
    #[must_use]
    pub fn stack(&self) -> &S {
        &self.stack
    }

    /// Runs an async operation through the pipeline, on tokio's timer.
    ///
    /// `op` is called once per attempt with that attempt's [`Context`]. When nothing
    /// fails and the operation is ready at once, no timer is touched and nothing is
    /// allocated. Dropping the returned future cancels the call and releases every permit it
    /// held.
    ///
    /// # Errors
    /// The operation's last error as [`Error::Operation`], or the refusal of the policy that
    /// stopped the call.
    pub fn execute<'a, F, Fut, T, E>(
        &'a self,
        op: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + Send + 'a
    where
        F: Fn(Context) -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Send,
        S: Stage<F, TokioTimer>,
    {
        self.execute_operation(op)
    }

    /// Like [`execute`](Self::execute) for any [`Operation`] (a tower service call, your
    /// own type).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_operation<Op>(&self, op: Op) -> Result<Op::Output, Error<Op::Error>>
    where
        Op: Operation,
        S: Stage<Op, TokioTimer>,
    {
        self.stack.run(&op, Context::new(<TokioTimer as crate::Timer>::now)).await
    }

    /// Runs a blocking operation through the pipeline on the calling thread: backoff and
    /// hedge delays park the thread, a bulkhead wait parks it until a permit frees up.
    ///
    /// A timeout cannot interrupt a blocking call: it hands the attempt its deadline
    /// ([`Context::remaining`]) to enforce itself, as a blocking socket or client timeout
    /// would. Do not call it from inside an async task (it blocks the executor thread).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn call<F, T, E>(&self, op: F) -> Result<T, Error<E>>
    where
        F: Fn(Context) -> Result<T, E> + Send + Sync,
        T: Send,
        E: Send,
        S: Stage<SyncOperation<F>, BlockingTimer>,
    {
        let op = SyncOperation(op);
        block_on(self.stack.run(&op, Context::new(<BlockingTimer as crate::Timer>::now)))
    }

    /// Runs `op` through the stack with an explicit timer, for custom executors.
    pub fn run_with<'a, Op, Tm>(
        &'a self,
        op: &'a Op,
        ctx: Context,
    ) -> impl Future<Output = Outcome<Op>> + Send + 'a
    where
        Op: Operation,
        Tm: crate::Timer,
        S: Stage<Op, Tm>,
    {
        self.stack.run(op, ctx)
    }
}

/// Builds a [`Pipeline`]; policies apply in the order the methods are called, the first
/// outermost.
#[derive(Debug)]
#[must_use]
pub struct PipelineBuilder<L> {
    layers: L,
    hook: EventHook<Event>,
    error: Option<ConfigError>,
}

/// The empty list of layers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

/// A list of layers: `prev` outside, then `policy`.
#[derive(Debug, Clone)]
pub struct Chain<P, Prev> {
    policy: P,
    prev: Prev,
}

/// Wraps a stage in the layers collected so far.
pub trait Wrap<I> {
    /// The resulting stack.
    type Stack;
    /// Wraps `inner`, giving each policy `hook` unless it has its own listeners.
    fn wrap(self, inner: I, hook: &EventHook<Event>) -> Self::Stack;
}

impl<I> Wrap<I> for Identity {
    type Stack = I;
    fn wrap(self, inner: I, _hook: &EventHook<Event>) -> I {
        inner
    }
}

impl<I, P: Instrument, Prev: Wrap<Layered<P, I>>> Wrap<I> for Chain<P, Prev> {
    type Stack = Prev::Stack;
    fn wrap(self, inner: I, hook: &EventHook<Event>) -> Self::Stack {
        let mut policy = self.policy;
        policy.instrument(hook);
        self.prev.wrap(Layered { policy, inner }, hook)
    }
}

impl<L> PipelineBuilder<L> {
    /// Adds any policy (one of this crate's, a limiter, a breaker, or your own [`Policy`]).
    ///
    /// [`Policy`]: crate::Policy
    pub fn policy<P: Instrument>(self, policy: P) -> PipelineBuilder<Chain<P, L>> {
        PipelineBuilder {
            layers: Chain { policy, prev: self.layers },
            hook: self.hook,
            error: self.error,
        }
    }

    /// Adds a [`Timeout`] of `timeout`: an overall deadline if written before
    /// [`retry`](Self::retry), per attempt if after. A zero timeout makes
    /// [`build`](Self::build) fail.
    pub fn timeout(mut self, timeout: Duration) -> PipelineBuilder<Chain<Timeout, L>> {
        let policy = match Timeout::new(timeout) {
            Ok(policy) => policy,
            Err(e) => {
                self.error.get_or_insert(e);
                // Never run: `build` returns the error.
                Timeout::unchecked(Duration::MAX)
            }
        };
        self.policy(policy)
    }

    /// Adds a [`Retry`].
    pub fn retry<P>(self, retry: Retry<P>) -> PipelineBuilder<Chain<Retry<P>, L>> {
        self.policy(retry)
    }

    /// Adds a [`Hedge`].
    pub fn hedge(self, hedge: Hedge) -> PipelineBuilder<Chain<Hedge, L>> {
        self.policy(hedge)
    }

    /// Adds a [`Fallback`].
    pub fn fallback<H, Sel>(
        self,
        fallback: Fallback<H, Sel>,
    ) -> PipelineBuilder<Chain<Fallback<H, Sel>, L>> {
        self.policy(fallback)
    }

    /// Sends every policy's [`Event`]s to `listener` (policies given their own hook keep it).
    pub fn listener(mut self, listener: impl Listener<Event> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Sends every policy's [`Event`]s to the listeners of `hook`.
    pub fn hook(mut self, hook: EventHook<Event>) -> Self {
        self.hook = hook;
        self
    }

    /// Builds the pipeline.
    ///
    /// # Errors
    /// The first invalid setting given to a builder method (such as a zero timeout).
    pub fn build(self) -> Result<Pipeline<L::Stack>, ConfigError>
    where
        L: Wrap<Leaf>,
    {
        if let Some(e) = self.error {
            return Err(e);
        }
        Ok(Pipeline { stack: self.layers.wrap(Leaf, &self.hook) })
    }
}
