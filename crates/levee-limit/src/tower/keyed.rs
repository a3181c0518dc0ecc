//! The keyed rate-limit layer, over any keyed limit: in memory or remote.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::LimitError;
use super::rate_future::{PendingDecision, RateLimitFuture, one_cell};
use crate::rate_limit::{AsyncRateLimit, KeyedRateLimit};
use crate::state::LimitPolicy;

/// Applies a shared keyed limit, keyed by a closure over the request (client IP, API key,
/// user id...). Over its key's quota, a request fails with [`LimitError::Throttled`].
///
/// Any [`KeyedRateLimit`] works: a [`KeyedRateLimiter`](crate::KeyedRateLimiter), which
/// decides in `call` (no allocation), or a remote one (levee-redis's cluster-wide limiter),
/// whose decision the response future awaits (one boxed future per request, beside the
/// round trip) before it calls the inner service. For that the service keeps a clone of the
/// inner service and hands the one `poll_ready` readied to the response future, as tower
/// recommends for middleware that calls its inner service later; so the inner service must
/// be `Clone`, as axum's and most tower services are.
///
/// With the `http` feature, `headers` turns it into an HTTP layer that
/// answers with the IETF rate-limit header fields for the request's key.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::tower::KeyedRateLimitLayer;
/// use levee_limit::{KeyedRateLimiter, Quota};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// // Requests are (client, payload); each client gets one per minute.
/// let limiter = Arc::new(KeyedRateLimiter::<&'static str>::new(Quota::per_minute(1))?);
/// let layer = KeyedRateLimitLayer::new(limiter, |req: &(&'static str, u32)| req.0);
/// let mut svc = layer.layer(service_fn(|(_, x): (&str, u32)| async move { Ok::<_, Infallible>(x) }));
/// assert!(svc.ready().await?.call(("alice", 1)).await.is_ok());
/// assert!(svc.ready().await?.call(("alice", 2)).await.is_err());
/// assert!(svc.ready().await?.call(("bob", 3)).await.is_ok());
/// # Ok(())
/// # }
/// ```
pub struct KeyedRateLimitLayer<L, F, H = ()> {
    limiter: Arc<L>,
    key: F,
    headers: H,
}

impl<L, F> KeyedRateLimitLayer<L, F> {
    /// A layer whose services share `limiter` and key each request with `key`.
    #[must_use]
    pub fn new(limiter: Arc<L>, key: F) -> Self {
        Self { limiter, key, headers: () }
    }
}

impl<L, F, H> KeyedRateLimitLayer<L, F, H> {
    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<L> {
        &self.limiter
    }

    /// The same layer answering with `headers` instead (the `http` feature's).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) fn with_headers<H2>(self, headers: H2) -> KeyedRateLimitLayer<L, F, H2> {
        KeyedRateLimitLayer { limiter: self.limiter, key: self.key, headers }
    }
}

impl<L, F: Clone, H: Clone> Clone for KeyedRateLimitLayer<L, F, H> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
            headers: self.headers.clone(),
        }
    }
}

impl<L: fmt::Debug, F, H: fmt::Debug> fmt::Debug for KeyedRateLimitLayer<L, F, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<Inner, L, F: Clone, H: Clone> Layer<Inner> for KeyedRateLimitLayer<L, F, H> {
    type Service = KeyedRateLimitService<Inner, L, F, H>;

    fn layer(&self, inner: Inner) -> Self::Service {
        KeyedRateLimitService {
            inner,
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// The service of [`KeyedRateLimitLayer`]; clones share the limiter.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use levee_limit::tower::{KeyedRateLimitLayer, KeyedRateLimitService, LimitError};
/// use levee_limit::{KeyedRateLimiter, Quota};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// // One request per minute per user id; requests are (user, amount).
/// let limiter = Arc::new(KeyedRateLimiter::<u64>::new(Quota::per_minute(1))?);
/// let layer = KeyedRateLimitLayer::new(limiter, |req: &(u64, u32)| req.0);
/// let inner = service_fn(|(_, amount): (u64, u32)| async move { Ok::<_, Infallible>(amount * 2) });
/// let mut svc: KeyedRateLimitService<_, _, _> = layer.layer(inner);
/// assert_eq!(svc.ready().await?.call((1, 21)).await?, 42);
/// assert_eq!(svc.ready().await?.call((2, 5)).await?, 10); // another user, its own limit
/// let refused = svc.ready().await?.call((1, 1)).await.unwrap_err();
/// assert!(matches!(refused, LimitError::Throttled(_))); // says when to retry
/// # Ok(())
/// # }
/// ```
pub struct KeyedRateLimitService<Inner, L, F, H = ()> {
    inner: Inner,
    limiter: Arc<L>,
    key: F,
    pub(super) headers: H,
}

impl<Inner: Clone, L, F: Clone, H: Clone> Clone for KeyedRateLimitService<Inner, L, F, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
            headers: self.headers.clone(),
        }
    }
}

impl<Inner: fmt::Debug, L, F, H> fmt::Debug for KeyedRateLimitService<Inner, L, F, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<Inner, L, F, H: Clone> KeyedRateLimitService<Inner, L, F, H> {
    /// Decides `req` by its key's limit and calls the inner service if it is admitted: at
    /// once for a local limit, in the response future for a remote one. `with_state` asks
    /// for the key's state after an admission and its limit's policy (for headers).
    pub(super) fn call_keyed<Req, K>(
        &mut self,
        req: Req,
        with_state: bool,
    ) -> (RateLimitFuture<Inner, Req, H>, Option<LimitPolicy>)
    where
        Inner: Service<Req> + Clone,
        F: Fn(&Req) -> K,
        K: Send + Sync + 'static,
        L: KeyedRateLimit<K> + 'static,
    {
        let key = (self.key)(&req);
        let (local, policy) = {
            let limit = self.limiter.key(&key);
            if with_state {
                (limit.try_decide_now_with_state(1), limit.policy())
            } else {
                (limit.try_decide_now(1).map(|decision| decision.map(|()| None)), None)
            }
        };
        let future = match local.map(one_cell) {
            Some(Ok(state)) => {
                RateLimitFuture::called(self.inner.call(req), state, self.headers.clone())
            }
            Some(Err(refusal)) => RateLimitFuture::refused(refusal, self.headers.clone()),
            None => {
                let limiter = Arc::clone(&self.limiter);
                let decision: PendingDecision =
                    Box::pin(async move { limiter.key(&key).check_n_with_state(1).await });
                // The readied service goes with the request; this one keeps a fresh clone.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                RateLimitFuture::deciding(decision, ready, req, self.headers.clone())
            }
        };
        (future, policy)
    }

    /// The inner service, for `poll_ready`.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) fn inner_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl<Inner, L, F, K, Req> Service<Req> for KeyedRateLimitService<Inner, L, F>
where
    Inner: Service<Req> + Clone,
    F: Fn(&Req) -> K,
    K: Send + Sync + 'static,
    L: KeyedRateLimit<K> + 'static,
{
    type Response = Inner::Response;
    type Error = LimitError<Inner::Error>;
    type Future = RateLimitFuture<Inner, Req, ()>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LimitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.call_keyed(req, false).0
    }
}
