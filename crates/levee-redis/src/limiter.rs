//! The cluster-wide limiter: one script call per check, behind a breaker and a timeout.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use levee_breaker::{BreakerEvent, BreakerSettings, CircuitBreaker, Open, OpenWait};
use levee_cache::Cache;
use levee_core::{Clock, ConfigError, EventHook, FastClock, nanos};
use levee_limit::{
    CheckNError, Gcra, InsufficientCapacity, KeyedRateLimiter, LimitState, Quota, Throttled,
};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::time::Instant;

use crate::error::BuildError;
use crate::lease::{Slot, Take, next_batch};
use crate::script::{Args, GcraScript, Reply};
use crate::settings::{FailMode, LeaseSettings, MAX_SPAN};
use crate::stats::{Counters, RedisStats};

/// The error code the script answers with when a key holds something else than its state.
const BAD_STATE: &str = "LEVEEBADSTATE";

/// A GCRA rate limit per key, shared by every process that uses the same Redis and prefix.
///
/// Each check is one round trip: a Lua script (`EVALSHA`, falling back to `EVAL` when the
/// server has not cached it) reads the server's clock, decides, and writes the key's new
/// state with an expiry, atomically. The arithmetic is levee-limit's
/// [`RateLimiter`](levee_limit::RateLimiter)'s, so the same [`Quota`] admits the same cells
/// and refuses with the same [`Throttled`] (its clock readings are this limiter's
/// [`clock`](Self::clock), the retry-after the server's).
///
/// **Fails safe.** A [`CircuitBreaker`] watches the calls; a timeout bounds each one. When a
/// call fails or the breaker is open, the [`FailMode`] decides: a local limit at a share of
/// the quota, or a refusal. The breaker lets trial calls through after its open wait, so
/// recovery needs nobody. No check waits longer than the timeout.
///
/// **Lease mode** ([`RedisLimiterBuilder::lease`]): hot keys take batches of cells in one
/// round trip and spend them locally; see [`LeaseSettings`] for the precision it costs.
///
/// Build one per quota and share it (`Arc`); it is `Send + Sync`, and its futures are `Send`.
/// Checks need a tokio runtime with time enabled.
///
/// ```no_run
/// use levee_limit::Quota;
/// use levee_redis::RedisRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), levee_redis::BuildError> {
/// let limiter = RedisRateLimiter::builder(Quota::per_minute(600)).connect("redis://127.0.0.1:6379/")?;
/// match limiter.check("api-token-7").await {
///     Ok(()) => println!("admitted"),
///     Err(throttled) => println!("429, retry after {:?}", throttled.retry_after()),
/// }
/// # Ok(())
/// # }
/// ```
pub struct RedisRateLimiter<C: Clock = FastClock, Conn = ConnectionManager> {
    conn: Conn,
    script: GcraScript,
    prefix: Box<[u8]>,
    quota: Quota,
    gcra: Gcra,
    timeout: Duration,
    breaker: CircuitBreaker<C>,
    fallback: Fallback<C>,
    leases: Option<Leases<C>>,
    clock: C,
    counters: Counters,
}

/// The fail mode, built.
enum Fallback<C: Clock> {
    Open(Box<KeyedRateLimiter<String, C>>),
    Closed,
}

/// Lease mode's local state.
struct Leases<C: Clock> {
    slots: Cache<Box<str>, Arc<Slot>, C>,
    settings: LeaseSettings,
}

impl<C: Clock, Conn> fmt::Debug for RedisRateLimiter<C, Conn> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("quota", &self.quota)
            .field("timeout", &self.timeout)
            .field("breaker", &self.breaker.state())
            .field("lease", &self.leases.as_ref().map(|l| l.settings))
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A builder for `quota` with the defaults: prefix `levee:rl:`, a 50 ms timeout,
    /// [`FailMode::default`], no leases, [`default_breaker`] settings, [`FastClock`].
    pub fn builder(quota: Quota) -> RedisLimiterBuilder<FastClock> {
        RedisLimiterBuilder {
            quota,
            prefix: "levee:rl:".into(),
            timeout: Duration::from_millis(50),
            fail_mode: FailMode::default(),
            lease: None,
            breaker: None,
            breaker_hook: EventHook::none(),
            clock: FastClock,
        }
    }
}

