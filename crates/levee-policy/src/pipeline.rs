//! The pipeline: policies applied in the order written, as one statically composed stack.

use std::future::Future;
use std::time::Duration;

use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener, block_on};

use crate::stage::{Instrument, Layered, Leaf, Outcome, Stage};
use crate::{Context, Error, Event, Fallback, Hedge, Operation, Retry, SyncOperation, Timeout};

/// A resilience pipeline: a stack of policies around an operation.
///
/// Built with [`Pipeline::builder`]; the first policy written is the outermost. A call is
/// one future whose layout the compiler knows: no boxing, no allocation when nothing fails.
/// Share a pipeline by reference or in an `Arc`; every policy's state (a breaker, a limiter, a
/// retry budget) is shared by all calls.
///
/// The pipeline owns its clock `C` ([`FastClock`] unless the builder's
/// [`clock`](PipelineBuilder::clock) says otherwise): timeouts, backoff and hedge delays,
/// and limiter waits read it and sleep on it, and deadlines in the [`Context`] are its
/// readings. A test builds the pipeline (and its breakers and limiters) on one
/// [`ManualClock`](levee_core::ManualClock) and moves time by hand, or runs under paused tokio
/// time, which the manual clock follows.
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
pub struct Pipeline<S, C = FastClock> {
    stack: S,
    clock: C,
}

impl Pipeline<Leaf> {
    /// An empty builder, on [`FastClock`] unless [`clock`](PipelineBuilder::clock) is set.
    pub fn builder() -> PipelineBuilder<Identity> {
        PipelineBuilder { layers: Identity, hook: EventHook::none(), error: None, clock: FastClock }
    }
}

impl<S> Pipeline<S> {
    /// A pipeline around an already composed stack, on [`FastClock`].
    #[must_use]
    pub fn from_stack(stack: S) -> Self {
        Self { stack, clock: FastClock }
    }
}

impl<S, C: Clock> Pipeline<S, C> {
    /// The same pipeline on `clock`.
    #[must_use]
    pub fn with_clock<C2: Clock>(self, clock: C2) -> Pipeline<S, C2> {
        Pipeline { stack: self.stack, clock }
    }

    /// The composed stack of policies.
    #[must_use]
    pub fn stack(&self) -> &S {
        &self.stack
    }

    /// The pipeline's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Runs an async operation through the pipeline; its timeouts and delays sleep on the
    /// pipeline's clock (a real-time clock sleeps on tokio's timer inside a runtime).
    ///
    /// `op` is called once per attempt with that attempt's [`Context`]. When nothing
    /// fails and the operation is ready at once, no sleep is made and nothing is
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
        F: Fn(Context<'a>) -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Send,
        S: Stage<'a, F>,
    {
        self.execute_operation(op)
    }

    /// Like [`execute`](Self::execute) for any [`Operation`] (a tower service call, your
    /// own type).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_operation<'a, Op>(&'a self, op: Op) -> Result<Op::Output, Error<Op::Error>>
    where
        Op: Operation<'a> + 'a,
        S: Stage<'a, Op>,
    {
        self.stack.run(&op, Context::new(&self.clock)).await
    }

    /// Runs a blocking operation through the pipeline on the calling thread
    /// ([`levee_core::block_on`] on the pipeline's clock): backoff and hedge delays park the
    /// thread (or wait for a manual clock to be moved), a bulkhead refuses rather than
    /// queues.
    ///
    /// A timeout cannot interrupt a blocking call: it hands the attempt its deadline
    /// ([`Context::remaining`]) to enforce itself, as a blocking socket or client timeout
    /// would. Do not call it from inside an async task (it blocks the executor thread).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn call<'a, F, T, E>(&'a self, op: F) -> Result<T, Error<E>>
    where
        F: Fn(Context<'a>) -> Result<T, E> + Send + Sync + 'a,
        T: Send,
        E: Send,
        S: Stage<'a, SyncOperation<F>>,
    {
        let op = SyncOperation(op);
        block_on(self.stack.run(&op, Context::new(&self.clock).blocking()))
    }

    /// Runs `op` through the stack with a context of your own (made with
    /// [`Context::new`] on the pipeline's clock), for custom executors.
    pub fn run_with<'a, Op>(
        &'a self,
        op: &'a Op,
        ctx: Context<'a>,
    ) -> impl Future<Output = Outcome<'a, Op>> + Send + 'a
    where
        Op: Operation<'a>,
        S: Stage<'a, Op>,
    {
        self.stack.run(op, ctx)
    }
}

/// Builds a [`Pipeline`]; policies apply in the order the methods are called, the first
/// outermost.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_policy::{Error, Pipeline, Retry};
///
/// let pipeline = Pipeline::builder()
///     .clock(ManualClock::new()) // every timeout, backoff and wait reads this clock
///     .timeout(Duration::from_secs(1))
///     .retry(Retry::builder().max_attempts(2).build()?)
///     .build()?;
/// let answer: Result<u32, Error<()>> = pipeline.call(|_| Ok(7));
/// assert_eq!(answer, Ok(7));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct PipelineBuilder<L, C = FastClock> {
    layers: L,
    hook: EventHook<Event>,
    error: Option<ConfigError>,
    clock: C,
}

