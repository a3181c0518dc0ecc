//! Building a client, from code or from settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use levee_breaker::{BreakerEvent, BreakerSettings, OpenWait, SlidingWindow};
use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener};
use levee_policy::{
    Backoff, Hedge, HedgeSettings, Layered, Leaf, Pipeline, Retry, RetryBudget, RetryBudgetBuilder,
    RetrySettings,
};
use tokio::sync::watch;

use crate::balance::{EndpointSet, StateFactory};
use crate::call::{CallDeadline, HedgeReads, Retriable};
use crate::client::{Classifier, Client, Shared};
use crate::ewma::EwmaSettings;
use crate::http_transport::{BuildError, DEFAULT_MAX_RESPONSE_BYTES, HttpTransportBuilder};
use crate::tls::TlsConfig;
use crate::{Endpoint, HttpTransport, ResponseClass, Transport};

/// The transport a builder makes when none is given: [`HttpTransport`], configured through
/// the builder's [`tls`](ClientBuilder::tls), [`connect_timeout`](ClientBuilder::connect_timeout)
/// and [`max_response_bytes`](ClientBuilder::max_response_bytes).
///
/// ```
/// use std::time::Duration;
/// use levee_client::{Client, ClientBuilder, DefaultHttp, HttpTransport};
///
/// // A builder given no `.transport(..)` makes hyper's, with the builder's connection settings.
/// let builder: ClientBuilder<DefaultHttp> = Client::builder()
///     .endpoints(["http://127.0.0.1:8080".parse().unwrap()])
///     .connect_timeout(Duration::from_millis(250))
///     .max_response_bytes(1 << 20);
/// let client: Client<HttpTransport> = builder.build().unwrap();
/// assert_eq!(client.stats().len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct DefaultHttp {
    http: HttpTransportBuilder,
    tls_files: Option<TlsFiles>,
}

/// The breaker each endpoint gets unless told otherwise: judged on its last 20 calls (after
/// 5), ejected at 50 % failures, for 1 s doubling to 30 s while it keeps failing its
/// trials, two trial calls to come back.
#[must_use]
pub fn default_endpoint_breaker() -> BreakerSettings {
    BreakerSettings {
        window: SlidingWindow::count(20),
        minimum_calls: 5,
        failure_rate_threshold: 50.0,
        open_wait: OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(30))
            .jitter(0.1),
        half_open_calls: 2,
        ..BreakerSettings::default()
    }
}

/// Builds a [`Client`]. Every setting has a default; [`build`](Self::build) checks them.
///
/// ```
/// use std::time::Duration;
/// use levee_client::{Client, Endpoint};
/// use levee_policy::{Hedge, HedgeDelay};
///
/// let client = Client::builder()
///     .endpoints([
///         "http://10.0.0.1:8080".parse().unwrap(),
///         "http://10.0.0.2:8080".parse().unwrap(),
///         Endpoint::new("http://10.0.9.1:8080").unwrap().standby(),
///     ])
///     .timeout(Duration::from_secs(2))
///     .attempt_timeout(Duration::from_millis(800))
///     .max_attempts(3)
///     .hedge(Hedge::new(1, HedgeDelay::p95(Duration::from_millis(50))).unwrap())
///     .build()
///     .unwrap();
/// assert_eq!(client.stats().len(), 3);
///
/// let err = Client::builder().timeout(Duration::ZERO).build().unwrap_err();
/// assert!(err.to_string().contains("timeout"));
/// ```
#[must_use]
pub struct ClientBuilder<T = DefaultHttp, C = FastClock> {
    transport: T,
    clock: C,
    endpoints: Vec<Endpoint>,
    watch: Option<watch::Receiver<Vec<Endpoint>>>,
    timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<Arc<RetryBudget>>,
    budget_settings: RetryBudgetBuilder,
    hedge: Option<Hedge>,
    breaker: BreakerSettings,
    breaker_hook: EventHook<BreakerEvent>,
    ewma: EwmaSettings,
    classify: Classifier,
    propagate_deadline: bool,
    error: Option<ConfigError>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// The defaults: plain HTTP, a 10 s timeout, 3 attempts with exponential backoff from
    /// 10 ms within a budget of 20 % of requests plus 10 per second, no hedging,
    /// [`default_endpoint_breaker`], Linkerd's peak-EWMA defaults (30 ms, 10 s), deadlines
    /// propagated.
    pub fn new() -> Self {
        Self {
            transport: DefaultHttp::default(),
            clock: FastClock,
            endpoints: Vec::new(),
            watch: None,
            timeout: Some(Duration::from_secs(10)),
            attempt_timeout: None,
            max_attempts: 3,
            backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1))
                .with_jitter(0.2),
            budget: None,
            budget_settings: RetryBudgetBuilder::default(),
            hedge: None,
            breaker: default_endpoint_breaker(),
            breaker_hook: EventHook::none(),
            ewma: EwmaSettings::default(),
            classify: Arc::new(crate::default_classifier),
            propagate_deadline: true,
            error: None,
        }
    }
}

