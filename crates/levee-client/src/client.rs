//! The client: shared state, the call path, and the tower service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use levee_core::{Clock, FastClock, nanos};
use levee_policy::{Context, Error as PolicyError, Layered, Leaf, Pipeline, Retry, RetryBudget};

use crate::balance::EndpointSet;
use crate::builder::ClientBuilder;
use crate::call::{Call, CallDeadline, HedgeReads, Retriable};
use crate::error::{AttemptError, Failure};
use crate::{Deadline, Endpoint, EndpointStats, Error, HttpTransport, ResponseClass, Transport};

/// How a response status is classified.
pub(crate) type Classifier = Arc<dyn Fn(http::StatusCode) -> ResponseClass + Send + Sync>;

/// The policies around each call (see `call.rs`).
pub(crate) type Stack = Layered<CallDeadline, Layered<Retry<Retriable>, Layered<HedgeReads, Leaf>>>;

/// Everything the clones of a client share.
pub(crate) struct Shared<T, C: Clock> {
    pub(crate) transport: T,
    pub(crate) clock: C,
    pub(crate) endpoints: EndpointSet<C>,
    pub(crate) pipeline: Pipeline<Stack, C>,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) classify: Classifier,
    pub(crate) propagate_deadline: bool,
}

/// A resilient HTTP client for one service's replicas.
///
/// Each call goes to one endpoint picked by power of two choices on peak-EWMA latency
/// within the first priority group that has an endpoint whose breaker lets it through;
/// failures feed that endpoint's breaker, whose opening ejects it until a trial call
/// passes; retriable failures are retried on another endpoint within the retry budget;
/// reads may be hedged; the call's deadline goes out in the `levee-timeout` header. See
/// the crate documentation for the whole picture.
///
/// Clones share everything (endpoints, breakers, estimates, budget); it is a tower
/// [`Service`](tower_service::Service) of `http::Request<Bytes>` too. Request URIs are paths
/// (`/products/7?x=1`): the scheme and authority come from the endpoint picked.
///
/// ```
/// use std::time::Duration;
/// use levee_client::{Client, Endpoint};
///
/// // Over HTTP (hyper) by default; `.transport(..)` swaps in another.
/// let client = Client::builder()
///     .endpoints([Endpoint::new("http://127.0.0.1:8081")?, Endpoint::new("http://127.0.0.1:8082")?])
///     .timeout(Duration::from_secs(2))
///     .max_attempts(2)
///     .build()?;
/// assert_eq!(client.stats().len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client<T = HttpTransport, C: Clock = FastClock> {
    pub(crate) shared: Arc<Shared<T, C>>,
}

impl<T, C: Clock> Clone for Client<T, C> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<T, C: Clock + Clone> fmt::Debug for Client<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.shared.endpoints.all().len())
            .field("timeout", &self.shared.timeout)
            .field("attempt_timeout", &self.shared.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder: plain HTTP on hyper, [`FastClock`], the defaults of each setting.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }
}