/// The breaker settings a Redis limiter uses unless told otherwise, for a call `timeout`:
/// the last 20 calls judged once 5 were made, open at 50 % failures (a timeout is a
/// failure) or when 80 % take longer than half the timeout, open for 250 ms doubling up to
/// 10 s while Redis stays away, then 2 trial calls.
#[must_use]
pub fn default_breaker(timeout: Duration) -> BreakerSettings {
    BreakerSettings {
        window: levee_breaker::SlidingWindow::count(20),
        minimum_calls: 5,
        failure_rate_threshold: 50.0,
        slow_call_duration: Some(timeout / 2),
        slow_call_rate_threshold: 80.0,
        open_wait: OpenWait::exponential(Duration::from_millis(250), Duration::from_secs(10)),
        half_open_calls: 2,
        ..BreakerSettings::default()
    }
}

impl<C, Conn> RedisRateLimiter<C, Conn>
where
    C: Clock + Clone,
    Conn: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Admits one cell for `key`, or says when to come back.
    ///
    /// Never waits longer than the timeout: when Redis cannot decide in time, the
    /// [`FailMode`] does.
    ///
    /// # Errors
    /// [`Throttled`] when the key's quota is used up (or the fail mode refuses).
    pub async fn check(&self, key: &str) -> Result<(), Throttled> {
        let result = self.decide(key, 1).await;
        self.counters.settle(1, result).map(|_| ())
    }

    /// Admits `n` cells for `key` at once (all or none). `n == 0` succeeds without a round
    /// trip.
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit now;
    /// [`CheckNError::InsufficientCapacity`] at once, without a round trip, when `n`
    /// exceeds the burst.
    pub async fn check_n(&self, key: &str, n: u32) -> Result<(), CheckNError> {
        self.check_n_with_state(key, n).await.map(|_| ())
    }

    /// As [`check_n`](Self::check_n), with `key`'s state after an admission when this
    /// limiter knows it: what rate-limit headers report (see [`RedisKey`](crate::RedisKey)).
    pub(crate) async fn check_n_with_state(
        &self,
        key: &str,
        n: u32,
    ) -> Result<Option<LimitState>, CheckNError> {
        if n == 0 {
            return Ok(None);
        }
        let burst = self.gcra.burst();
        if n > burst {
            self.counters.rejected.incr();
            return Err(InsufficientCapacity { requested: n, burst }.into());
        }
        let result = self.decide(key, n).await;
        self.counters.settle(n, result).map_err(CheckNError::from)
    }

    /// Decides `1 <= n <= burst` cells for `key`; the key's state after an admission, when
    /// known: from the script's reply (Redis decided), or the local share's (fail open).
    /// Lease mode spends cells locally and knows no state.
    async fn decide(&self, key: &str, n: u32) -> Result<Option<LimitState>, Throttled> {
        let deadline = Instant::now() + self.timeout;
        match &self.leases {
            None => match self.remote(key, n, n, deadline).await {
                Ok(reply) => self.settle_reply(reply, n),
                Err(open) => self.degrade(key, n, open),
            },
            Some(leases) => self.decide_leased(leases, key, n, deadline).await.map(|()| None),
        }
    }

    /// A script reply for a request of `n` cells, when no lease is kept. When granted, the
    /// reply's value is the key's new `tat - now` on the server, which is all the state
    /// needs: the same function as the local GCRA's.
    fn settle_reply(&self, reply: Reply, n: u32) -> Result<Option<LimitState>, Throttled> {
        if reply.granted >= n {
            Ok(Some(self.gcra.state(reply.value, 0)))
        } else {
            let now = self.clock.now();
            Err(Throttled::new(now, now.saturating_add(reply.value)))
        }
    }

    /// Lease mode: spend a leased cell, or lease a batch (one task per key at a time).
    async fn decide_leased(
        &self,
        leases: &Leases<C>,
        key: &str,
        n: u32,
        deadline: Instant,
    ) -> Result<(), Throttled> {
        let slot = match leases.slots.get(key) {
            Some(slot) => slot,
            None => leases.slots.get_with(key.into(), || Arc::new(Slot::new())),
        };
        if let Some(decided) = self.decide_locally(&slot, n) {
            return decided;
        }
        let Ok(mut batch) = tokio::time::timeout_at(deadline, slot.refill.lock()).await else {
            // Other tasks of this key held the refill lock for the whole timeout.
            self.counters.timeouts.incr();
            return self.degrade(key, n, None).map(|_| ());
        };
        // Another task may have refilled (or been refused) while this one waited.
        if let Some(decided) = self.decide_locally(&slot, n) {
            return decided;
        }
        let found = slot.pool.take(n, self.clock.now());
        if let Take::Short { expired, .. } = found
            && expired > 0
        {
            self.counters.expired_cells.add(u64::from(expired));
            slot.pool.fill(0, 0);
        }
        *batch = next_batch(*batch, found, leases.settings.max_batch);
        let want = (*batch).max(n);
        match self.remote(key, n, want, deadline).await {
            Ok(reply) if reply.granted >= n => {
                self.counters.leased_cells.add(u64::from(reply.granted));
                let now = self.clock.now();
                slot.pool.fill(reply.granted - n, now.saturating_add(nanos(leases.settings.ttl)));
                Ok(())
            }
            Ok(reply) => {
                let now = self.clock.now();
                let until = now.saturating_add(reply.value);
                slot.refuse_until(until);
                Err(Throttled::new(now, until))
            }
            Err(open) => self.degrade(key, n, open).map(|_| ()),
        }
    }

    /// A decision without Redis, when the slot knows one: a known refusal, or leased cells.
    fn decide_locally(&self, slot: &Slot, n: u32) -> Option<Result<(), Throttled>> {
        let now = self.clock.now();
        if let Some(until) = slot.refused_at(now) {
            self.counters.cached_refusals.incr();
            return Some(Err(Throttled::new(now, until)));
        }
        if slot.pool.take(n, now) == Take::Taken {
            self.counters.lease_hits.incr();
            return Some(Ok(()));
        }
        None
    }

    /// Asks the script for `n_min..=n_max` cells of `key` through the breaker, by
    /// `deadline`. `Err` when Redis did not decide: the breaker's refusal if it refused.
    async fn remote(
        &self,
        key: &str,
        n_min: u32,
        n_max: u32,
        deadline: Instant,
    ) -> Result<Reply, Option<Open>> {
        let permit = self.breaker.try_acquire().map_err(Some)?;
        self.counters.round_trips.incr();
        let full_key = [&self.prefix[..], key.as_bytes()].concat();
        let args = Args {
            t: nanos(self.gcra.emission_interval()),
            tau: nanos(self.gcra.tolerance()),
            n_min,
            n_max,
        };
        let call = async {
            let mut conn = self.conn.clone();
            match self.script.evalsha(&full_key, args).query_async::<Value>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    self.script.eval(&full_key, args).query_async::<Value>(&mut conn).await
                }
                other => other,
            }
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(value)) => match Reply::decode(&value) {
                Ok(reply) => {
                    permit.success();
                    return Ok(reply);
                }
                Err(e) => {
                    // The server answered, so it is up; what it holds for this key is not
                    // ours. Not a failure of Redis: the breaker ignores it.
                    tracing::warn!(key, error = %e, "levee-redis: malformed reply");
                    permit.ignore();
                }
            },
            Ok(Err(e)) if is_bad_key(&e) => {
                tracing::warn!(key, error = %e, "levee-redis: the key holds other data");
                permit.ignore();
            }
            Ok(Err(e)) => {
                tracing::debug!(key, error = %e, "levee-redis: call failed");
                permit.failure();
            }
            Err(_) => {
                tracing::debug!(key, timeout = ?self.timeout, "levee-redis: call timed out");
                self.counters.timeouts.incr();
                permit.failure();
            }
        }
        self.counters.failures.incr();
        Err(None)
    }

    /// Decides by the fail mode, with the local share's state after an admission; `open`
    /// is the breaker's refusal, if it refused.
    fn degrade(
        &self,
        key: &str,
        n: u32,
        open: Option<Open>,
    ) -> Result<Option<LimitState>, Throttled> {
        self.counters.degraded.incr();
        match &self.fallback {
            Fallback::Open(local) => match local.check_n(key, n) {
                Ok(()) => Ok(Some(local.state(key))),
                Err(CheckNError::Throttled(t)) => Err(t),
                // n fits the quota's burst but not the local share of it.
                Err(CheckNError::InsufficientCapacity(_)) => Err(self.closed_refusal(open)),
            },
            Fallback::Closed => Err(self.closed_refusal(open)),
        }
    }

    /// Sends Redis a `PING` and waits for its answer, at most the limiter's timeout; outside
    /// the breaker, and changing no counter. For a service's start and readiness checks:
    /// checks never need it (the fail mode decides while Redis is away).
    ///
    /// # Errors
    /// The client's error when Redis refused, failed or did not answer in time (a timeout
    /// is an I/O error of kind `TimedOut`).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, ping.query_async::<Value>(&mut conn)).await {
            Ok(answer) => answer.map(drop),
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer to PING within {:?}", self.timeout),
            ))),
        }
    }

    /// Fail-closed's refusal: until the breaker lets a trial through, or one emission
    /// interval when it has not opened.
    fn closed_refusal(&self, open: Option<Open>) -> Throttled {
        let now = self.clock.now();
        let wait = open
            .and_then(|o| o.retry_after())
            .unwrap_or_else(|| self.gcra.emission_interval())
            .max(Duration::from_nanos(1));
        Throttled::new(now, now.saturating_add(nanos(wait)))
    }
}

