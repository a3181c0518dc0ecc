//! The admission layer.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use levee_core::{Clock, FastClock};
use tower_layer::Layer;
use tower_service::Service;

use super::{LimitError, ResponseFuture};
use crate::admission::{AdmissionController, OwnedAdmissionPermit};

/// Applies a shared [`AdmissionController`]: a request is admitted in `call` or refused at
/// once with [`LimitError::Shed`] (the same error family as the bulkhead's refusals, so an
/// HTTP service answers both with 503: [`LimitError::is_overload`]). The permit is held by
/// the response future, so the latency recorded is the inner call's, from `call` until the
/// future completes or is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::AdmissionController;
/// use levee_limit::tower::AdmissionLayer;
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let controller = Arc::new(AdmissionController::new()?);
/// let mut svc = AdmissionLayer::new(controller.clone())
///     .layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x * 2) }));
/// assert_eq!(svc.ready().await?.call(21).await?, 42);
/// assert_eq!((controller.stats().admitted, controller.in_flight()), (1, 0));
/// # Ok(())
/// # }
/// ```
pub struct AdmissionLayer<C = FastClock> {
    controller: Arc<AdmissionController<C>>,
}

impl<C> AdmissionLayer<C> {
    /// A layer whose services all share `controller`.
    #[must_use]
    pub fn new(controller: Arc<AdmissionController<C>>) -> Self {
        Self { controller }
    }
}

impl<C> Clone for AdmissionLayer<C> {
    fn clone(&self) -> Self {
        Self { controller: Arc::clone(&self.controller) }
    }
}

impl<C> fmt::Debug for AdmissionLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionLayer").field("controller", &self.controller).finish()
    }
}

impl<S, C: Clock> Layer<S> for AdmissionLayer<C> {
    type Service = AdmissionService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService { inner, controller: Arc::clone(&self.controller) }
    }
}

/// The service of [`AdmissionLayer`]; clones share the controller.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::AdmissionController;
/// use levee_limit::tower::{AdmissionLayer, AdmissionService};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let controller = Arc::new(AdmissionController::new()?);
/// let inner = service_fn(|x: u32| async move { Ok::<_, Infallible>(x + 1) });
/// let mut svc: AdmissionService<_> = AdmissionLayer::new(controller.clone()).layer(inner);
/// let mut clone = svc.clone(); // clones share the controller
/// assert_eq!(svc.ready().await?.call(1).await?, 2);
/// assert_eq!(clone.ready().await?.call(2).await?, 3);
/// assert_eq!(controller.stats().admitted, 2);
/// # Ok(())
/// # }
/// ```
pub struct AdmissionService<S, C = FastClock> {
    inner: S,
    controller: Arc<AdmissionController<C>>,
}

impl<S, C> AdmissionService<S, C> {
    /// The shared controller.
    pub fn controller(&self) -> &Arc<AdmissionController<C>> {
        &self.controller
    }
}

impl<S: Clone, C> Clone for AdmissionService<S, C> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), controller: Arc::clone(&self.controller) }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for AdmissionService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionService")
            .field("inner", &self.inner)
            .field("controller", &self.controller)
            .finish()
    }
}

impl<S, C, Req> Service<Req> for AdmissionService<S, C>
where
    S: Service<Req>,
    C: Clock,
{
    type Response = S::Response;
    type Error = LimitError<S::Error>;
    type Future = ResponseFuture<S::Future, S::Error, OwnedAdmissionPermit<C>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LimitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.controller.try_acquire_owned() {
            Ok(permit) => ResponseFuture::called(self.inner.call(req), permit),
            Err(shed) => ResponseFuture::refused(LimitError::Shed(shed)),
        }
    }
}