/// The empty list of layers.
///
/// ```
/// use levee_policy::{Identity, Pipeline, PipelineBuilder};
///
/// // A builder starts with no layers; a pipeline of none just calls the operation.
/// let builder: PipelineBuilder<Identity> = Pipeline::builder();
/// let pipeline = builder.build()?;
/// assert_eq!(pipeline.call(|_| Ok::<u32, ()>(7)), Ok(7));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

/// A list of layers: `prev` outside, then `policy`.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Chain, Identity, Pipeline, PipelineBuilder, Retry, Timeout};
///
/// // Each builder method adds a link; the first call is the outermost policy.
/// let builder: PipelineBuilder<Chain<Retry, Chain<Timeout, Identity>>> = Pipeline::builder()
///     .timeout(Duration::from_secs(1))
///     .retry(Retry::builder().max_attempts(2).build()?);
/// let pipeline = builder.build()?;
/// assert_eq!(pipeline.call(|_| Ok::<u32, ()>(7)), Ok(7));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chain<P, Prev> {
    policy: P,
    prev: Prev,
}

/// Wraps a stage in the layers collected so far.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Leaf, Pipeline, PipelineBuilder, Wrap};
///
/// // `L: Wrap<Leaf>` is what makes a builder buildable: code generic over builders says so.
/// fn try_build<L: Wrap<Leaf>>(builder: PipelineBuilder<L>) -> Option<Pipeline<L::Stack>> {
///     builder.build().ok()
/// }
///
/// let pipeline = try_build(Pipeline::builder().timeout(Duration::from_secs(1))).unwrap();
/// assert_eq!(pipeline.call(|_| Ok::<u32, ()>(7)), Ok(7));
/// assert!(try_build(Pipeline::builder().timeout(Duration::ZERO)).is_none());
/// ```
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

impl<L, C> PipelineBuilder<L, C> {
    /// Adds any policy (one of this crate's, a limiter, a breaker, or your own [`Policy`]).
    ///
    /// [`Policy`]: crate::Policy
    pub fn policy<P: Instrument>(self, policy: P) -> PipelineBuilder<Chain<P, L>, C> {
        PipelineBuilder {
            layers: Chain { policy, prev: self.layers },
            hook: self.hook,
            error: self.error,
            clock: self.clock,
        }
    }

    /// Reads time from, and sleeps on, `clock` (give the pipeline's breakers, limiters and
    /// retry budget the same clock).
    pub fn clock<C2: Clock>(self, clock: C2) -> PipelineBuilder<L, C2> {
        PipelineBuilder { layers: self.layers, hook: self.hook, error: self.error, clock }
    }

    /// Adds a [`Timeout`] of `timeout`: an overall deadline if written before
    /// [`retry`](Self::retry), per attempt if after. A zero timeout makes
    /// [`build`](Self::build) fail.
    pub fn timeout(mut self, timeout: Duration) -> PipelineBuilder<Chain<Timeout, L>, C> {
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
    pub fn retry<P>(self, retry: Retry<P>) -> PipelineBuilder<Chain<Retry<P>, L>, C> {
        self.policy(retry)
    }

    /// Adds a [`Hedge`].
    pub fn hedge(self, hedge: Hedge) -> PipelineBuilder<Chain<Hedge, L>, C> {
        self.policy(hedge)
    }

    /// Adds a [`Fallback`].
    pub fn fallback<H, Sel>(
        self,
        fallback: Fallback<H, Sel>,
    ) -> PipelineBuilder<Chain<Fallback<H, Sel>, L>, C> {
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
    pub fn build(self) -> Result<Pipeline<L::Stack, C>, ConfigError>
    where
        L: Wrap<Leaf>,
    {
        if let Some(e) = self.error {
            return Err(e);
        }
        Ok(Pipeline { stack: self.layers.wrap(Leaf, &self.hook), clock: self.clock })
    }
}
