//! The bulkhead layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use levee_core::{Clock, FastClock};
use tower_layer::Layer;
use tower_service::Service;

use super::{LimitError, ResponseFuture};
use crate::bulkhead::{AcquireOwned, Bulkhead, BulkheadError, OwnedPermit};

/// Applies a shared [`Bulkhead`]: at most its limit of requests in flight across all clones
/// of the service. `poll_ready` takes a permit (waiting in the bulkhead's queue for at most
/// its maximum wait, if configured); a request that cannot get one fails with
/// [`LimitError::Bulkhead`]. The permit is released when the response future completes or
/// is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::Bulkhead;
/// use levee_limit::tower::BulkheadLayer;
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let bulkhead = Arc::new(Bulkhead::new(1)?);
/// let mut svc = BulkheadLayer::new(bulkhead.clone())
///     .layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
/// let pending = svc.ready().await?.call(1); // holds the only permit until it completes
/// let mut other = svc.clone();
/// assert!(other.ready().await?.call(2).await.is_err(), "shared limit: full");
/// assert_eq!(pending.await?, 1);
/// assert_eq!(bulkhead.in_flight(), 0);
/// # Ok(())
/// # }
/// ```
pub struct BulkheadLayer<C = FastClock> {
    bulkhead: Arc<Bulkhead<C>>,
}

impl<C> BulkheadLayer<C> {
    /// A layer whose services all share `bulkhead`.
    #[must_use]
    pub fn new(bulkhead: Arc<Bulkhead<C>>) -> Self {
        Self { bulkhead }
    }
}

impl<C> Clone for BulkheadLayer<C> {
    fn clone(&self) -> Self {
        Self { bulkhead: Arc::clone(&self.bulkhead) }
    }
}

impl<C> fmt::Debug for BulkheadLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer").field("bulkhead", &self.bulkhead).finish()
    }
}

impl<S, C: Clock> Layer<S> for BulkheadLayer<C> {
    type Service = BulkheadService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService { inner, bulkhead: Arc::clone(&self.bulkhead), state: Ready::Idle }
    }
}

/// What a bulkhead service holds between `poll_ready` and `call`.
enum Ready<C: Clock> {
    Idle,
    Acquiring(AcquireOwned<C>),
    Permit(OwnedPermit<C>),
    Refused(BulkheadError),
}

/// The service of [`BulkheadLayer`]; clones share the bulkhead (each clone takes its own
/// permit).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::Bulkhead;
/// use levee_limit::tower::{BulkheadLayer, BulkheadService};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let bulkhead = Arc::new(Bulkhead::new(2)?);
/// let inner = service_fn(|x: u32| async move { Ok::<_, Infallible>(x) });
/// let mut svc: BulkheadService<_> = BulkheadLayer::new(bulkhead.clone()).layer(inner);
/// let ready = svc.ready().await?; // the permit is taken here, in poll_ready
/// assert_eq!(bulkhead.in_flight(), 1);
/// assert_eq!(ready.call(7).await?, 7); // ...and released when the response completes
/// assert_eq!(bulkhead.in_flight(), 0);
/// # Ok(())
/// # }
/// ```
pub struct BulkheadService<S, C: Clock = FastClock> {
    inner: S,
    bulkhead: Arc<Bulkhead<C>>,
    state: Ready<C>,
}

impl<S, C: Clock> BulkheadService<S, C> {
    /// The shared bulkhead.
    pub fn bulkhead(&self) -> &Arc<Bulkhead<C>> {
        &self.bulkhead
    }
}

impl<S: Clone, C: Clock> Clone for BulkheadService<S, C> {
    /// A clone shares the bulkhead but not a permit this service may be holding.
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), bulkhead: Arc::clone(&self.bulkhead), state: Ready::Idle }
    }
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for BulkheadService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadService")
            .field("inner", &self.inner)
            .field("bulkhead", &self.bulkhead)
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for BulkheadService<S, C>
where
    S: Service<Req>,
    C: Clock,
{
    type Response = S::Response;
    type Error = LimitError<S::Error>;
    type Future = ResponseFuture<S::Future, S::Error, OwnedPermit<C>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                Ready::Idle => self.state = Ready::Acquiring(self.bulkhead.acquire_owned()),
                Ready::Acquiring(acquire) => {
                    self.state = match std::task::ready!(Pin::new(acquire).poll(cx)) {
                        Ok(permit) => Ready::Permit(permit),
                        // Not an error of the service: the refusal is returned by `call`.
                        Err(refusal) => Ready::Refused(refusal),
                    };
                }
                Ready::Permit(_) => return self.inner.poll_ready(cx).map_err(LimitError::Inner),
                Ready::Refused(_) => return Poll::Ready(Ok(())),
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match std::mem::replace(&mut self.state, Ready::Idle) {
            Ready::Permit(permit) => ResponseFuture::called(self.inner.call(req), permit),
            Ready::Refused(refusal) => ResponseFuture::refused(LimitError::Bulkhead(refusal)),
            // `call` without a successful `poll_ready` breaks the Service contract; fail
            // the request rather than exceed the limit.
            Ready::Idle | Ready::Acquiring(_) => {
                ResponseFuture::refused(LimitError::Bulkhead(BulkheadError::Full {
                    limit: self.bulkhead.limit(),
                }))
            }
        }
    }
}
