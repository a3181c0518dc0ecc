//! The edge's rate limits in process or on Redis (`[edge.redis]`, issue 17.6), behind one
//! type, [`EdgeLimiter`], so the edge's layers, refusals and headers do not fork.
//!
//! Without `edge.redis.url` each limit is a levee-limit [`KeyedRateLimiter`] in this process
//! (the default: the shop needs no Redis). With it, each limit is a levee-redis
//! [`RedisRateLimiter`]: one GCRA per client in Redis, timed by the server, shared by every
//! shop on that Redis and prefix, so a client that spent its burst on one replica is refused
//! on the others. Both are levee-limit [`KeyedRateLimit`]s, and so is [`EdgeLimiter`]: the
//! keyed tower layer decides a local limit in `call`, a Redis one in its response future,
//! and answers both the same way (429, `Retry-After`, the IETF `RateLimit` fields).
//!
//! **Without Redis.** Every check is bounded by `edge.redis.timeout`; then, and while the
//! limiter's breaker is open, `edge.redis.fail_mode` decides: open, each shop admits each
//! client at a share of its quota on its own; closed, 429 until Redis answers. The start
//! follows the fail mode ([`check_start`]): fail-closed does not start without Redis (a
//! [`RedisUnreachable`] naming the setting), fail-open starts degraded with a warning and
//! uses Redis as soon as it answers (the limiter reconnects by itself).
//!
//! **Live settings.** levee-redis's limiter has no `reconfigure` (its quota is fixed when it
//! is built, and every shop on the Redis enforces its own copy of it), so `PATCH
//! /admin/settings` refuses to change a limit that runs on Redis, with 422 saying why
//! ([`EdgeLimiter::fixed`]), rather than changing one replica's quota.

use std::time::Duration;

use levee::limit::{
    AsyncRateLimit, CheckNError, KeyedRateLimit, KeyedRateLimiter, LimitPolicy, LimitState, Quota,
    RateStats,
};
use levee::redis::{RedisKey, RedisRateLimiter, RedisStats};
use serde::Serialize;

use super::identity::Client;
use crate::clock::ShopClock;
use crate::config::{RedisEdgeConfig, SettingError, section};
use crate::guard::BreakerState;

/// One of the edge's per-client rate limits: in this process, or on Redis.
#[derive(Debug)]
pub enum EdgeLimiter {
    /// In this process (the default).
    Local(Box<KeyedRateLimiter<Client, ShopClock>>),
    /// On Redis, shared by every shop with the same Redis and prefix.
    Redis(Box<RedisRateLimiter<ShopClock>>),
}

impl EdgeLimiter {
    /// The limit `quota` (the setting `setting`, as `edge.rate`) for each client: on Redis
    /// under `<prefix><name>:` when `redis` has a URL, else in this process. Connects
    /// lazily: a Redis that is not there yet fails no build (see [`check_start`]).
    ///
    /// # Errors
    /// A setting out of range, named by its path; a Redis URL the client cannot read, named
    /// `edge.redis.url`.
    pub fn build(
        quota: Quota,
        setting: &'static str,
        name: &str,
        redis: &RedisEdgeConfig,
        clock: ShopClock,
    ) -> Result<Self, SettingError> {
        let Some(url) = redis.url() else {
            let local = KeyedRateLimiter::builder(quota).clock(clock).build();
            return local.map(|l| Self::Local(Box::new(l))).map_err(section(setting));
        };
        let mut builder = RedisRateLimiter::builder(quota)
            .prefix(format!("{}{name}:", redis.prefix))
            .timeout(redis.timeout)
            .fail_mode(redis.fail_mode);
        if let Some(lease) = redis.lease {
            builder = builder.lease(lease);
        }
        match builder.clock(clock).connect(url) {
            Ok(limiter) => Ok(Self::Redis(Box::new(limiter))),
            Err(levee::redis::BuildError::Config(e)) => match e.setting.strip_prefix("quota.") {
                // levee-redis names the quota's fields `quota.burst`: here they are `setting`'s.
                Some(field) => {
                    Err(section(setting)(levee::core::ConfigError { setting: field, ..e }))
                }
                None => Err(section("edge.redis")(e)),
            },
            Err(e) => Err(section("edge.redis")(levee::core::ConfigError::new(
                "url",
                format!("{e} (`{}`)", redacted(url)),
            ))),
        }
    }

    /// The quota each client has.
    #[must_use]
    pub fn quota(&self) -> Quota {
        match self {
            Self::Local(l) => l.quota(),
            Self::Redis(r) => r.quota(),
        }
    }

