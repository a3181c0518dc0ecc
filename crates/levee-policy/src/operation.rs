//! What a pipeline runs: an async function of the attempt's [`Context`], or a blocking one.

use std::future::{Future, Ready};

use crate::Context;

/// One call of the guarded operation, made once per attempt (and once per hedge).
///
/// Any `Fn(Context<'c>) -> impl Future<Output = Result<T, E>>` is an operation; wrap a
/// blocking function in [`SyncOperation`] (which [`Pipeline::call`](crate::Pipeline::call)
/// does for you). `'c` is how long the [`Context`] (which borrows the pipeline's clock) lives:
/// an attempt's future may keep it. Operations are `Send + Sync` and return `Send` futures,
/// so a pipeline call can move between threads of a multi-threaded runtime and be boxed for
/// tower.
///
/// ```
/// use std::future::Ready;
/// use levee_policy::{Context, Error, Operation, Pipeline, Retry};
///
/// /// A request as a named operation (a closure `|ctx| async { .. }` is one too).
/// struct GetPrice {
///     sku: u32,
/// }
///
/// impl<'c> Operation<'c> for GetPrice {
///     type Output = u32;
///     type Error = &'static str;
///     type Future = Ready<Result<u32, &'static str>>;
///
///     fn call(&self, ctx: Context<'c>) -> Self::Future {
///         // The first attempt fails; the retry gets an answer.
///         std::future::ready(if ctx.attempt() == 0 { Err("flaky") } else { Ok(self.sku * 100) })
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let pipeline = Pipeline::builder().retry(Retry::builder().max_attempts(2).build().unwrap()).build().unwrap();
/// let price: Result<u32, Error<&str>> = pipeline.execute_operation(GetPrice { sku: 7 }).await;
/// assert_eq!(price, Ok(700));
/// # });
/// ```
pub trait Operation<'c>: Send + Sync {
    /// What a successful attempt returns.
    type Output: Send;
    /// What a failed attempt returns.
    type Error: Send;
    /// The future one attempt is.
    type Future: Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Starts one attempt.
    fn call(&self, ctx: Context<'c>) -> Self::Future;
}

impl<'c, F, Fut, T, E> Operation<'c> for F
where
    F: Fn(Context<'c>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: Send,
{
    type Output = T;
    type Error = E;
    type Future = Fut;

    #[inline]
    fn call(&self, ctx: Context<'c>) -> Fut {
        self(ctx)
    }
}

/// A blocking function as an operation: each attempt runs it to completion when the
/// pipeline starts the attempt (the pipeline builds attempts lazily, inside its own poll).
///
/// ```
/// use levee_policy::{Error, Pipeline, SyncOperation};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let pipeline = Pipeline::builder().build().unwrap();
/// // A blocking function run by an async caller (`Pipeline::call` wraps it for blocking callers).
/// let read = SyncOperation(|_ctx| "42".parse::<u32>());
/// let n: Result<u32, Error<std::num::ParseIntError>> = pipeline.execute_operation(read).await;
/// assert_eq!(n, Ok(42));
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SyncOperation<F>(pub F);

impl<'c, F, T, E> Operation<'c> for SyncOperation<F>
where
    F: Fn(Context<'c>) -> Result<T, E> + Send + Sync,
    T: Send,
    E: Send,
{
    type Output = T;
    type Error = E;
    type Future = Ready<Result<T, E>>;

    #[inline]
    fn call(&self, ctx: Context<'c>) -> Self::Future {
        std::future::ready((self.0)(ctx))
    }
}
