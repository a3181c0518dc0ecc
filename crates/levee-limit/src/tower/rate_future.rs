//! The response future of the rate-limit services, plain and keyed, with or without
//! rate-limit headers: a decision (already made, or awaited from a remote keyed limiter),
//! then the inner call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tower_service::Service;

use super::LimitError;
use crate::error::{CheckNError, Throttled};
use crate::state::LimitState;

/// A remote limiter's decision on one cell, with the state after an admission.
pub(super) type Decision = Result<Option<LimitState>, CheckNError>;

/// A remote limiter's pending decision.
pub(super) type PendingDecision = Pin<Box<dyn Future<Output = Decision> + Send>>;

/// One cell's decision: admitted (with the state, if known) or "not now". A cell always fits
/// a burst of at least one; a limiter that says otherwise never admits, and is refused for
/// good.
pub(super) fn one_cell(decision: Decision) -> Result<Option<LimitState>, Throttled> {
    decision.map_err(|e| match e {
        CheckNError::Throttled(t) => t,
        CheckNError::InsufficientCapacity(_) => Throttled::new(0, u64::MAX),
    })
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimitService`](super::RateLimitService) and
    /// [`KeyedRateLimitService`](super::KeyedRateLimitService): the inner service's future
    /// once the request is admitted, or the refusal.
    ///
    /// Without headers (`H = ()`) it yields the inner response or a [`LimitError`]; with
    /// [`RateLimitHeaders`](super::RateLimitHeaders) (feature `http`) the inner response
    /// with the rate-limit fields added, or a `429` that carries them.
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
    /// let limiter = Arc::new(RateLimiter::new(Quota::per_second(1))?);
    /// let mut svc = RateLimitLayer::new(limiter)
    ///     .layer(service_fn(|x: u32| async move { Ok::<_, Infallible>(x) }));
    /// let admitted = svc.ready().await?.call(1); // a RateLimitFuture: the inner call
    /// let refused = svc.ready().await?.call(2); // a RateLimitFuture: the refusal
    /// assert_eq!(admitted.await?, 1);
    /// assert!(matches!(refused.await, Err(LimitError::Throttled(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub struct RateLimitFuture<S, Req, H>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
        headers: H,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        // A remote keyed limiter is deciding; the inner service (made ready by
        // `poll_ready`) and the request wait for it.
        Deciding {
            decision: PendingDecision,
            service: Option<S>,
            request: Option<Req>,
        },
        Called {
            #[pin]
            future: S::Future,
            state: Option<LimitState>,
        },
        Refused {
            refusal: Throttled,
        },
        Done,
    }
}

/// How a request ended: the inner service answered (admitted with this state, if known), or
/// the limiter refused it.
pub(super) enum Outcome<T, E> {
    Answered(Result<T, E>, #[cfg_attr(not(feature = "http"), allow(dead_code))] Option<LimitState>),
    Refused(Throttled),
}

impl<S: Service<Req>, Req, H> RateLimitFuture<S, Req, H> {
    /// Admitted: the inner call is under way.
    pub(super) fn called(future: S::Future, state: Option<LimitState>, headers: H) -> Self {
        Self { state: State::Called { future, state }, headers }
    }

    /// Refused at once.
    pub(super) fn refused(refusal: Throttled, headers: H) -> Self {
        Self { state: State::Refused { refusal }, headers }
    }

    /// Waits for a remote decision, then calls `service` (ready) with `request`.
    pub(super) fn deciding(
        decision: PendingDecision,
        service: S,
        request: Req,
        headers: H,
    ) -> Self {
        let state = State::Deciding { decision, service: Some(service), request: Some(request) };
        Self { state, headers }
    }

    /// Drives the decision and the inner call to an [`Outcome`].
    pub(super) fn poll_outcome(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Outcome<S::Response, S::Error>> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Deciding { decision, service, request } => {
                    let decision = ready!(decision.as_mut().poll(cx));
                    let next = match one_cell(decision) {
                        Ok(admitted) => {
                            let (Some(mut service), Some(request)) =
                                (service.take(), request.take())
                            else {
                                unreachable!("taken only on leaving this state");
                            };
                            State::Called { future: service.call(request), state: admitted }
                        }
                        Err(refusal) => State::Refused { refusal },
                    };
                    state.set(next);
                }
                StateProj::Called { future, state: admitted } => {
                    let output = ready!(future.poll(cx));
                    let admitted = *admitted;
                    state.set(State::Done);
                    return Poll::Ready(Outcome::Answered(output, admitted));
                }
                StateProj::Refused { refusal } => {
                    let refusal = *refusal;
                    state.set(State::Done);
                    return Poll::Ready(Outcome::Refused(refusal));
                }
                StateProj::Done => panic!("RateLimitFuture polled after completion"),
            }
        }
    }

    /// The headers setting the future answers with.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) fn headers(self: Pin<&mut Self>) -> &mut H {
        self.project().headers
    }
}

impl<S: Service<Req>, Req, H> fmt::Debug for RateLimitFuture<S, Req, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitFuture").finish_non_exhaustive()
    }
}

/// Without headers: the inner response, or the refusal as [`LimitError::Throttled`].
impl<S: Service<Req>, Req> Future for RateLimitFuture<S, Req, ()> {
    type Output = Result<S::Response, LimitError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.poll_outcome(cx)) {
            Outcome::Answered(output, _) => output.map_err(LimitError::Inner),
            Outcome::Refused(refusal) => Err(LimitError::Throttled(refusal)),
        })
    }
}