impl<C> ClientBuilder<DefaultHttp, C> {
    /// Mutual TLS for `https://` endpoints.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.transport.http = self.transport.http.tls(tls);
        self
    }

    /// The TCP connect timeout (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.transport.http = self.transport.http.connect_timeout(timeout);
        self
    }

    /// The largest response body read (default 16 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.transport.http = self.transport.http.max_response_bytes(bytes);
        self
    }

    /// Everything in `settings`: endpoints, timeouts, retry, hedge, breaker, latency
    /// estimate, transport and TLS files (read by [`build`](Self::build)).
    pub fn settings(mut self, settings: &ClientSettings) -> Self {
        self.transport.http = self
            .transport
            .http
            .connect_timeout(settings.connect_timeout)
            .max_response_bytes(settings.max_response_bytes);
        self.transport.tls_files = settings.tls.clone();
        self.endpoints.clone_from(&settings.endpoints);
        self.timeout = settings.timeout;
        self.attempt_timeout = settings.attempt_timeout;
        self.propagate_deadline = settings.propagate_deadline;
        self.max_attempts = settings.retry.max_attempts;
        self.backoff = settings.retry.backoff;
        if let Some(budget) = settings.retry.budget {
            self.budget_settings = budget;
        }
        if let Some(hedge) = &settings.hedge {
            match hedge.build() {
                Ok(h) => self.hedge = Some(h),
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
        }
        self.breaker = settings.breaker.clone();
        self.ewma =
            EwmaSettings { default_rtt: settings.default_rtt, decay: settings.latency_decay };
        self
    }

    /// Builds the client on hyper.
    ///
    /// # Errors
    /// The first invalid setting, or TLS files that cannot be read or used.
    pub fn build(self) -> Result<Client<HttpTransport, C>, BuildError>
    where
        C: Clock + Clone,
    {
        let DefaultHttp { mut http, tls_files } = self.transport.clone();
        if let Some(files) = &tls_files {
            http = http.tls(files.load()?);
        }
        let transport = http.build()?;
        Ok(self.with_transport(transport).finish()?)
    }
}

