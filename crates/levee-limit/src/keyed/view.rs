//! One key of a keyed limiter seen as a limiter of its own ([`KeyLimit`]), so code written
//! against [`RateLimit`] takes it like any other.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use levee_core::Clock;

use super::KeyedRateLimiter;
use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::rate_limit::{KeyedRateLimit, RateLimit};
use crate::state::{LimitPolicy, LimitState};
use crate::stats::RateStats;
use crate::wait::{Jitter, retry_until};

/// One key's limit in a [`KeyedRateLimiter`], from [`KeyedRateLimiter::key`]: a
/// [`RateLimit`] whose checks and waits are the key's. Its [`stats`](RateLimit::stats) are
/// the whole keyed limiter's (counters are not kept per key).
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{KeyedRateLimiter, Quota, RateLimit};
///
/// let keyed = KeyedRateLimiter::<String>::builder(Quota::per_second(1))
///     .clock(ManualClock::new())
///     .build()?;
/// let alice = keyed.key("alice");
/// assert!(alice.check().is_ok());
/// assert!(alice.check().is_err());
/// assert!(keyed.key("bob").check().is_ok(), "another key, another limit");
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct KeyLimit<'a, K, Q: ?Sized, C, S> {
    limiter: &'a KeyedRateLimiter<K, C, S>,
    key: &'a Q,
}

impl<K, Q: fmt::Debug + ?Sized, C, S> fmt::Debug for KeyLimit<'_, K, Q, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLimit").field("key", &self.key).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, C: Clock, S: BuildHasher> KeyedRateLimiter<K, C, S> {
    /// `key`'s limit as a [`RateLimit`] of its own.
    pub fn key<'a, Q>(&'a self, key: &'a Q) -> KeyLimit<'a, K, Q, C, S>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        KeyLimit { limiter: self, key }
    }
}

impl<K, Q, C, S> KeyLimit<'_, K, Q, C, S>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    C: Clock,
    S: BuildHasher,
{
    /// [`KeyedRateLimiter::check`] for this key.
    ///
    /// # Errors
    /// As [`KeyedRateLimiter::check`].
    #[inline]
    pub fn check(&self) -> Result<(), Throttled> {
        self.limiter.check(self.key)
    }

    /// [`KeyedRateLimiter::check_n`] for this key.
    ///
    /// # Errors
    /// As [`KeyedRateLimiter::check_n`].
    #[inline]
    pub fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        self.limiter.check_n(self.key, n)
    }

    /// [`KeyedRateLimiter::until_key_ready`] for this key.
    pub async fn until_ready(&self) {
        self.limiter.until_key_ready(self.key).await;
    }

    /// Waits until `n` cells are admitted at once for this key. Cancellation-safe.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst.
    pub async fn until_n_ready(&self, n: u32) -> Result<(), InsufficientCapacity> {
        let limiter = self.limiter;
        // `n` above the burst (now, or after a `reconfigure` while waiting) ends the wait
        // with the capacity error instead of waiting forever.
        let (fits, waited) = retry_until(&limiter.clock, Jitter::NONE, || {
            match limiter.check_n_inner(self.key, n, false) {
                Ok(()) => Ok(Ok(())),
                Err(CheckNError::Throttled(refusal)) => Err(refusal),
                Err(CheckNError::InsufficientCapacity(error)) => Ok(Err(error)),
            }
        })
        .await;
        fits?;
        limiter.counters.record_wait(&limiter.hook, n, waited);
        Ok(())
    }

    /// [`KeyedRateLimiter::state`] for this key.
    #[must_use]
    pub fn state(&self) -> LimitState {
        self.limiter.state(self.key)
    }

    /// The whole keyed limiter's counters (they are not kept per key).
    #[must_use]
    pub fn stats(&self) -> RateStats {
        let stats = self.limiter.stats();
        RateStats { admitted: stats.admitted, rejected: stats.rejected, waited: stats.waited }
    }
}

impl<K, Q, C, S> RateLimit for KeyLimit<'_, K, Q, C, S>
where
    K: Hash + Eq + Borrow<Q> + Send + Sync,
    Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
    C: Clock,
    S: BuildHasher + Send + Sync,
{
    #[inline]
    fn check(&self) -> Result<(), Throttled> {
        KeyLimit::check(self)
    }

    #[inline]
    fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        KeyLimit::check_n(self, n)
    }

    fn until_ready(&self) -> impl std::future::Future<Output = ()> + Send {
        KeyLimit::until_ready(self)
    }

    fn until_n_ready(
        &self,
        n: u32,
    ) -> impl std::future::Future<Output = Result<(), InsufficientCapacity>> + Send {
        KeyLimit::until_n_ready(self, n)
    }

    fn stats(&self) -> RateStats {
        KeyLimit::stats(self)
    }

    #[inline]
    fn state(&self) -> LimitState {
        KeyLimit::state(self)
    }

    fn policy(&self) -> LimitPolicy {
        self.limiter.quota().into()
    }
}

/// A keyed limiter's keys as limiters of their own, for code that takes any keyed limit
/// (the keyed tower layer): [`key`](KeyedRateLimit::key) is [`KeyedRateLimiter::key`].
impl<K, C, S> KeyedRateLimit<K> for KeyedRateLimiter<K, C, S>
where
    K: Hash + Eq + Clone + Send + Sync,
    C: Clock,
    S: BuildHasher + Send + Sync,
{
    type Key<'a>
        = KeyLimit<'a, K, K, C, S>
    where
        Self: 'a,
        K: 'a;

    #[inline]
    fn key<'a>(&'a self, key: &'a K) -> KeyLimit<'a, K, K, C, S> {
        KeyedRateLimiter::key(self, key)
    }

    fn policy(&self) -> Option<LimitPolicy> {
        Some(self.quota().into())
    }
}
