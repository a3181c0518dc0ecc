use std::task::{Context, Poll};

use std::sync::Arc;

use levee_core::{Clock, FastClock};
use tower_service::Service;

use super::ResponseFuture;
use crate::{CallError, CircuitBreaker, Classify, DefaultClassifier};

/// A service behind a circuit breaker; clones share the breaker. Built by
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// ```
/// use std::sync::Arc;
/// use levee_breaker::CircuitBreaker;
/// use levee_breaker::CircuitBreakerLayer;
/// use tower::{Layer, Service, ServiceExt};
///
/// # futures::executor::block_on(async {
/// let breaker = Arc::new(CircuitBreaker::builder().build()?);
/// let mut svc = CircuitBreakerLayer::new(breaker)
///     .layer(tower::service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n * 2) }));
/// assert_eq!(svc.ready().await?.call(21).await?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct CircuitBreakerService<S, C: Clock = FastClock, K = DefaultClassifier> {
    inner: S,
    breaker: Arc<CircuitBreaker<C>>,
    classifier: K,
}

impl<S, C: Clock, K> CircuitBreakerService<S, C, K> {
    /// `inner` behind `breaker`, classifying results with `classifier`.
    pub fn new(inner: S, breaker: Arc<CircuitBreaker<C>>, classifier: K) -> Self {
        Self { inner, breaker, classifier }
    }

    /// The shared breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C: Clock, K: Clone> Clone for CircuitBreakerService<S, C, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            breaker: Arc::clone(&self.breaker),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S, Req, C, K> Service<Req> for CircuitBreakerService<S, C, K>
where
    S: Service<Req>,
    C: Clock,
    K: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = ResponseFuture<S::Future, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the inner service's; the breaker answers per call, so an open circuit
        // fails calls fast instead of holding callers in poll_ready.
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(request), permit, self.classifier.clone())
            }
            Err(open) => ResponseFuture::refused(open, self.classifier.clone()),
        }
    }
}
