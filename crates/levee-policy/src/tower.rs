//! tower integration (feature `tower`): every policy, and a whole pipeline, as a `Layer`.
//!
//! [`PipelineLayer`] wraps a service in a [`Pipeline`]; [`PipelineService`] is `Clone` and
//! its clones share the pipeline (one breaker, one limiter, one retry budget for all of
//! them). Each attempt clones the inner service and the request (as tower's own `Retry`
//! does), waits for the clone to be ready, and calls it. The service's future is boxed
//! (tower needs a nameable future; a pipeline call is not), which costs one allocation per
//! request; [`Pipeline::execute`] itself allocates nothing.
//!
//! ```
//! use std::time::Duration;
//! use levee_policy::{Backoff, Error, Pipeline, Retry, tower::PipelineLayer};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let pipeline = Pipeline::builder()
//!     .timeout(Duration::from_secs(1))
//!     .retry(Retry::builder().max_attempts(2).backoff(Backoff::Immediate).build().unwrap())
//!     .build()
//!     .unwrap();
//! #[derive(Clone)]
//! struct Echo;
//! impl Service<u32> for Echo {
//!     type Response = u32;
//!     type Error = std::io::Error;
//!     type Future = std::future::Ready<Result<u32, std::io::Error>>;
//!     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
//!         std::task::Poll::Ready(Ok(()))
//!     }
//!     fn call(&mut self, req: u32) -> Self::Future {
//!         std::future::ready(Ok(req * 2))
//!     }
//! }
//! let mut svc = PipelineLayer::new(pipeline).layer(Echo);
//! let out: Result<u32, Error<std::io::Error>> = svc.call(21).await;
//! assert_eq!(out.unwrap(), 42);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use levee_core::sync::Mutex;
use tower_layer::Layer;
use tower_service::Service;

use crate::stage::{Layered, Leaf, Stage};
use levee_core::{Clock, FastClock};

use crate::{Context, Error, Operation, Pipeline};

/// A boxed, `Send` future, as tower services return.
///
/// ```
/// use levee_policy::{Error, Pipeline, tower::{BoxFuture, PipelineLayer}};
/// use tower_layer::Layer;
/// use tower_service::Service;
/// # #[derive(Clone)]
/// # struct Double;
/// # impl Service<u32> for Double {
/// #     type Response = u32;
/// #     type Error = std::io::Error;
/// #     type Future = std::future::Ready<Result<u32, std::io::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
/// #         std::task::Poll::Ready(Ok(()))
/// #     }
/// #     fn call(&mut self, req: u32) -> Self::Future {
/// #         std::future::ready(Ok(req * 2))
/// #     }
/// # }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut svc = PipelineLayer::new(Pipeline::builder().build().unwrap()).layer(Double);
/// // A pipeline service's future is boxed (a pipeline call's type cannot be named).
/// let call: BoxFuture<Result<u32, Error<std::io::Error>>> = svc.call(21);
/// assert_eq!(call.await.unwrap(), 42);
/// # });
/// ```
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Wraps services in a shared [`Pipeline`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use levee_policy::{Pipeline, Retry, tower::PipelineLayer};
/// use tower_layer::Layer;
/// use tower_service::Service;
/// # #[derive(Clone)]
/// # struct Double;
/// # impl Service<u32> for Double {
/// #     type Response = u32;
/// #     type Error = std::io::Error;
/// #     type Future = std::future::Ready<Result<u32, std::io::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
/// #         std::task::Poll::Ready(Ok(()))
/// #     }
/// #     fn call(&mut self, req: u32) -> Self::Future {
/// #         std::future::ready(Ok(req * 2))
/// #     }
/// # }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let pipeline = Arc::new(
///     Pipeline::builder()
///         .timeout(Duration::from_secs(1))
///         .retry(Retry::builder().max_attempts(2).build().unwrap())
///         .build()
///         .unwrap(),
/// );
/// // Two services behind one pipeline: one retry policy (and breaker, budget...) for both.
/// let layer = PipelineLayer::shared(Arc::clone(&pipeline));
/// let (mut a, mut b) = (layer.layer(Double), layer.layer(Double));
/// assert_eq!(a.call(1).await.unwrap() + b.call(2).await.unwrap(), 6);
/// # });
/// ```
pub struct PipelineLayer<S, C = FastClock> {
    pipeline: Arc<Pipeline<S, C>>,
}

impl<S, C> Clone for PipelineLayer<S, C> {
    fn clone(&self) -> Self {
        Self { pipeline: self.pipeline.clone() }
    }
}

impl<S, C> fmt::Debug for PipelineLayer<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineLayer").finish_non_exhaustive()
    }
}

