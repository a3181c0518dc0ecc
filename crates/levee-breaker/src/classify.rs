//! Deciding what a call's result says about the backend.

/// What a finished call says about the backend.
///
/// ```
/// use levee_breaker::{CircuitBreaker, Outcome};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// // A 404 says nothing about the backend's health; a 503 is a failure.
/// let classify = |r: &Result<u16, u16>| match r {
///     Ok(_) | Err(404) => Outcome::Ignored,
///     Err(_) => Outcome::Failure,
/// };
/// let _ = breaker.call_with(&classify, || Err::<u16, u16>(404));
/// assert_eq!(breaker.metrics().calls, 0);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend served the call.
    Success,
    /// The backend failed the call.
    Failure,
    /// The result says nothing about the backend's health (a 404, a validation error): not
    /// recorded, and a half-open trial permit is handed back for another call.
    Ignored,
}

/// Classifies a call's result. Any `Fn(&Result<T, E>) -> Outcome` is a classifier.
///
/// Slowness is judged separately, from the call's duration (see
/// [`BreakerSettings::slow_call_duration`](crate::BreakerSettings::slow_call_duration) and
/// [`slow_success_is_failure`](crate::BreakerSettings::slow_success_is_failure)).
///
/// ```
/// use levee_breaker::{Classify, Outcome};
///
/// #[derive(Debug)]
/// enum HttpError { NotFound, Unavailable }
///
/// // A 404 is the caller's problem, not the backend's.
/// let classify = |r: &Result<(), HttpError>| match r {
///     Ok(()) => Outcome::Success,
///     Err(HttpError::NotFound) => Outcome::Ignored,
///     Err(HttpError::Unavailable) => Outcome::Failure,
/// };
/// assert_eq!(classify.classify(&Err(HttpError::NotFound)), Outcome::Ignored);
/// ```
pub trait Classify<T, E> {
    /// The outcome of `result`.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// `Ok` is a success, every `Err` a failure.
///
/// ```
/// use levee_breaker::{CircuitBreaker, DefaultClassifier};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// let _ = breaker.call_with(&DefaultClassifier, || Err::<(), _>("down"));
/// assert_eq!(breaker.metrics().failed_calls, 1);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<T, E> Classify<T, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        if result.is_ok() { Outcome::Success } else { Outcome::Failure }
    }
}

/// `Ok` is a success; an `Err` is whatever the predicate says.
///
/// ```
/// use levee_breaker::{Classify, Outcome, classify_errors};
///
/// let classifier = classify_errors(|status: &u16| {
///     if *status >= 500 { Outcome::Failure } else { Outcome::Ignored }
/// });
/// assert_eq!(classifier.classify(&Err::<(), u16>(404)), Outcome::Ignored);
/// assert_eq!(classifier.classify(&Err::<(), u16>(503)), Outcome::Failure);
/// assert_eq!(classifier.classify(&Ok::<(), u16>(())), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorClassifier<P>(pub P);

/// A classifier that asks `predicate` about errors and counts every `Ok` as a success.
pub const fn classify_errors<P>(predicate: P) -> ErrorClassifier<P> {
    ErrorClassifier(predicate)
}

impl<T, E, P> Classify<T, E> for ErrorClassifier<P>
where
    P: Fn(&E) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => (self.0)(e),
        }
    }
}
