//! The keyed rate-limit layer.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::task::{Context, Poll};

use levee_core::{Clock, FastClock};
use tower_layer::Layer;
use tower_service::Service;

use super::{LimitError, ResponseFuture};
use crate::keyed::{DefaultHasher, KeyedRateLimiter};

/// Applies a shared [`KeyedRateLimiter`], keyed by a closure over the request (client IP,
/// API key, user id...). Over its key's quota, a request fails at once with
/// [`LimitError::Throttled`].
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
pub struct KeyedRateLimitLayer<K, F, C = FastClock, S = DefaultHasher> {
    limiter: Arc<KeyedRateLimiter<K, C, S>>,
    key: F,
}

impl<K, F, C, S> KeyedRateLimitLayer<K, F, C, S> {
    /// A layer whose services share `limiter` and key each request with `key`.
    #[must_use]
    pub fn new(limiter: Arc<KeyedRateLimiter<K, C, S>>, key: F) -> Self {
        Self { limiter, key }
    }
}

impl<K, F: Clone, C, S> Clone for KeyedRateLimitLayer<K, F, C, S> {
    fn clone(&self) -> Self {
        Self { limiter: Arc::clone(&self.limiter), key: self.key.clone() }
    }
}

impl<K, F, C, S> fmt::Debug for KeyedRateLimitLayer<K, F, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<Inner, K, F: Clone, C, S> Layer<Inner> for KeyedRateLimitLayer<K, F, C, S> {
    type Service = KeyedRateLimitService<Inner, K, F, C, S>;

    fn layer(&self, inner: Inner) -> Self::Service {
        KeyedRateLimitService { inner, limiter: Arc::clone(&self.limiter), key: self.key.clone() }
    }
}

/// The service of [`KeyedRateLimitLayer`]; clones share the limiter.
pub struct KeyedRateLimitService<Inner, K, F, C = FastClock, S = DefaultHasher> {
    inner: Inner,
    limiter: Arc<KeyedRateLimiter<K, C, S>>,
    key: F,
}

impl<Inner: Clone, K, F: Clone, C, S> Clone for KeyedRateLimitService<Inner, K, F, C, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: Arc::clone(&self.limiter),
            key: self.key.clone(),
        }
    }
}

impl<Inner: fmt::Debug, K, F, C, S> fmt::Debug for KeyedRateLimitService<Inner, K, F, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<Inner, K, F, C, S, Req> Service<Req> for KeyedRateLimitService<Inner, K, F, C, S>
where
    Inner: Service<Req>,
    K: Hash + Eq + Clone,
    F: Fn(&Req) -> K,
    C: Clock,
    S: BuildHasher,
{
    type Response = Inner::Response;
    type Error = LimitError<Inner::Error>;
    type Future = ResponseFuture<Inner::Future, Inner::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LimitError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = (self.key)(&req);
        match self.limiter.check(&key) {
            Ok(()) => ResponseFuture::called(self.inner.call(req), ()),
            Err(refusal) => ResponseFuture::refused(LimitError::Throttled(refusal)),
        }
    }
}