impl<S, C> PipelineLayer<S, C> {
    /// A layer running requests through `pipeline`.
    #[must_use]
    pub fn new(pipeline: Pipeline<S, C>) -> Self {
        Self { pipeline: Arc::new(pipeline) }
    }

    /// A layer sharing an existing pipeline (with other layers or direct callers).
    #[must_use]
    pub fn shared(pipeline: Arc<Pipeline<S, C>>) -> Self {
        Self { pipeline }
    }
}

/// A layer of one policy: `policy_layer(retry)`, `policy_layer(timeout)`...
#[must_use]
pub fn policy_layer<P>(policy: P) -> PipelineLayer<Layered<P, Leaf>> {
    PipelineLayer::new(Pipeline::from_stack(Layered { policy, inner: Leaf }))
}

impl<S, C, Svc> Layer<Svc> for PipelineLayer<S, C> {
    type Service = PipelineService<S, Svc, C>;

    fn layer(&self, inner: Svc) -> Self::Service {
        PipelineService { pipeline: self.pipeline.clone(), inner }
    }
}

/// A service behind a [`Pipeline`]; clones share the pipeline's state.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Error, Pipeline, tower::{PipelineLayer, PipelineService}};
/// use tower_layer::Layer;
/// use tower_service::Service;
/// # #[derive(Clone)]
/// # struct Double;
/// # impl Service<u32> for Double {
/// #     type Response = u32;
/// #     type Error = std::io::Error;
/// #     type Future = std::future::Ready<Result<u32, std::io::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
/// #         std::task::Poll::Ready(Ok(()))
/// #     }
/// #     fn call(&mut self, req: u32) -> Self::Future {
/// #         std::future::ready(Ok(req * 2))
/// #     }
/// # }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let layer = PipelineLayer::new(Pipeline::builder().timeout(Duration::from_secs(1)).build().unwrap());
/// let mut svc: PipelineService<_, Double> = layer.layer(Double);
/// let mut clone = svc.clone(); // clones share the pipeline
/// let out: Result<u32, Error<std::io::Error>> = clone.call(5).await;
/// assert_eq!(out.unwrap(), 10);
/// assert_eq!(svc.call(1).await.unwrap(), 2);
/// # });
/// ```
pub struct PipelineService<S, Svc, C = FastClock> {
    pipeline: Arc<Pipeline<S, C>>,
    inner: Svc,
}

impl<S, Svc: Clone, C> Clone for PipelineService<S, Svc, C> {
    fn clone(&self) -> Self {
        Self { pipeline: self.pipeline.clone(), inner: self.inner.clone() }
    }
}

impl<S, Svc: fmt::Debug, C> fmt::Debug for PipelineService<S, Svc, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S, Svc, C> PipelineService<S, Svc, C> {
    /// The shared pipeline.
    #[must_use]
    pub fn pipeline(&self) -> &Arc<Pipeline<S, C>> {
        &self.pipeline
    }

    /// The wrapped service.
    #[must_use]
    pub fn get_ref(&self) -> &Svc {
        &self.inner
    }
}

impl<S, Svc, C, Req> Service<Req> for PipelineService<S, Svc, C>
where
    S: for<'c> Stage<'c, ServiceCall<Svc, Req>> + 'static,
    C: Clock,
    Svc: Service<Req> + Clone + Send + 'static,
    Svc::Future: Send,
    Svc::Response: Send,
    Svc::Error: Send,
    Req: Clone + Send + 'static,
{
    type Response = Svc::Response;
    type Error = Error<Svc::Error>;
    type Future = BoxFuture<Result<Svc::Response, Error<Svc::Error>>>;

    /// Always ready: each attempt waits for its own clone of the inner service, inside the
    /// policies (so a limiter or timeout also bounds that wait).
    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let pipeline = self.pipeline.clone();
        let op = ServiceCall { parts: Mutex::new((self.inner.clone(), req)) };
        Box::pin(async move { pipeline.execute_operation(op).await })
    }
}