/// Errors that say the server is healthy but this key holds something else.
fn is_bad_key(e: &RedisError) -> bool {
    matches!(e.code(), Some(BAD_STATE | "WRONGTYPE"))
}

impl<C: Clock, Conn> RedisRateLimiter<C, Conn> {
    /// The quota every process enforces together.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The prefix put before every key in Redis.
    #[must_use]
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The breaker around Redis (its metrics; `force_open` to take Redis out by hand).
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker<C> {
        &self.breaker
    }

    /// The clock that refusals' readings are on.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> RedisStats {
        self.counters.snapshot(self.breaker.state())
    }
}

/// Builds a [`RedisRateLimiter`].
///
/// ```no_run
/// use std::time::Duration;
/// use levee_breaker::BreakerSettings;
/// use levee_limit::Quota;
/// use levee_redis::{FailMode, RedisRateLimiter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), levee_redis::BuildError> {
/// let limiter = RedisRateLimiter::builder(Quota::per_second(50).with_burst(10))
///     .prefix("rl:login:")
///     .timeout(Duration::from_millis(25))
///     .fail_mode(FailMode::open(0.5))
///     .breaker(BreakerSettings::default())
///     .connect("redis://127.0.0.1:6379/")?;
/// limiter.check("user-42").await.ok();
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct RedisLimiterBuilder<C> {
    quota: Quota,
    prefix: String,
    timeout: Duration,
    fail_mode: FailMode,
    lease: Option<LeaseSettings>,
    breaker: Option<BreakerSettings>,
    breaker_hook: EventHook<BreakerEvent>,
    clock: C,
}