    /// Why this limit cannot change while the shop runs, or `None` when it can.
    #[must_use]
    pub fn fixed(&self) -> Option<&'static str> {
        match self {
            Self::Local(_) => None,
            Self::Redis(_) => Some(
                "runs on Redis (`edge.redis.url`), shared by every shop on it: its quota is \
                 each shop's setting, so change it in the settings of every shop and restart \
                 them",
            ),
        }
    }

    /// Changes the quota of an in-process limit (each client keeps what it owes).
    ///
    /// # Errors
    /// An invalid quota; any quota for a limit on Redis (see [`fixed`](Self::fixed)).
    pub fn reconfigure(&self, quota: Quota) -> Result<(), levee::core::ConfigError> {
        match (self, self.fixed()) {
            (Self::Local(l), _) => l.reconfigure(quota).map(drop),
            (Self::Redis(_), why) => {
                Err(levee::core::ConfigError::new("quota", why.unwrap_or_default()))
            }
        }
    }

    /// Requests refused so far.
    #[must_use]
    pub fn rejected(&self) -> u64 {
        match self {
            Self::Local(l) => l.stats().rejected,
            Self::Redis(r) => r.stats().rejected,
        }
    }

    /// Clients this process tracks (0 on Redis: the clients live there).
    #[must_use]
    pub fn tracked(&self) -> u64 {
        match self {
            Self::Local(l) => l.stats().keys as u64,
            Self::Redis(_) => 0,
        }
    }

    /// levee-redis's counters, on Redis.
    #[must_use]
    pub fn redis_stats(&self) -> Option<RedisStats> {
        match self {
            Self::Local(_) => None,
            Self::Redis(r) => Some(r.stats()),
        }
    }
}

/// The Redis key of a client, after the limiter's prefix.
fn redis_key(client: &Client) -> String {
    match client {
        Client::Customer(id) => format!("c:{id}"),
        Client::Addr(addr) => format!("a:{addr}"),
        Client::Unknown => "unknown".to_owned(),
    }
}

/// One client's limit in an [`EdgeLimiter`], as the keyed layer asks for it per request.
#[derive(Debug)]
pub enum EdgeKey<'a> {
    /// In this process.
    Local(<KeyedRateLimiter<Client, ShopClock> as KeyedRateLimit<Client>>::Key<'a>),
    /// On Redis.
    Redis(RedisKey<&'a RedisRateLimiter<ShopClock>, String>),
}

impl AsyncRateLimit for EdgeKey<'_> {
    async fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        match self {
            Self::Local(local) => AsyncRateLimit::check_n(local, n).await,
            Self::Redis(redis) => redis.check_n(n).await,
        }
    }

    fn try_decide_now(&self, n: u32) -> Option<Result<(), CheckNError>> {
        match self {
            Self::Local(local) => AsyncRateLimit::try_decide_now(local, n),
            Self::Redis(_) => None,
        }
    }

    fn stats(&self) -> RateStats {
        match self {
            Self::Local(local) => AsyncRateLimit::stats(local),
            Self::Redis(redis) => redis.stats(),
        }
    }

    async fn check_n_with_state(&self, n: u32) -> Result<Option<LimitState>, CheckNError> {
        match self {
            Self::Local(local) => AsyncRateLimit::check_n_with_state(local, n).await,
            Self::Redis(redis) => redis.check_n_with_state(n).await,
        }
    }

    fn try_decide_now_with_state(&self, n: u32) -> Option<Result<Option<LimitState>, CheckNError>> {
        match self {
            Self::Local(local) => AsyncRateLimit::try_decide_now_with_state(local, n),
            Self::Redis(_) => None,
        }
    }

    fn policy(&self) -> Option<LimitPolicy> {
        match self {
            Self::Local(local) => AsyncRateLimit::policy(local),
            Self::Redis(redis) => redis.policy(),
        }
    }
}

impl KeyedRateLimit<Client> for EdgeLimiter {
    type Key<'a>
        = EdgeKey<'a>
    where
        Self: 'a,
        Client: 'a;

    fn key<'a>(&'a self, key: &'a Client) -> EdgeKey<'a> {
        match self {
            Self::Local(local) => EdgeKey::Local(local.key(key)),
            Self::Redis(redis) => EdgeKey::Redis(RedisKey::new(&**redis, redis_key(key))),
        }
    }

    fn policy(&self) -> Option<LimitPolicy> {
        Some(self.quota().into())
    }
}

/// What the Redis limiters did (`/admin/status`, `/metrics`): one [`RedisLimitStats`] per
/// limit.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RedisEdgeStats {
    /// The per-client rate limit.
    pub rate: RedisLimitStats,
    /// The per-address sign-up limit.
    pub signup: RedisLimitStats,
}

/// One limit's Redis counters (levee-redis's, in part).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RedisLimitStats {
    /// Checks sent to Redis, answered or not.
    pub checks: u64,
    /// Of those, the ones that failed (an error or a timeout).
    pub failures: u64,
    /// Of the failures, the timeouts.
    pub timeouts: u64,
    /// Requests decided by the fail mode without Redis (the breaker open, or the check
    /// failed): fallbacks.
    pub fallbacks: u64,
    /// The breaker around Redis.
    pub breaker: BreakerState,
}

impl From<RedisStats> for RedisLimitStats {
    fn from(s: RedisStats) -> Self {
        Self {
            checks: s.round_trips,
            failures: s.failures,
            timeouts: s.timeouts,
            fallbacks: s.degraded,
            breaker: BreakerState::of(s.breaker),
        }
    }
}

