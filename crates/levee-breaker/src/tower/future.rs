use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use levee_core::{Clock, FastClock};
use pin_project_lite::pin_project;

use crate::{CallError, Classify, DefaultClassifier, Open, OwnedPermit};

pin_project! {
    /// The response future of a [`CircuitBreakerService`](super::CircuitBreakerService).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use levee_breaker::{CircuitBreaker, CircuitBreakerLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # futures::executor::block_on(async {
    /// let breaker = Arc::new(CircuitBreaker::builder().build().unwrap());
    /// let mut svc = CircuitBreakerLayer::new(breaker.clone())
    ///     .layer(service_fn(|fail: bool| async move { if fail { Err("500") } else { Ok(()) } }));
    /// let future = svc.ready().await.unwrap().call(true); // a ResponseFuture holding a permit
    /// assert_eq!(breaker.metrics().calls, 0); // nothing recorded until it completes
    /// assert!(future.await.is_err());
    /// assert_eq!(breaker.metrics().failed_calls, 1);
    /// # });
    /// ```
    #[derive(Debug)]
    pub struct ResponseFuture<F, C: Clock = FastClock, K = DefaultClassifier> {
        #[pin]
        inner: Option<F>,
        permit: Option<OwnedPermit<C>>,
        refused: Option<Open>,
        classifier: K,
    }
}

impl<F, C: Clock, K> ResponseFuture<F, C, K> {
    pub(crate) const fn called(inner: F, permit: OwnedPermit<C>, classifier: K) -> Self {
        Self { inner: Some(inner), permit: Some(permit), refused: None, classifier }
    }

    pub(crate) const fn refused(open: Open, classifier: K) -> Self {
        Self { inner: None, permit: None, refused: Some(open), classifier }
    }
}

impl<F, T, E, C, K> Future for ResponseFuture<F, C, K>
where
    F: Future<Output = Result<T, E>>,
    C: Clock,
    K: Classify<T, E>,
{
    type Output = Result<T, CallError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(open) = this.refused.take() {
            return Poll::Ready(Err(CallError::Open(open)));
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            panic!("ResponseFuture polled after completion");
        };
        let result = ready!(inner.poll(cx));
        if let Some(permit) = this.permit.take() {
            permit.record_outcome(this.classifier.classify(&result));
        }
        Poll::Ready(result.map_err(CallError::Inner))
    }
}
