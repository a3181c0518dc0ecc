//! One key of the cluster-wide limiter as a limiter of its own, so the Redis limiter drops
//! in wherever levee-limit's family goes: levee-policy's limiter stage and the tower
//! layers ([`AsyncRateLimit`] for one key, [`KeyedRateLimit`] for a key per request).

use std::fmt;
use std::future::Future;
use std::ops::Deref;

use levee_core::Clock;
use levee_limit::{
    AsyncRateLimit, CheckNError, KeyedRateLimit, LimitPolicy, LimitState, RateStats,
};
use redis::aio::ConnectionLike;

use crate::limiter::RedisRateLimiter;

/// One key's limit in a [`RedisRateLimiter`]: an [`AsyncRateLimit`] whose checks are the
/// key's, so it goes where any limiter of levee-limit's family goes. Its
/// [`stats`](AsyncRateLimit::stats) are the whole limiter's.
///
/// Borrowed from the limiter ([`RedisRateLimiter::key`], as the keyed tower layer does per
/// request), or owning a shared limiter and the key ([`RedisKey::new`]) for a stage that
/// keeps it: a pipeline guarding calls to a partner under one cluster-wide limit.
///
/// Each admission reports the key's [`LimitState`] from the script's reply, at no extra
/// round trip: the cells admissible now and the time until the key is full, computed from
/// its theoretical arrival time exactly as levee-limit's GCRA does
/// ([`Gcra::state`](levee_limit::Gcra::state)). While Redis is away and the fail mode is
/// open, the state is the local share's; in lease mode no state is reported (cells are spent
/// from a local pool, and the key's state in Redis is not read).
///
/// ```no_run
/// use std::sync::Arc;
/// use levee_limit::Quota;
/// use levee_policy::Pipeline;
/// use levee_redis::{RedisKey, RedisRateLimiter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // 50 calls a second to the payment provider, across every replica.
/// let limiter = Arc::new(
///     RedisRateLimiter::builder(Quota::per_second(50))
///         .prefix("partner:")
///         .connect("redis://127.0.0.1:6379/")?,
/// );
/// let pipeline = Pipeline::builder()
///     .limiter(Arc::new(RedisKey::new(limiter, "payments")))
///     .build()?;
/// let answer = pipeline.execute(|_| async { Ok::<_, ()>("paid") }).await;
/// # drop(answer);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisKey<R, K> {
    limiter: R,
    key: K,
}

impl<R, K> RedisKey<R, K> {
    /// `key`'s limit in `limiter` (a reference, an `Arc`, anything that derefs to a
    /// [`RedisRateLimiter`]).
    pub fn new(limiter: R, key: K) -> Self {
        Self { limiter, key }
    }

    /// The key.
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<R, K: fmt::Debug> fmt::Debug for RedisKey<R, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKey").field("key", &self.key).finish_non_exhaustive()
    }
}

impl<C, Conn> RedisRateLimiter<C, Conn>
where
    C: Clock + Clone,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// `key`'s limit as a limiter of its own (see [`RedisKey`]).
    pub fn key<'a>(&'a self, key: &'a str) -> RedisKey<&'a Self, &'a str> {
        RedisKey::new(self, key)
    }
}

impl<R, K, C, Conn> AsyncRateLimit for RedisKey<R, K>
where
    R: Deref<Target = RedisRateLimiter<C, Conn>> + Send + Sync,
    K: AsRef<str> + Send + Sync,
    C: Clock + Clone,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn check_n(&self, n: u32) -> impl Future<Output = Result<(), CheckNError>> + Send {
        self.limiter.check_n(self.key.as_ref(), n)
    }

    fn check_n_with_state(
        &self,
        n: u32,
    ) -> impl Future<Output = Result<Option<LimitState>, CheckNError>> + Send {
        self.limiter.check_n_with_state(self.key.as_ref(), n)
    }

    fn stats(&self) -> RateStats {
        self.limiter.stats().rate()
    }

    fn policy(&self) -> Option<LimitPolicy> {
        Some(self.limiter.quota().into())
    }
}

/// The cluster-wide limiter as a keyed limit: the keyed tower layer takes it as it takes a
/// local [`KeyedRateLimiter`](levee_limit::KeyedRateLimiter), keyed by anything that is a
/// string.
impl<K, C, Conn> KeyedRateLimit<K> for RedisRateLimiter<C, Conn>
where
    K: AsRef<str> + Sync + ?Sized,
    C: Clock + Clone,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    type Key<'a>
        = RedisKey<&'a Self, &'a str>
    where
        Self: 'a,
        K: 'a;

    fn key<'a>(&'a self, key: &'a K) -> RedisKey<&'a Self, &'a str> {
        RedisKey::new(self, key.as_ref())
    }
}
