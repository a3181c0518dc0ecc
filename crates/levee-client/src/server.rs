//! The server side of deadline propagation: a tower layer that reads the caller's deadline,
//! honours it, and hands it on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use levee_core::{Clock, FastClock, Sleep, nanos};
use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::Deadline;
use crate::deadline::timeout_from_headers;

/// Reads the `levee-timeout` (or `grpc-timeout`) header of each request and:
///
/// - answers **400 Bad Request** at once when the header is malformed;
/// - answers **504 Gateway Timeout** at once when no time is left, without calling the
///   service;
/// - otherwise puts the [`Deadline`] (the smaller of the caller's and this server's
///   [`max_timeout`](Self::max_timeout), or the [`default_timeout`](Self::default_timeout)
///   when the caller sent none) in the request's extensions, runs the service with it as
///   [`Deadline::current`] (so a [`Client`](crate::Client) call made while serving it sends
///   on what is left), and answers **504** when it passes first, dropping the service's
///   future (work nobody waits for stops).
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use http::{Request, Response, StatusCode};
/// use levee_client::{Deadline, DeadlineLayer};
/// use levee_core::ManualClock;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let clock = ManualClock::new();
/// let mut svc = ServiceBuilder::new()
///     .layer(DeadlineLayer::new().clock(clock).max_timeout(Duration::from_secs(5)))
///     .service_fn(|_req: Request<String>| async {
///         let left = Deadline::current().unwrap().remaining();
///         Ok::<_, Infallible>(Response::new(format!("{}", left.as_millis())))
///     });
/// let req = Request::builder().header("levee-timeout", "250m").body(String::new()).unwrap();
/// let res = svc.ready().await.unwrap().call(req).await.unwrap();
/// assert_eq!(res.body(), "250");
///
/// let bad = Request::builder().header("levee-timeout", "soon").body(String::new()).unwrap();
/// assert_eq!(svc.ready().await.unwrap().call(bad).await.unwrap().status(), StatusCode::BAD_REQUEST);
/// # }
/// ```
#[derive(Clone)]
pub struct DeadlineLayer {
    clock: Arc<dyn Clock>,
    max: Option<Duration>,
    default: Option<Duration>,
}

impl std::fmt::Debug for DeadlineLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineLayer")
            .field("max_timeout", &self.max)
            .field("default_timeout", &self.default)
            .finish_non_exhaustive()
    }
}

impl Default for DeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl DeadlineLayer {
    /// On [`FastClock`], no cap, no default.
    #[must_use]
    pub fn new() -> Self {
        Self { clock: Arc::new(FastClock), max: None, default: None }
    }

    /// Reads time from `clock` (a `ManualClock` in tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Never grants a request more than `max`, whatever the caller says.
    #[must_use]
    pub fn max_timeout(mut self, max: Duration) -> Self {
        self.max = Some(max);
        self
    }

    /// The deadline of a request that carries none.
    #[must_use]
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default = Some(timeout);
        self
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> DeadlineService<S> {
        DeadlineService { inner, layer: self.clone() }
    }
}

/// A service behind a [`DeadlineLayer`].
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use http::{Request, Response, StatusCode};
/// use levee_client::{Deadline, DeadlineLayer, DeadlineService};
/// use levee_core::ManualClock;
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let layer = DeadlineLayer::new().clock(ManualClock::new()).default_timeout(Duration::from_secs(1));
/// let inner = service_fn(|_req: Request<String>| async {
///     let left = Deadline::current().unwrap().remaining(); // the deadline travels with the task
///     Ok::<_, Infallible>(Response::new(left.as_millis().to_string()))
/// });
/// let mut svc: DeadlineService<_> = layer.layer(inner);
/// // No `levee-timeout` header: the server's default applies.
/// let res = svc.ready().await.unwrap().call(Request::new(String::new())).await.unwrap();
/// assert_eq!((res.status(), res.body().as_str()), (StatusCode::OK, "1000"));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DeadlineService<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S, B, R> Service<Request<B>> for DeadlineService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    R: Default,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let given = match timeout_from_headers(request.headers()) {
            Ok(given) => given,
            Err(e) => {
                tracing::debug!(error = %e, "refusing a request with a malformed timeout");
                return DeadlineFuture::answer(StatusCode::BAD_REQUEST);
            }
        };
        let timeout = match (given.or(self.layer.default), self.layer.max) {
            (Some(t), Some(max)) => Some(t.min(max)),
            (t, max) => t.or(max),
        };
        let Some(timeout) = timeout else {
            return DeadlineFuture::unbounded(self.inner.call(request));
        };
        if timeout.is_zero() {
            return DeadlineFuture::answer(StatusCode::GATEWAY_TIMEOUT);
        }
        let clock = &self.layer.clock;
        let at = clock.now().saturating_add(nanos(timeout));
        let deadline = Deadline::at(Arc::clone(clock), at);
        request.extensions_mut().insert(deadline.clone());
        let sleep = clock.sleep_until(at);
        DeadlineFuture::bounded(deadline.scope(self.inner.call(request)), sleep)
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`DeadlineService`].
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response, StatusCode};
    /// use levee_client::DeadlineLayer;
    /// use levee_core::ManualClock;
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let clock = ManualClock::new();
    /// let never = service_fn(|_req: Request<String>| std::future::pending::<Result<Response<String>, Infallible>>());
    /// let mut svc = DeadlineLayer::new().clock(clock.clone()).layer(never);
    /// let req = Request::builder().header("levee-timeout", "50m").body(String::new()).unwrap();
    /// let future = svc.ready().await.unwrap().call(req); // a DeadlineFuture
    /// clock.advance(std::time::Duration::from_millis(50));
    /// // The caller's 50 ms passed first: 504, and the service's future is dropped.
    /// assert_eq!(future.await.unwrap().status(), StatusCode::GATEWAY_TIMEOUT);
    /// # }
    /// ```
    pub struct DeadlineFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

