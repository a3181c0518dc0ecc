//! The rate-limit layer, over any limiter of the family.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::{LimitError, ResponseFuture};
use crate::error::{CheckNError, Throttled};
use crate::rate::RateLimiter;
use crate::rate_limit::AsyncRateLimit;

/// Applies a shared rate limit to every request: over the limit, a request fails at once
/// with [`LimitError::Throttled`] carrying the retry-after.
///
/// Any limiter of the family works: a [`RateLimiter`] (the default), a window, a warm-up
/// limiter, a pacer, or a remote [`AsyncRateLimit`]. A local limiter decides in `call`
/// (nothing is kept between `poll_ready` and `call`, nothing allocated); a remote one is
/// asked in `poll_ready` (one boxed future per request, beside a network round trip) and
/// its answer is used by the next `call`.
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
pub struct RateLimitLayer<L = RateLimiter> {
    limiter: Arc<L>,
}

impl<L> RateLimitLayer<L> {
    /// A layer whose services all share `limiter`.
    #[must_use]
    pub fn new(limiter: Arc<L>) -> Self {
        Self { limiter }
    }
}

impl<L> Clone for RateLimitLayer<L> {
    fn clone(&self) -> Self {
        Self { limiter: Arc::clone(&self.limiter) }
    }
}

impl<L: fmt::Debug> fmt::Debug for RateLimitLayer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer").field("limiter", &self.limiter).finish()
    }
}

impl<S, L> Layer<S> for RateLimitLayer<L> {
    type Service = RateLimitService<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService::new(inner, Arc::clone(&self.limiter))
    }
}

/// A remote limiter's pending answer. The lock only makes the service `Sync`; it is reached
/// through `&mut self` (`get_mut`), never contended.
type Pending = Mutex<Option<Pin<Box<dyn Future<Output = Result<(), CheckNError>> + Send>>>>;

/// The service of [`RateLimitLayer`]; clones share the limiter.
pub struct RateLimitService<S, L = RateLimiter> {
    inner: S,
    limiter: Arc<L>,
    /// Remote limiters: the decision being awaited, then the one the next `call` uses.
    pending: Pending,
    decided: Option<Result<(), Throttled>>,
}

impl<S, L> RateLimitService<S, L> {
    fn new(inner: S, limiter: Arc<L>) -> Self {
        Self { inner, limiter, pending: Mutex::new(None), decided: None }
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }
}

impl<S: Clone, L> Clone for RateLimitService<S, L> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.limiter))
    }
}

impl<S: fmt::Debug, L: fmt::Debug> fmt::Debug for RateLimitService<S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// One cell's refusal from a batch decision (a cell always fits a burst of at least one).
fn one_cell(result: Result<(), CheckNError>) -> Result<(), Throttled> {
    result.map_err(|e| match e {
        CheckNError::Throttled(t) => t,
        CheckNError::InsufficientCapacity(_) => Throttled::new(0, u64::MAX),
    })
}

impl<S, L, Req> Service<Req> for RateLimitService<S, L>
where
    S: Service<Req>,
    L: AsyncRateLimit + 'static,
{
    type Response = S::Response;
    type Error = LimitError<S::Error>;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !L::DECIDES_NOW && self.decided.is_none() {
            let pending = self.pending.get_mut().unwrap_or_else(PoisonError::into_inner);
            let future = pending.get_or_insert_with(|| {
                let limiter = Arc::clone(&self.limiter);
                Box::pin(async move { limiter.check_n(1).await })
            });
            let decision = std::task::ready!(future.as_mut().poll(cx));
            *pending = None;
            self.decided = Some(one_cell(decision));
        }
        if matches!(self.decided, Some(Err(_))) {
            return Poll::Ready(Ok(())); // refused: `call` answers without the inner service
        }
        self.inner.poll_ready(cx).map_err(LimitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let decision = match self.decided.take() {
            Some(decision) => decision,
            None => match self.limiter.try_decide_now(1) {
                Some(decision) => one_cell(decision),
                // A remote limiter called without `poll_ready`: tower's contract was broken.
                None => Err(Throttled::new(0, 0)),
            },
        };
        match decision {
            Ok(()) => ResponseFuture::called(self.inner.call(req), ()),
            Err(refusal) => ResponseFuture::refused(LimitError::Throttled(refusal)),
        }
    }
}