impl RedisEdgeStats {
    /// The two limits' counters, when they run on Redis.
    #[must_use]
    pub fn of(rate: &EdgeLimiter, signup: &EdgeLimiter) -> Option<Self> {
        Some(Self { rate: rate.redis_stats()?.into(), signup: signup.redis_stats()?.into() })
    }
}

/// Why the shop did not start: its limits are on Redis, failing closed, and Redis does not
/// answer.
#[derive(Debug, thiserror::Error)]
#[error(
    "`edge.redis.url`: Redis at `{url}` did not answer within `edge.redis.timeout` \
     ({timeout:?}): {reason}; with `edge.redis.fail_mode` closed every request would be \
     refused, so the shop does not start (start Redis, correct the URL, or fail open)"
)]
pub struct RedisUnreachable {
    /// The URL, without its password.
    pub url: String,
    /// The timeout it had.
    pub timeout: Duration,
    /// What the client said.
    pub reason: String,
}

/// Asks Redis for an answer when the edge's limits are on it: without one, fail-closed is an
/// error, fail-open a warning (the shop starts degraded, and the limits move to Redis once it
/// answers).
///
/// # Errors
/// [`RedisUnreachable`] with `edge.redis.fail_mode` closed.
pub async fn check_start(
    limiter: &EdgeLimiter,
    config: &RedisEdgeConfig,
) -> Result<(), RedisUnreachable> {
    let (EdgeLimiter::Redis(redis), Some(url)) = (limiter, config.url()) else {
        return Ok(());
    };
    let Err(error) = redis.ping().await else {
        tracing::info!(url = %redacted(url), "edge limits on Redis");
        return Ok(());
    };
    let unreachable =
        RedisUnreachable { url: redacted(url), timeout: config.timeout, reason: error.to_string() };
    if matches!(config.fail_mode, levee::redis::FailMode::Closed) {
        return Err(unreachable);
    }
    tracing::warn!(
        url = %unreachable.url,
        error = %unreachable.reason,
        fail_mode = ?config.fail_mode,
        "Redis does not answer: the edge starts degraded, each client limited by this shop \
         alone at its fail-open share, until Redis answers"
    );
    Ok(())
}

/// `url` without the password it may carry (`redis://user:secret@host` →
/// `redis://user:***@host`).
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redacted("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(redacted("redis://:s3cret@h:1/"), "redis://:***@h:1/");
        assert_eq!(redacted("rediss://ann:p@ss@h/"), "rediss://ann:***@h/");
        assert_eq!(redacted("not a url"), "not a url");
    }

    #[test]
    fn clients_have_one_key_each() {
        let keys = [
            redis_key(&Client::Customer(7)),
            redis_key(&Client::Addr([10, 0, 0, 1].into())),
            redis_key(&Client::Addr("2001:db8::".parse().unwrap())),
            redis_key(&Client::Unknown),
        ];
        assert_eq!(keys, ["c:7", "a:10.0.0.1", "a:2001:db8::", "unknown"]);
    }

    #[tokio::test]
    async fn without_a_url_the_limits_stay_in_process() {
        let clock = ShopClock::manual(levee::core::ManualClock::new());
        let config = RedisEdgeConfig::default();
        let limiter =
            EdgeLimiter::build(Quota::per_second(1), "edge.rate", "rate", &config, clock).unwrap();
        assert!(matches!(limiter, EdgeLimiter::Local(_)) && limiter.fixed().is_none());
        check_start(&limiter, &config).await.unwrap();
    }

    #[tokio::test]
    async fn bad_settings_are_named_by_their_path() {
        let clock = ShopClock::manual(levee::core::ManualClock::new());
        let build = |redis: &RedisEdgeConfig| {
            EdgeLimiter::build(Quota::per_second(1), "edge.rate", "rate", redis, clock.clone())
                .unwrap_err()
                .path()
        };
        let on = |url: &str| RedisEdgeConfig { url: Some(url.to_owned()), ..Default::default() };
        assert_eq!(build(&on("http://127.0.0.1:1/")), "edge.redis.url");
        let share = RedisEdgeConfig {
            fail_mode: levee::redis::FailMode::open(2.0),
            ..on("redis://127.0.0.1:1/")
        };
        assert_eq!(build(&share), "edge.redis.fail_mode.share");
        let lease = levee::redis::LeaseSettings::new(0, Duration::from_millis(5));
        let lease = RedisEdgeConfig { lease: Some(lease), ..on("redis://127.0.0.1:1/") };
        assert_eq!(build(&lease), "edge.redis.lease.max_batch");
        let leased = RedisEdgeConfig {
            lease: Some(levee::redis::LeaseSettings::default()),
            ..on("redis://127.0.0.1:1/")
        };
        let limiter = EdgeLimiter::build(Quota::per_second(1), "edge.rate", "rate", &leased, clock)
            .expect("lease mode builds");
        assert!(limiter.fixed().is_some(), "a limit on Redis does not change live");
    }
}
