//! The response future shared by levee's tower services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::LimitError;

pin_project_lite::pin_project! {
    /// The response future of levee's tower services: the inner service's future, holding
    /// whatever guard the request was admitted with (a bulkhead permit, released when this
    /// future completes or is dropped), or an immediate refusal.
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
    /// let future = svc.ready().await?.call(1); // a ResponseFuture holding the permit
    /// assert_eq!(bulkhead.in_flight(), 1);
    /// drop(future); // dropped unpolled: the permit goes back
    /// assert_eq!(bulkhead.in_flight(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseFuture<F, E, G = ()> {
        #[pin]
        state: State<F, E>,
        guard: Option<G>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Called { #[pin] future: F },
        Refused { error: Option<LimitError<E>> },
    }
}

impl<F, E, G> ResponseFuture<F, E, G> {
    pub(super) fn called(future: F, guard: G) -> Self {
        Self { state: State::Called { future }, guard: Some(guard) }
    }

    pub(super) fn refused(error: LimitError<E>) -> Self {
        Self { state: State::Refused { error: Some(error) }, guard: None }
    }
}

impl<F, E, G> fmt::Debug for ResponseFuture<F, E, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T, E, G> Future for ResponseFuture<F, E, G>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, LimitError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state.project() {
            StateProj::Called { future } => {
                let output = std::task::ready!(future.poll(cx));
                // Release the guard as soon as the inner call is done.
                this.guard.take();
                Poll::Ready(output.map_err(LimitError::Inner))
            }
            StateProj::Refused { error } => {
                Poll::Ready(Err(error.take().expect("refusal polled after completion")))
            }
        }
    }
}