impl<T, C> ClientBuilder<T, C> {
    /// The endpoints (a fixed list; see [`watch`](Self::watch) for one that changes).
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        self.endpoints = endpoints.into_iter().collect();
        self
    }

    /// Follows `endpoints`: each list sent on the channel replaces the set (endpoints kept
    /// keep their breaker and estimate). The list in the channel now is the first set.
    pub fn watch(mut self, endpoints: watch::Receiver<Vec<Endpoint>>) -> Self {
        self.watch = Some(endpoints);
        self
    }

    /// Sends attempts through `transport` instead of hyper (in-process endpoints in tests
    /// and benchmarks, another protocol stack).
    pub fn transport<T2: Transport>(self, transport: T2) -> ClientBuilder<T2, C> {
        self.with_transport(transport)
    }

    fn with_transport<T2>(self, transport: T2) -> ClientBuilder<T2, C> {
        ClientBuilder {
            transport,
            clock: self.clock,
            endpoints: self.endpoints,
            watch: self.watch,
            timeout: self.timeout,
            attempt_timeout: self.attempt_timeout,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            budget_settings: self.budget_settings,
            hedge: self.hedge,
            breaker: self.breaker,
            breaker_hook: self.breaker_hook,
            ewma: self.ewma,
            classify: self.classify,
            propagate_deadline: self.propagate_deadline,
            error: self.error,
        }
    }

    /// Reads time from, and sleeps on, `clock` (a `ManualClock` in tests): deadlines,
    /// backoff, hedge delays, breakers, latency estimates and the retry budget.
    pub fn clock<C2: Clock + Clone>(self, clock: C2) -> ClientBuilder<T, C2> {
        ClientBuilder {
            transport: self.transport,
            clock,
            endpoints: self.endpoints,
            watch: self.watch,
            timeout: self.timeout,
            attempt_timeout: self.attempt_timeout,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget,
            budget_settings: self.budget_settings,
            hedge: self.hedge,
            breaker: self.breaker,
            breaker_hook: self.breaker_hook,
            ewma: self.ewma,
            classify: self.classify,
            propagate_deadline: self.propagate_deadline,
            error: self.error,
        }
    }

    /// The longest a call may take, retries included (default 10 s); a smaller deadline
    /// given with the request wins.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No timeout of the client's own (a deadline given with the request still applies).
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// The longest one attempt may take (default: none beyond the call's deadline). An
    /// attempt that runs out is a failure of its endpoint and is retried if idempotent.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Attempts in all per call, the first included (default 3; 1 never retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delay before each retry (default exponential from 10 ms to 1 s, 20 % jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Draws retries from `budget` (share one budget between clients of one service; give
    /// it the client's clock).
    pub fn retry_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The settings of the client's own retry budget (default: 20 % of requests over 10 s,
    /// plus 10 per second).
    pub fn retry_budget_settings(mut self, settings: RetryBudgetBuilder) -> Self {
        self.budget_settings = settings;
        self
    }

    /// Hedges reads (GET, HEAD, OPTIONS) with `hedge`: a second endpoint is asked when the
    /// first is slow; the first answer wins.
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.hedge = Some(hedge);
        self
    }

    /// The breaker settings of every endpoint (default [`default_endpoint_breaker`]).
    pub fn breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = settings;
        self
    }

    /// Tells `listener` about every endpoint breaker's transitions (named by endpoint).
    pub fn breaker_listener(mut self, listener: impl Listener<BreakerEvent> + 'static) -> Self {
        self.breaker_hook = self.breaker_hook.with(listener);
        self
    }

    /// The peak-EWMA estimate: `default_rtt` before an endpoint's first answer (default
    /// 30 ms), `decay` the time in which an old sample loses all but 1/e of its weight
    /// (default 10 s, at most an hour).
    pub fn latency_estimate(mut self, default_rtt: Duration, decay: Duration) -> Self {
        self.ewma = EwmaSettings { default_rtt, decay };
        self
    }

    /// Classifies response statuses (default [`default_classifier`](crate::default_classifier)).
    pub fn classify(
        mut self,
        classify: impl Fn(http::StatusCode) -> ResponseClass + Send + Sync + 'static,
    ) -> Self {
        self.classify = Arc::new(classify);
        self
    }

    /// Whether to send the remaining time in the `levee-timeout` header (default true).
    pub fn propagate_deadline(mut self, yes: bool) -> Self {
        self.propagate_deadline = yes;
        self
    }
}

impl<T: Transport, C: Clock + Clone> ClientBuilder<T, C> {
    /// Builds the client on the given transport.
    ///
    /// # Errors
    /// The first invalid setting, named.
    pub fn build(self) -> Result<Client<T, C>, ConfigError> {
        self.finish()
    }
}

impl<T: Transport, C: Clock + Clone> ClientBuilder<T, C> {
    fn finish(self) -> Result<Client<T, C>, ConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some(t) = self.timeout {
            ConfigError::require_positive("timeout", t)?;
        }
        if let Some(t) = self.attempt_timeout {
            ConfigError::require_positive("attempt_timeout", t)?;
        }
        self.breaker.validate()?;
        self.ewma.validate()?;
        let budget = match self.budget {
            Some(budget) => budget,
            None => Arc::new(self.budget_settings.build_with_clock(self.clock.clone())?),
        };
        let retry = Retry::builder()
            .max_attempts(self.max_attempts)
            .backoff(self.backoff)
            .budget(Arc::clone(&budget))
            .with_predicate(Retriable)
            .build()?;
        let stack = Layered {
            policy: CallDeadline,
            inner: Layered {
                policy: retry,
                inner: Layered { policy: HedgeReads(self.hedge), inner: Leaf },
            },
        };
        let factory = StateFactory {
            clock: self.clock.clone(),
            breaker: self.breaker,
            breaker_hook: self.breaker_hook,
            ewma: self.ewma,
        };
        let endpoints = EndpointSet::new(factory, &self.endpoints, self.watch);
        Ok(Client {
            shared: Arc::new(Shared {
                transport: self.transport,
                pipeline: Pipeline::from_stack(stack).with_clock(self.clock.clone()),
                clock: self.clock,
                endpoints,
                budget,
                timeout: self.timeout,
                attempt_timeout: self.attempt_timeout,
                classify: self.classify,
                propagate_deadline: self.propagate_deadline,
            }),
        })
    }
}