/// One request to a tower service as an [`Operation`]: each attempt clones the service and
/// the request, waits until the clone is ready, then calls it.
///
/// ```
/// use levee_policy::Operation;
/// use levee_policy::tower::{ReadyThenCall, ServiceCall};
/// use tower_service::Service;
/// # #[derive(Clone)]
/// # struct Double;
/// # impl Service<u32> for Double {
/// #     type Response = u32;
/// #     type Error = std::io::Error;
/// #     type Future = std::future::Ready<Result<u32, std::io::Error>>;
/// #     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
/// #         std::task::Poll::Ready(Ok(()))
/// #     }
/// #     fn call(&mut self, req: u32) -> Self::Future {
/// #         std::future::ready(Ok(req * 2))
/// #     }
/// # }
///
/// // A `PipelineService` makes one per request (there is no other constructor); each
/// // attempt clones `Double` and the request, waits until ready, and calls it.
/// fn per_request<'c>()
/// where
///     ServiceCall<Double, u32>: Operation<'c, Output = u32, Future = ReadyThenCall<Double, u32>>,
/// {
/// }
/// per_request();
/// ```
pub struct ServiceCall<Svc, Req> {
    // A lock, so the operation is `Sync` even when the service or request is not; held only
    // to clone them at the start of an attempt.
    parts: Mutex<(Svc, Req)>,
}

impl<Svc, Req> fmt::Debug for ServiceCall<Svc, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCall").finish_non_exhaustive()
    }
}

impl<Svc, Req> Operation<'_> for ServiceCall<Svc, Req>
where
    Svc: Service<Req> + Clone + Send,
    Svc::Future: Send,
    Svc::Response: Send,
    Svc::Error: Send,
    Req: Clone + Send,
{
    type Output = Svc::Response;
    type Error = Svc::Error;
    type Future = ReadyThenCall<Svc, Req>;

    fn call(&self, _ctx: Context<'_>) -> Self::Future {
        let parts = self.parts.lock();
        ReadyThenCall { state: State::Waiting { svc: parts.0.clone(), req: Some(parts.1.clone()) } }
    }
}

pin_project_lite::pin_project! {
    /// Waits for a service to be ready, then calls it.
    ///
    /// ```
    /// use levee_policy::{Context, Operation};
    /// use levee_policy::tower::{ReadyThenCall, ServiceCall};
    /// use tower_service::Service;
    ///
    /// // The future of one attempt of a `ServiceCall`: what a `PipelineService` awaits per attempt.
    /// fn attempt<'c, S, R>(call: &ServiceCall<S, R>, ctx: Context<'c>) -> ReadyThenCall<S, R>
    /// where
    ///     ServiceCall<S, R>: Operation<'c, Future = ReadyThenCall<S, R>>,
    ///     S: Service<R>,
    /// {
    ///     call.call(ctx)
    /// }
    /// ```
    pub struct ReadyThenCall<Svc: Service<Req>, Req> {
        #[pin]
        state: State<Svc, Req>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<Svc: Service<Req>, Req> {
        Waiting { svc: Svc, req: Option<Req> },
        Calling { #[pin] call: Svc::Future },
    }
}

impl<Svc: Service<Req>, Req> fmt::Debug for ReadyThenCall<Svc, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyThenCall").finish_non_exhaustive()
    }
}

impl<Svc: Service<Req>, Req> Future for ReadyThenCall<Svc, Req> {
    type Output = Result<Svc::Response, Svc::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Waiting { svc, req } => {
                    if let Err(e) = std::task::ready!(svc.poll_ready(cx)) {
                        return Poll::Ready(Err(e));
                    }
                    match req.take() {
                        Some(req) => {
                            let call = svc.call(req);
                            state.set(State::Calling { call });
                        }
                        // Only reachable if polled again after an error was returned.
                        None => return Poll::Pending,
                    }
                }
                StateProj::Calling { call } => return call.poll(cx),
            }
        }
    }
}
