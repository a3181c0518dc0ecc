//! The rate-limit layer.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use levee_core::{Clock, FastClock};
use tower_layer::Layer;
use tower_service::Service;

use super::{LimitError, ResponseFuture};
use crate::rate::RateLimiter;

/// Applies a shared [`RateLimiter`] to every request: over the quota, a request fails at
/// once with [`LimitError::Throttled`] carrying the retry-after.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::tower::{LimitError, RateLimitLayer};
/// use levee_limit::{Quota, RateLimiter};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let limiter = Arc::new(RateLimiter::new(Quota::per_minute(1))?);
/// let layer = RateLimitLayer::new(limiter);
/// let mut a = layer.layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
/// let mut b = a.clone(); // shares the limit
/// assert_eq!(a.ready().await?.call(7).await?, 7);
/// let refused = b.ready().await?.call(8).await.unwrap_err();
/// assert!(matches!(refused, LimitError::Throttled(_)));
/// # Ok(())
/// # }
/// ```
pub struct RateLimitLayer<C = FastClock> {
    limiter: Arc<RateLimiter<C>>,
}

impl<C> RateLimitLayer<C> {
    /// A layer whose services all share `limiter`.
    #[must_use]
    pub fn new(limiter: Arc<RateLimiter<C>>) -> Self {
        Self { limiter }
    }
}

impl<C> Clone for RateLimitLayer<C> {
    fn clone(&self) -> Self {
        Self { limiter: Arc::clone(&self.limiter) }
    }
}

impl<C> fmt::Debug for RateLimitLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer").field("limiter", &self.limiter).finish()
    }
}

impl<S, C> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimitService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService { inner, limiter: Arc::clone(&self.limiter) }
    }
}

/// The service of [`RateLimitLayer`]; clones share the limiter.
pub struct RateLimitService<S, C = FastClock> {
    inner: S,
    limiter: Arc<RateLimiter<C>>,
}

impl<S, C> RateLimitService<S, C> {
    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter<C>> {
        &self.limiter
    }
}

impl<S: Clone, C> Clone for RateLimitService<S, C> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), limiter: Arc::clone(&self.limiter) }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for RateLimitService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<S, C, Req> Service<Req> for RateLimitService<S, C>
where
    S: Service<Req>,
    C: Clock,
{
    type Response = S::Response;
    type Error = LimitError<S::Error>;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LimitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => ResponseFuture::called(self.inner.call(req), ()),
            Err(refusal) => ResponseFuture::refused(LimitError::Throttled(refusal)),
        }
    }
}
