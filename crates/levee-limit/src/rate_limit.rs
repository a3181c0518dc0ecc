//! The rate-limit traits: one for limiters that decide in memory ([`RateLimit`]), one for
//! those that decide over the network ([`AsyncRateLimit`]), which every local limiter is
//! too, and one for limits per key ([`KeyedRateLimit`]), each key's limit being one of the
//! others. Code written against them takes any limiter: swapping GCRA for a sliding window
//! is a change of the line that builds it, and a local keyed limiter for a Redis one too.

use std::future::{Future, Ready, ready};

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::state::{LimitPolicy, LimitState};
use crate::stats::RateStats;

/// A rate limiter that decides in memory: [`RateLimiter`](crate::RateLimiter) (GCRA),
/// [`Pacer`](crate::Pacer), [`WarmUpLimiter`](crate::WarmUpLimiter),
/// [`FixedWindowLimiter`](crate::FixedWindowLimiter),
/// [`SlidingWindowLimiter`](crate::SlidingWindowLimiter), and one key of a
/// [`KeyedRateLimiter`](crate::KeyedRateLimiter) ([`KeyedRateLimiter::key`](crate::KeyedRateLimiter::key)).
///
/// Each limiter's inherent methods of the same names do the same; the trait is for code
/// that takes any of them (a policy stage, a tower layer, your own middleware).
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{Quota, RateLimit, RateLimiter, SlidingWindowLimiter, WindowQuota};
///
/// fn admitted(limiter: &impl RateLimit, calls: u32) -> u32 {
///     (0..calls).filter(|_| limiter.check().is_ok()).count() as u32
/// }
///
/// let clock = ManualClock::new();
/// let gcra = RateLimiter::with_clock(Quota::per_second(3), clock.clone())?;
/// let window = SlidingWindowLimiter::builder(WindowQuota::per_second(3)).clock(clock).build()?;
/// assert_eq!(admitted(&gcra, 5), 3);
/// assert_eq!(admitted(&window, 5), 3);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait RateLimit: Send + Sync {
    /// Admits one cell now, or says when it could be admitted.
    ///
    /// # Errors
    /// [`Throttled`] when the limit is used up; nothing is consumed.
    fn check(&self) -> Result<(), Throttled>;

    /// Admits `n` cells at once (all or none). `n == 0` always succeeds.
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit now (nothing is consumed);
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the burst, so they never will.
    fn check_n(&self, n: u32) -> Result<(), CheckNError>;

    /// Waits until one cell is admitted, sleeping on the limiter's clock. Cancellation-safe:
    /// dropping the future consumes nothing.
    fn until_ready(&self) -> impl Future<Output = ()> + Send;

    /// Waits until `n` cells are admitted at once. Cancellation-safe.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst.
    fn until_n_ready(
        &self,
        n: u32,
    ) -> impl Future<Output = Result<(), InsufficientCapacity>> + Send;

    /// A snapshot of the limiter's counters.
    fn stats(&self) -> RateStats;

    /// The limiter's state now: the cells admissible now and the time until it is full
    /// again. What they mean for each algorithm is in [`LimitState`]'s table. A snapshot:
    /// other callers may take the cells first.
    fn state(&self) -> LimitState;

    /// The limit the limiter enforces, as clients are told it (a quota's count per period,
    /// a window's limit per window).
    fn policy(&self) -> LimitPolicy;
}

/// A rate limiter whose decision may need a round trip (a cluster-wide GCRA on Redis), or
/// any [`RateLimit`], which decides at once: every local limiter implements this trait
/// through a blanket impl whose futures are ready on their first poll and allocate nothing.
///
/// Stages that accept limiters (`tower::RateLimitLayer` with the `tower` feature, levee-policy's
/// limiter stage) take this trait, so a remote limiter drops in where a local one was.
///
/// ```
/// use levee_limit::{AsyncRateLimit, Quota, RateLimiter};
///
/// async fn admit(limiter: &impl AsyncRateLimit) -> bool {
///     limiter.check_n(1).await.is_ok()
/// }
///
/// let limiter = RateLimiter::new(Quota::per_minute(1))?;
/// assert!(levee_core::block_on(admit(&limiter)));
/// assert!(!levee_core::block_on(admit(&limiter)));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait AsyncRateLimit: Send + Sync {
    /// True when [`try_decide_now`](Self::try_decide_now) always answers: the limiter
    /// decides in memory. Middleware then decides when the call is made, with no future to
    /// keep (local limiters); otherwise it awaits [`check_n`](Self::check_n) first.
    const DECIDES_NOW: bool = false;

    /// Admits `n` cells at once, or says when they could be admitted.
    ///
    /// # Errors
    /// As [`RateLimit::check_n`].
    fn check_n(&self, n: u32) -> impl Future<Output = Result<(), CheckNError>> + Send;

    /// Decides without a round trip when the limiter can (`Some`); `None` when the decision
    /// needs [`check_n`](Self::check_n) to be awaited.
    fn try_decide_now(&self, n: u32) -> Option<Result<(), CheckNError>> {
        let _ = n;
        None
    }

    /// A snapshot of the limiter's counters.
    fn stats(&self) -> RateStats;

    /// As [`check_n`](Self::check_n), also reporting the limiter's state after an
    /// admission: `Ok(Some(state))`, or `Ok(None)` when the limiter cannot tell. This is
    /// what rate-limit headers are made from. A local limiter takes a snapshot
    /// ([`RateLimit::state`]) after admitting; a remote one reports what its decision saw,
    /// with no extra round trip.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    fn check_n_with_state(
        &self,
        n: u32,
    ) -> impl Future<Output = Result<Option<LimitState>, CheckNError>> + Send {
        let decision = self.check_n(n);
        async move { decision.await.map(|()| None) }
    }

    /// As [`try_decide_now`](Self::try_decide_now), with the state after an admission as
    /// [`check_n_with_state`](Self::check_n_with_state) reports it.
    fn try_decide_now_with_state(&self, n: u32) -> Option<Result<Option<LimitState>, CheckNError>> {
        self.try_decide_now(n).map(|decision| decision.map(|()| None))
    }

    /// The limit the limiter enforces, as clients are told it; `None` when it cannot say.
    fn policy(&self) -> Option<LimitPolicy> {
        None
    }
}