impl<T: Transport, C: Clock + Clone> Client<T, C> {
    /// Sends `request` (its URI a path) and returns the response, whatever its status.
    ///
    /// The call's deadline is the smaller of the client's timeout and, if given, the
    /// [`Deadline`] in the request's extensions or else the task's
    /// [`Deadline::current`] (set by the server layer for the request being served).
    ///
    /// # Errors
    /// [`Error`]: no endpoint could take the call, the deadline passed, or the last attempt
    /// failed without a response.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, Error> {
        self.shared.send(request).await
    }

    /// `GET path`.
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`Error::InvalidRequest`] for a path that is not a URI.
    pub async fn get(&self, path: &str) -> Result<http::Response<Bytes>, Error> {
        let request = http::Request::get(path)
            .body(Bytes::new())
            .map_err(|_| Error::InvalidRequest("the path is not a valid URI"))?;
        self.send(request).await
    }

    /// A snapshot per endpoint, in priority order: requests in flight, latency estimate,
    /// breaker state and counters. For metrics and health pages.
    #[must_use]
    pub fn stats(&self) -> Vec<EndpointStats> {
        let now = self.shared.clock.now();
        self.shared
            .endpoints
            .all()
            .into_iter()
            .map(|(priority, state)| EndpointStats::of(&state, priority, now))
            .collect()
    }

    /// Replaces the endpoint list (endpoints kept keep their breaker and estimate). A
    /// client that follows a `watch` takes the next list it sends over this one.
    pub fn set_endpoints(&self, endpoints: &[Endpoint]) {
        self.shared.endpoints.replace(endpoints);
    }

    /// Marks an endpoint healthy or not (an unhealthy one gets no requests), as a health
    /// checker outside the client would. False when the endpoint is not in the set.
    pub fn set_healthy(&self, endpoint: &Endpoint, healthy: bool) -> bool {
        let all = self.shared.endpoints.all();
        let found = all.iter().find(|(_, s)| s.endpoint.same_replica(endpoint));
        found.map(|(_, s)| s.set_healthy(healthy)).is_some()
    }

    /// The retry budget the client's retries draw from.
    #[must_use]
    pub fn retry_budget(&self) -> &Arc<RetryBudget> {
        &self.shared.budget
    }

    /// The client's clock (deadlines and estimates are its readings).
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.shared.clock
    }
}

impl<T: Transport, C: Clock + Clone> Shared<T, C> {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, Error> {
        let given = request.extensions().get::<Deadline>().cloned().or_else(Deadline::current);
        let given = given.map(|d| d.remaining());
        if given == Some(Duration::ZERO) {
            return Err(Error::DeadlineExceeded);
        }
        let (budget, own) = match (given, self.timeout) {
            (Some(given), Some(own)) if own <= given => (Some(own), true),
            (Some(given), _) => (Some(given), false),
            (None, own) => (own, true),
        };
        let deadline = budget.map(|b| self.clock.now().saturating_add(nanos(b)));
        let call = Call {
            shared: self,
            idempotent: crate::is_idempotent(request.method(), request.headers()),
            hedgeable: crate::is_hedgeable(request.method()),
            request,
            deadline,
            deadline_is_own: own,
            tried: AtomicU64::new(0),
        };
        let op = &call;
        match self.pipeline.run_with(&op, Context::new(&self.clock)).await {
            Ok(response) => Ok(response),
            Err(PolicyError::Operation(AttemptError { failure, .. })) => match failure {
                // A failure status after the last attempt is still the call's answer.
                Failure::Status(response) => Ok(*response),
                Failure::Error(e) => Err(e),
            },
            // The stack holds no timeout, breaker, limiter or bulkhead of levee-policy's.
            Err(_) => Err(Error::DeadlineExceeded),
        }
    }
}

/// The future of a [`Client`] called as a tower service.
///
/// ```
/// use bytes::Bytes;
/// use levee_client::{Client, Endpoint, ResponseFuture, TransportError};
/// use tower::{Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let transport = |_: &Endpoint, request: http::Request<Bytes>| {
///     let body = Bytes::from(request.uri().path().to_owned());
///     async move { Ok::<_, TransportError>(http::Response::new(body)) }
/// };
/// let mut client = Client::builder()
///     .endpoints(["http://a:80".parse().unwrap()])
///     .transport(transport)
///     .build()
///     .unwrap();
/// // A client is a tower service; its future is boxed so that it can be named.
/// let request = http::Request::get("/items/7").body(Bytes::new()).unwrap();
/// let future: ResponseFuture = client.ready().await.unwrap().call(request);
/// assert_eq!(future.await.unwrap().body(), "/items/7");
/// # }
/// ```
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, Error>> + Send + 'static>>;

impl<T: Transport, C: Clock + Clone> tower_service::Service<http::Request<Bytes>> for Client<T, C> {
    type Response = http::Response<Bytes>;
    type Error = Error;
    type Future = ResponseFuture;

    /// Always ready: whether an endpoint can take the call is decided per call (an
    /// [`Error::AllEjected`] says when to come back), not by holding callers here.
    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> ResponseFuture {
        let client = self.clone();
        Box::pin(async move { client.send(request).await })
    }
}