/// Where a service's TLS identity is on disk.
///
/// ```no_run
/// use levee_client::TlsFiles;
///
/// let files = TlsFiles {
///     ca: "certs/ca.pem".into(),
///     certificate: "certs/orders.pem".into(),
///     key: "certs/orders.key".into(),
///     server_name: None,
/// };
/// let tls = files.load()?; // reads and checks the PEM files
/// # let _ = tls;
/// # Ok::<(), levee_client::tls::TlsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct TlsFiles {
    /// The CA certificate(s), PEM.
    pub ca: PathBuf,
    /// This service's certificate chain, PEM.
    pub certificate: PathBuf,
    /// This service's private key, PEM.
    pub key: PathBuf,
    /// The name to verify servers against instead of the URI's host.
    #[cfg_attr(feature = "serde", serde(default))]
    pub server_name: Option<String>,
}

impl TlsFiles {
    /// Reads the files.
    ///
    /// # Errors
    /// As [`TlsConfig::from_pem_files`].
    pub fn load(&self) -> Result<TlsConfig, crate::tls::TlsError> {
        let tls = TlsConfig::from_pem_files(&self.ca, &self.certificate, &self.key)?;
        Ok(match &self.server_name {
            Some(name) => tls.server_name(name.clone()),
            None => tls,
        })
    }
}

/// A client as data (with the `serde` feature, read from TOML or JSON; durations as
/// `"250ms"`, `"2s"`).
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use levee_client::{Client, ClientSettings};
///
/// let settings: ClientSettings = toml::from_str(r#"
///     endpoints = ["http://10.0.0.1:8080", { url = "http://10.0.9.1:8080", priority = 1 }]
///     timeout = "2s"
///     attempt_timeout = "500ms"
///     retry = { max_attempts = 2, backoff = { type = "constant", delay = "20ms" } }
///     hedge = { max_hedges = 1, delay = { type = "fixed", delay = "50ms" } }
///     breaker = { minimum_calls = 10, failure_rate_threshold = 25.0 }
/// "#).unwrap();
/// let client = Client::builder().settings(&settings).build().unwrap();
/// assert_eq!(client.stats()[1].endpoint.priority(), 1);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ClientSettings {
    /// The endpoints: `"http://host:port"` or `{ url, priority, healthy }`.
    pub endpoints: Vec<Endpoint>,
    /// The longest a call may take, retries included (default 10 s).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub timeout: Option<Duration>,
    /// The longest one attempt may take.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub attempt_timeout: Option<Duration>,
    /// Retries (levee-policy's retry settings; the budget defaults to 20 % + 10/s).
    pub retry: RetrySettings,
    /// Hedging of reads.
    pub hedge: Option<HedgeSettings>,
    /// Each endpoint's breaker.
    pub breaker: BreakerSettings,
    /// The peak-EWMA estimate before an endpoint's first answer.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub default_rtt: Duration,
    /// The peak-EWMA decay time.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub latency_decay: Duration,
    /// Whether to send the remaining time in `levee-timeout`.
    pub propagate_deadline: bool,
    /// The TCP connect timeout.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub connect_timeout: Duration,
    /// The largest response body read.
    pub max_response_bytes: usize,
    /// Mutual TLS, from files.
    pub tls: Option<TlsFiles>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        let ewma = EwmaSettings::default();
        Self {
            endpoints: Vec::new(),
            timeout: Some(Duration::from_secs(10)),
            attempt_timeout: None,
            retry: RetrySettings {
                max_attempts: 3,
                backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1))
                    .with_jitter(0.2),
                budget: None,
                max_retry_after: None,
            },
            hedge: None,
            breaker: default_endpoint_breaker(),
            default_rtt: ewma.default_rtt,
            latency_decay: ewma.decay,
            propagate_deadline: true,
            connect_timeout: Duration::from_secs(1),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            tls: None,
        }
    }
}