impl<L: RateLimit + ?Sized> AsyncRateLimit for L {
    const DECIDES_NOW: bool = true;

    // Refined on purpose: a local limiter's decision is a nameable `Ready`, allocation-free.
    #[allow(refining_impl_trait)]
    fn check_n(&self, n: u32) -> Ready<Result<(), CheckNError>> {
        ready(RateLimit::check_n(self, n))
    }

    #[inline]
    fn try_decide_now(&self, n: u32) -> Option<Result<(), CheckNError>> {
        Some(if n == 1 {
            RateLimit::check(self).map_err(Into::into)
        } else {
            RateLimit::check_n(self, n)
        })
    }

    fn stats(&self) -> RateStats {
        RateLimit::stats(self)
    }

    // Refined on purpose, as `check_n`.
    #[allow(refining_impl_trait)]
    fn check_n_with_state(&self, n: u32) -> Ready<Result<Option<LimitState>, CheckNError>> {
        ready(RateLimit::check_n(self, n).map(|()| Some(RateLimit::state(self))))
    }

    #[inline]
    fn try_decide_now_with_state(&self, n: u32) -> Option<Result<Option<LimitState>, CheckNError>> {
        let decision = AsyncRateLimit::try_decide_now(self, n)?;
        Some(decision.map(|()| Some(RateLimit::state(self))))
    }

    fn policy(&self) -> Option<LimitPolicy> {
        Some(RateLimit::policy(self))
    }
}

/// A rate limit per key (client, API token, tenant...), decided in memory or over the
/// network: each key's limit is a view, [`key`](Self::key), that is an [`AsyncRateLimit`]
/// of its own. [`KeyedRateLimiter`](crate::KeyedRateLimiter) implements it (its views are
/// [`KeyLimit`](crate::KeyLimit)s, local limiters), and so does levee-redis's cluster-wide
/// limiter, so the keyed tower layer (`tower::KeyedRateLimitLayer`, feature `tower`)
/// takes either.
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{AsyncRateLimit, KeyedRateLimit, KeyedRateLimiter, Quota};
///
/// /// Admits one request of `client`, whatever keeps the limit.
/// async fn admit(limits: &impl KeyedRateLimit<String>, client: &String) -> bool {
///     limits.key(client).check_n(1).await.is_ok()
/// }
///
/// let limits = KeyedRateLimiter::<String>::builder(Quota::per_minute(1))
///     .clock(ManualClock::new())
///     .build()?;
/// let (alice, bob) = ("alice".to_string(), "bob".to_string());
/// assert!(levee_core::block_on(admit(&limits, &alice)));
/// assert!(!levee_core::block_on(admit(&limits, &alice)));
/// assert!(levee_core::block_on(admit(&limits, &bob)));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait KeyedRateLimit<K: ?Sized>: Send + Sync {
    /// One key's limit.
    type Key<'a>: AsyncRateLimit
    where
        Self: 'a,
        K: 'a;

    /// `key`'s limit, as a limiter of its own.
    fn key<'a>(&'a self, key: &'a K) -> Self::Key<'a>;

    /// The limit each key gets, as clients are told it; `None` when it cannot say.
    fn policy(&self) -> Option<LimitPolicy> {
        None
    }
}

/// Implements [`RateLimit`] by the limiter's inherent methods of the same names.
macro_rules! rate_limit_by_inherent_methods {
    ($($limiter:ident),+) => {$(
        impl<C: levee_core::Clock> $crate::RateLimit for $crate::$limiter<C> {
            #[inline]
            fn check(&self) -> Result<(), $crate::Throttled> {
                $crate::$limiter::check(self)
            }

            #[inline]
            fn check_n(&self, n: u32) -> Result<(), $crate::CheckNError> {
                $crate::$limiter::check_n(self, n)
            }

            fn until_ready(&self) -> impl std::future::Future<Output = ()> + Send {
                $crate::$limiter::until_ready(self)
            }

            fn until_n_ready(
                &self,
                n: u32,
            ) -> impl std::future::Future<Output = Result<(), $crate::InsufficientCapacity>> + Send
            {
                $crate::$limiter::until_n_ready(self, n)
            }

            fn stats(&self) -> $crate::RateStats {
                $crate::$limiter::stats(self)
            }

            #[inline]
            fn state(&self) -> $crate::LimitState {
                $crate::$limiter::state(self)
            }

            fn policy(&self) -> $crate::LimitPolicy {
                $crate::$limiter::quota(self).into()
            }
        }
    )+};
}

rate_limit_by_inherent_methods!(
    RateLimiter,
    Pacer,
    WarmUpLimiter,
    FixedWindowLimiter,
    SlidingWindowLimiter
);