impl<C> fmt::Debug for RedisLimiterBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiterBuilder")
            .field("quota", &self.quota)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("fail_mode", &self.fail_mode)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<C: Clock + Clone> RedisLimiterBuilder<C> {
    /// Puts `prefix` before every key in Redis (default `levee:rl:`). Limiters that share a
    /// prefix and a key share a limit, so give each quota its own prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bounds every check's wait for Redis (default 50 ms); after it, the fail mode decides.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to decide when Redis cannot (default: [`FailMode::default`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Lease mode for hot keys.
    pub fn lease(mut self, settings: LeaseSettings) -> Self {
        self.lease = Some(settings);
        self
    }

    /// The breaker around Redis (default: [`default_breaker`] for the timeout).
    pub fn breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = Some(settings);
        self
    }

    /// Reports the breaker's transitions (Redis lost, Redis back) to `hook`.
    pub fn breaker_hook(mut self, hook: EventHook<BreakerEvent>) -> Self {
        self.breaker_hook = hook;
        self
    }

    /// Reads time from `clock` (refusals, leases, the breaker, the local fallback).
    pub fn clock<C2: Clock + Clone>(self, clock: C2) -> RedisLimiterBuilder<C2> {
        RedisLimiterBuilder {
            quota: self.quota,
            prefix: self.prefix,
            timeout: self.timeout,
            fail_mode: self.fail_mode,
            lease: self.lease,
            breaker: self.breaker,
            breaker_hook: self.breaker_hook,
            clock,
        }
    }

    /// Builds the limiter on `conn`: any async Redis connection that is cheap to clone
    /// (a [`ConnectionManager`], a `MultiplexedConnection`, a cluster connection).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting: the quota (also when its burst
    /// spans more than [`MAX_SPAN`]), the timeout, the fail mode, the lease or the breaker.
    pub fn build<Conn>(self, conn: Conn) -> Result<RedisRateLimiter<C, Conn>, ConfigError>
    where
        Conn: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let gcra = self.quota.gcra()?;
        if gcra.refill_time() > MAX_SPAN {
            return Err(ConfigError::new(
                "quota.burst",
                "burst x emission interval must be at most 2^52 ns (52 days) on Redis",
            ));
        }
        ConfigError::require_positive("timeout", self.timeout)?;
        self.fail_mode.validate()?;
        let fallback = match self.fail_mode {
            FailMode::Open { share } => Fallback::Open(Box::new(
                KeyedRateLimiter::builder(FailMode::local_quota(share, self.quota))
                    .clock(self.clock.clone())
                    .build()?,
            )),
            FailMode::Closed => Fallback::Closed,
        };
        let leases = match self.lease {
            None => None,
            Some(settings) => {
                settings.validate()?;
                let slots = Cache::builder()
                    .max_capacity(settings.max_keys)
                    .time_to_idle((settings.ttl * 4).max(Duration::from_secs(1)))
                    .clock(self.clock.clone())
                    .build()?;
                Some(Leases { slots, settings })
            }
        };
        let breaker = CircuitBreaker::builder()
            .settings(self.breaker.unwrap_or_else(|| default_breaker(self.timeout)))
            .name(format!("redis:{}", self.prefix))
            .hook(self.breaker_hook)
            .clock(self.clock.clone())
            .build()?;
        Ok(RedisRateLimiter {
            conn,
            script: GcraScript::new(),
            prefix: self.prefix.into_bytes().into_boxed_slice(),
            quota: self.quota,
            gcra,
            timeout: self.timeout,
            breaker,
            fallback,
            leases,
            clock: self.clock,
            counters: Counters::default(),
        })
    }

    /// Builds the limiter on a [`ConnectionManager`] for `url` (`redis://127.0.0.1:6379/0`),
    /// connecting lazily: the limiter is ready at once, and works by its fail mode until
    /// Redis answers. The connection reconnects by itself; connecting and each response
    /// are bounded by the timeout.
    ///
    /// # Errors
    /// [`BuildError::Config`] as [`build`](Self::build); [`BuildError::Redis`] for a bad
    /// URL; [`BuildError::NoRuntime`] outside a tokio runtime.
    pub fn connect(self, url: &str) -> Result<RedisRateLimiter<C, ConnectionManager>, BuildError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BuildError::NoRuntime);
        }
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // The breaker paces reconnection: one attempt per call that gets through.
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(self.build(conn)?)
    }
}
