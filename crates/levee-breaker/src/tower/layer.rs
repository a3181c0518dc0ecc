use std::sync::Arc;

use levee_core::{Clock, FastClock};
use tower_layer::Layer;

use super::CircuitBreakerService;
use crate::{CircuitBreaker, DefaultClassifier};

/// Wraps services in a [`CircuitBreakerService`] that shares one breaker.
///
/// ```
/// use std::sync::Arc;
/// use levee_breaker::{CallError, CircuitBreaker, CircuitBreakerLayer, Outcome};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let breaker = Arc::new(CircuitBreaker::builder().build().unwrap());
/// // 4xx answers are the client's fault: ignore them; 5xx count as failures.
/// let layer = CircuitBreakerLayer::new(breaker.clone()).classifier(|r: &Result<u16, ()>| match r {
///     Ok(status) if *status >= 500 => Outcome::Failure,
///     Ok(status) if *status >= 400 => Outcome::Ignored,
///     Ok(_) => Outcome::Success,
///     Err(()) => Outcome::Failure,
/// });
/// let service = layer.layer(service_fn(|status: u16| async move { Ok::<_, ()>(status) }));
///
/// breaker.force_open();
/// let refused = futures::executor::block_on(service.oneshot(200)).unwrap_err();
/// assert!(matches!(refused, CallError::Open(_)));
/// ```
#[derive(Debug)]
pub struct CircuitBreakerLayer<C: Clock = FastClock, K = DefaultClassifier> {
    breaker: Arc<CircuitBreaker<C>>,
    classifier: K,
}

impl<C: Clock> CircuitBreakerLayer<C> {
    /// A layer that records `Ok` as success and `Err` as failure.
    pub fn new(breaker: Arc<CircuitBreaker<C>>) -> Self {
        Self { breaker, classifier: DefaultClassifier }
    }
}

impl<C: Clock, K> CircuitBreakerLayer<C, K> {
    /// Classifies results with `classifier`, a [`Classify`](crate::Classify) over the inner
    /// service's `Result<Response, Error>` (any `Fn(&Result<..>) -> Outcome` that is `Clone`).
    pub fn classifier<K2>(self, classifier: K2) -> CircuitBreakerLayer<C, K2> {
        CircuitBreakerLayer { breaker: self.breaker, classifier }
    }

    /// The shared breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }
}

impl<C: Clock, K: Clone> Clone for CircuitBreakerLayer<C, K> {
    fn clone(&self) -> Self {
        Self { breaker: Arc::clone(&self.breaker), classifier: self.classifier.clone() }
    }
}

impl<S, C: Clock, K: Clone> Layer<S> for CircuitBreakerLayer<C, K> {
    type Service = CircuitBreakerService<S, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, Arc::clone(&self.breaker), self.classifier.clone())
    }
}