pin_project_lite::pin_project! {
    #[project = Proj]
    enum State<F, R> {
        // Answered without calling the service.
        Answer { status: StatusCode, body: Option<R> },
        // No deadline: the service's own future.
        Unbounded { #[pin] inner: F },
        // The service's future racing the deadline.
        Bounded {
            #[pin] inner: TaskLocalFuture<Deadline, F>,
            #[pin] sleep: Sleep,
        },
    }
}

impl<F, R: Default> DeadlineFuture<F, R> {
    fn answer(status: StatusCode) -> Self {
        Self { state: State::Answer { status, body: Some(R::default()) } }
    }

    fn unbounded(inner: F) -> Self {
        Self { state: State::Unbounded { inner } }
    }

    fn bounded(inner: TaskLocalFuture<Deadline, F>, sleep: Sleep) -> Self {
        Self { state: State::Bounded { inner, sleep } }
    }
}

impl<F, R, E> Future for DeadlineFuture<F, R>
where
    F: Future<Output = Result<Response<R>, E>>,
    R: Default,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Proj::Answer { status, body } => {
                let mut response = Response::new(body.take().unwrap_or_default());
                *response.status_mut() = *status;
                Poll::Ready(Ok(response))
            }
            Proj::Unbounded { inner } => inner.poll(cx),
            Proj::Bounded { inner, sleep } => {
                if let Poll::Ready(out) = inner.poll(cx) {
                    return Poll::Ready(out);
                }
                match sleep.poll(cx) {
                    Poll::Ready(()) => {
                        let mut response = Response::new(R::default());
                        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                        Poll::Ready(Ok(response))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(feature = "axum")]
mod extract {
    //! The deadline as an axum extractor.
    use axum::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum::response::{IntoResponse, Response};
    use http::StatusCode;
    use http::request::Parts;

    use crate::Deadline;

    /// The request carried no deadline (and the server has no
    /// [`DeadlineLayer`](crate::DeadlineLayer) default): answered with 400.
    ///
    /// ```
    /// use axum::{Router, body::Body, response::IntoResponse, routing::get};
    /// use http::{Request, StatusCode};
    /// use levee_client::{Deadline, DeadlineLayer, MissingDeadline};
    /// use tower::ServiceExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // A handler that needs a deadline; this server sets no default.
    /// let search = |deadline: Deadline| async move { deadline.remaining().as_millis().to_string() };
    /// let app = Router::new().route("/search", get(search)).layer(DeadlineLayer::new());
    ///
    /// let res = app.oneshot(Request::get("/search").body(Body::empty()).unwrap()).await.unwrap();
    /// assert_eq!(res.status(), StatusCode::BAD_REQUEST); // rejected with MissingDeadline
    /// assert_eq!(MissingDeadline.into_response().status(), StatusCode::BAD_REQUEST);
    /// # }
    /// ```
    #[derive(Debug, Clone, Copy)]
    pub struct MissingDeadline;

    impl IntoResponse for MissingDeadline {
        fn into_response(self) -> Response {
            (StatusCode::BAD_REQUEST, "this endpoint needs a levee-timeout header").into_response()
        }
    }

    /// `Deadline` in a handler's arguments: the one the
    /// [`DeadlineLayer`](crate::DeadlineLayer) set. Use `Option<Deadline>` where a request
    /// may have none.
    impl<S: Send + Sync> FromRequestParts<S> for Deadline {
        type Rejection = MissingDeadline;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MissingDeadline> {
            parts.extensions.get::<Self>().cloned().ok_or(MissingDeadline)
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for Deadline {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Self>().cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::MissingDeadline;
