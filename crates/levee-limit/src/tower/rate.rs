//! The rate-limit layer, over any limiter of the family.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use tower_layer::Layer;
use tower_service::Service;

use super::LimitError;
use super::rate_future::{PendingDecision, RateLimitFuture, one_cell};
use crate::error::Throttled;
use crate::rate::RateLimiter;
use crate::rate_limit::AsyncRateLimit;
use crate::state::LimitState;

/// Applies a shared rate limit to every request: over the limit, a request fails at once
/// with [`LimitError::Throttled`] carrying the retry-after.
///
/// Any limiter of the family works: a [`RateLimiter`] (the default), a window, a warm-up
/// limiter, a pacer, or a remote [`AsyncRateLimit`]. A local limiter decides in `call`
/// (nothing is kept between `poll_ready` and `call`, nothing allocated); a remote one is
/// asked in `poll_ready` (one boxed future per request, beside a network round trip) and
/// its answer is used by the next `call`.
///
/// With the `http` feature, `headers` turns it into an HTTP layer that
/// answers with the IETF rate-limit header fields and refuses with a `429`.
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
pub struct RateLimitLayer<L = RateLimiter, H = ()> {
    limiter: Arc<L>,
    headers: H,
}

impl<L> RateLimitLayer<L> {
    /// A layer whose services all share `limiter`.
    #[must_use]
    pub fn new(limiter: Arc<L>) -> Self {
        Self { limiter, headers: () }
    }
}

impl<L, H> RateLimitLayer<L, H> {
    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }

    /// The same layer answering with `headers` instead (the `http` feature's).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) fn with_headers<H2>(self, headers: H2) -> RateLimitLayer<L, H2> {
        RateLimitLayer { limiter: self.limiter, headers }
    }
}

impl<L, H: Clone> Clone for RateLimitLayer<L, H> {
    fn clone(&self) -> Self {
        Self { limiter: Arc::clone(&self.limiter), headers: self.headers.clone() }
    }
}

impl<L: fmt::Debug, H: fmt::Debug> fmt::Debug for RateLimitLayer<L, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .field("headers", &self.headers)
            .finish()
    }
}

impl<S, L, H: Clone> Layer<S> for RateLimitLayer<L, H> {
    type Service = RateLimitService<S, L, H>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService::new(inner, Arc::clone(&self.limiter), self.headers.clone())
    }
}

/// A remote limiter's pending answer. The lock only makes the service `Sync`; it is reached
/// through `&mut self` (`get_mut`), never contended.
type Pending = Mutex<Option<PendingDecision>>;

/// The service of [`RateLimitLayer`]; clones share the limiter.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::tower::{RateLimitLayer, RateLimitService};
/// use levee_limit::{Quota, RateLimiter, RetryAfter};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let limiter = Arc::new(RateLimiter::new(Quota::per_second(1))?);
/// let inner = service_fn(|x: u32| async move { Ok::<_, Infallible>(x) });
/// let mut svc: RateLimitService<_> = RateLimitLayer::new(limiter).layer(inner);
/// let mut clone = svc.clone(); // one limit for every clone, not one per clone
/// assert_eq!(svc.ready().await?.call(1).await?, 1);
/// let refused = clone.ready().await?.call(2).await.unwrap_err();
/// assert!(refused.retry_after().is_some());
/// # Ok(())
/// # }
/// ```
pub struct RateLimitService<S, L = RateLimiter, H = ()> {
    inner: S,
    limiter: Arc<L>,
    pub(super) headers: H,
    /// Remote limiters: the decision being awaited, then the one the next `call` uses.
    pending: Pending,
    decided: Option<Result<Option<LimitState>, Throttled>>,
}

impl<S, L, H> RateLimitService<S, L, H> {
    fn new(inner: S, limiter: Arc<L>, headers: H) -> Self {
        Self { inner, limiter, headers, pending: Mutex::new(None), decided: None }
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }
}

impl<S: Clone, L, H: Clone> Clone for RateLimitService<S, L, H> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.limiter), self.headers.clone())
    }
}

impl<S: fmt::Debug, L: fmt::Debug, H> fmt::Debug for RateLimitService<S, L, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// What the services with and without headers share: the decision, asked of a remote
/// limiter in `poll_ready`, of a local one in `call`.
impl<S, L: AsyncRateLimit + 'static, H> RateLimitService<S, L, H> {
    /// Readies the limiter's decision for the next call: awaits a remote limiter's answer
    /// (a local limiter decides in `call`). Ready with `true` when the call is refused, so
    /// the inner service need not be ready.
    pub(super) fn poll_decision(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if !L::DECIDES_NOW && self.decided.is_none() {
            let pending = self.pending.get_mut().unwrap_or_else(PoisonError::into_inner);
            let future = pending.get_or_insert_with(|| {
                let limiter = Arc::clone(&self.limiter);
                Box::pin(async move { limiter.check_n_with_state(1).await })
            });
            let decision = ready!(future.as_mut().poll(cx));
            *pending = None;
            self.decided = Some(one_cell(decision));
        }
        Poll::Ready(matches!(self.decided, Some(Err(_))))
    }

    /// The call's decision: the one `poll_ready` awaited, or a local limiter's, with the
    /// state after an admission when `with_state` (for headers).
    pub(super) fn decide(&mut self, with_state: bool) -> Result<Option<LimitState>, Throttled> {
        if let Some(decided) = self.decided.take() {
            return decided;
        }
        let decision = if with_state {
            self.limiter.try_decide_now_with_state(1)
        } else {
            self.limiter.try_decide_now(1).map(|decision| decision.map(|()| None))
        };
        match decision {
            Some(decision) => one_cell(decision),
            // A remote limiter called without `poll_ready`: tower's contract was broken.
            None => Err(Throttled::new(0, 0)),
        }
    }

    /// Calls the inner service with `req` if `decision` admits it.
    pub(super) fn call_if<Req>(
        &mut self,
        req: Req,
        decision: Result<Option<LimitState>, Throttled>,
    ) -> RateLimitFuture<S, Req, H>
    where
        S: Service<Req>,
        H: Clone,
    {
        match decision {
            Ok(state) => RateLimitFuture::called(self.inner.call(req), state, self.headers.clone()),
            Err(refusal) => RateLimitFuture::refused(refusal, self.headers.clone()),
        }
    }

    /// The inner service, for `poll_ready`.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, L, Req> Service<Req> for RateLimitService<S, L>
where
    S: Service<Req>,
    L: AsyncRateLimit + 'static,
{
    type Response = S::Response;
    type Error = LimitError<S::Error>;
    type Future = RateLimitFuture<S, Req, ()>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if ready!(self.poll_decision(cx)) {
            return Poll::Ready(Ok(())); // refused: `call` answers without the inner service
        }
        self.inner.poll_ready(cx).map_err(LimitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let decision = self.decide(false);
        self.call_if(req, decision)
    }
}
