//! The broker: a connection, the topics it has looked up, and publishing.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv, stream};
use async_nats::{Client, HeaderMap, HeaderName, Subject};
use bytes::Bytes;
use futures::TryStreamExt;
use levee_core::ConfigError;
use levee_queue::broker::{
    BrokerError, Message, Overflow, Publish, Schedule, SubjectFilter, SubscriptionConfig,
    TopicConfig,
};
use serde::Deserialize;

use crate::codec::{Codec, Json};
use crate::config::{NatsConfig, Storage};
use crate::error::{nats, timed_out};
use crate::names::{TopicNames, key_token};

/// Header carrying the levee sequence number of a replayed message (its original's).
pub(crate) const H_SEQ: &str = "Levee-Seq";
/// Header carrying the message id of a replayed message (JetStream's own `Nats-Msg-Id` there
/// is the replay's, so that a retried replay is deduplicated).
pub(crate) const H_MSG_ID: &str = "Levee-Msg-Id";
/// Header carrying the subscription settings in a durable consumer's metadata.
pub(crate) const META_CONFIG: &str = "levee-config";

/// Nanoseconds since the Unix epoch: the NATS broker's clock (JetStream's timestamps are
/// wall-clock times, and several processes share them).
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// levee's [`Broker`](levee_queue::broker::Broker) on NATS JetStream.
///
/// Cheap to clone (one connection, shared). See the [crate docs](crate) for how topics,
/// subscriptions, dead letters, delays and ordering keys map onto JetStream.
///
/// ```no_run
/// use levee_nats::NatsBroker;
/// use levee_queue::broker::{Broker, Message, SubscriptionConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), levee_queue::broker::BrokerError> {
/// let broker = NatsBroker::<String>::builder("nats://127.0.0.1:4222").connect().await?;
/// broker.subscribe("orders", SubscriptionConfig::new("payment")).await?;
/// broker.publish("orders", Message::new("order 7".to_string())).await?;
/// # Ok(())
/// # }
/// ```
pub struct NatsBroker<T, C = Json> {
    pub(crate) shared: Arc<Shared<C>>,
    _payload: PhantomData<fn() -> T>,
}

impl<T, C> Clone for NatsBroker<T, C> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared), _payload: PhantomData }
    }
}

impl<T, C> std::fmt::Debug for NatsBroker<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("url", &self.shared.config.url)
            .field("prefix", &self.shared.config.prefix)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared<C> {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    pub(crate) codec: C,
    pub(crate) config: NatsConfig,
    pub(crate) closed: AtomicBool,
    topics: Mutex<HashMap<String, Arc<TopicHandle>>>,
}

/// One topic's streams and bucket, and what this broker knows of its subscriptions.
pub(crate) struct TopicHandle {
    pub(crate) names: TopicNames,
    pub(crate) stream: stream::Stream,
    pub(crate) dlq: stream::Stream,
    pub(crate) state: kv::Store,
    routes: Mutex<Vec<Route>>,
}

/// A subscription as publishing needs to know it.
#[derive(Debug, Clone)]
struct Route {
    name: String,
    filter: Option<SubjectFilter>,
    overflow: Overflow,
    max_backlog: usize,
}

impl Route {
    fn from_config(config: &SubscriptionConfig) -> Self {
        Self {
            name: config.name.clone(),
            filter: config.filter.as_deref().and_then(|f| SubjectFilter::new(f).ok()),
            overflow: config.overflow,
            max_backlog: config.max_backlog,
        }
    }
}

impl TopicHandle {
    pub(crate) fn add_route(&self, config: &SubscriptionConfig) {
        let mut routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        routes.retain(|r| r.name != config.name);
        routes.push(Route::from_config(config));
    }

    fn routed(&self, subject: &str) -> usize {
        let routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        routes.iter().filter(|r| r.filter.as_ref().is_none_or(|f| f.matches(subject))).count()
    }

    /// The subscription whose backlog bounds the topic, and its policy.
    fn bound(&self) -> Option<Route> {
        let routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        routes.iter().min_by_key(|r| r.max_backlog).cloned()
    }
}

/// Builds a [`NatsBroker`].
///
/// ```no_run
/// use std::time::Duration;
/// use levee_nats::{NatsBroker, Storage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), levee_queue::broker::BrokerError> {
/// let broker = NatsBroker::<String>::builder("nats://127.0.0.1:4222")
///     .prefix("shop")
///     .connect_timeout(Duration::from_secs(2))
///     .storage(Storage::File)
///     .replicas(1)
///     .connect()
///     .await?;
/// # let _ = broker;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct NatsBrokerBuilder<T, C = Json> {
    config: NatsConfig,
    codec: C,
    _payload: PhantomData<fn() -> T>,
}

/// The former name of [`NatsBrokerBuilder`].
///
/// ```no_run
/// #[allow(deprecated)]
/// use levee_nats::{Builder, NatsBroker};
///
/// # async fn example() -> Result<(), levee_queue::broker::BrokerError> {
/// #[allow(deprecated)]
/// let builder: Builder<String> = NatsBroker::<String>::builder("nats://127.0.0.1:4222"); // prefer NatsBrokerBuilder
/// let broker = builder.prefix("shop").connect().await?;
/// assert_eq!(broker.config().prefix, "shop");
/// # Ok(())
/// # }
/// ```
#[deprecated(
    since = "0.1.0",
    note = "renamed to `NatsBrokerBuilder` (levee's `XBuilder` convention)"
)]
pub type Builder<T, C = Json> = NatsBrokerBuilder<T, C>;

impl<T, C: Codec<T>> NatsBrokerBuilder<T, C> {
    /// Sets [`NatsConfig::prefix`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// Sets [`NatsConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Sets [`NatsConfig::request_timeout`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Sets [`NatsConfig::full_wait`].
    pub fn full_wait(mut self, wait: Duration) -> Self {
        self.config.full_wait = wait;
        self
    }

    /// Sets [`NatsConfig::storage`].
    pub fn storage(mut self, storage: Storage) -> Self {
        self.config.storage = storage;
        self
    }

    /// Sets [`NatsConfig::replicas`].
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.config.replicas = replicas;
        self
    }

    /// Sets [`NatsConfig::max_ack_pending`].
    pub fn max_ack_pending(mut self, n: i64) -> Self {
        self.config.max_ack_pending = n;
        self
    }

    /// Sets [`NatsConfig::confirm_acks`].
    pub fn confirm_acks(mut self, confirm: bool) -> Self {
        self.config.confirm_acks = confirm;
        self
    }

    /// Sets [`NatsConfig::idle_subscription_expiry`].
    pub fn idle_subscription_expiry(mut self, expiry: Duration) -> Self {
        self.config.idle_subscription_expiry = Some(expiry);
        self
    }

    /// Replaces every setting.
    pub fn config(mut self, config: NatsConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses `codec` for payloads instead of JSON.
    pub fn codec<C2: Codec<T>>(self, codec: C2) -> NatsBrokerBuilder<T, C2> {
        NatsBrokerBuilder { config: self.config, codec, _payload: PhantomData }
    }

    /// Connects. The client reconnects by itself after a lost connection (operations in the
    /// meantime fail with `Unavailable` after `request_timeout`).
    ///
    /// # Errors
    /// [`BrokerError::Config`] for an invalid setting; [`BrokerError::Unavailable`] when the
    /// server cannot be reached within `connect_timeout`.
    pub async fn connect(self) -> Result<NatsBroker<T, C>, BrokerError> {
        self.config.validate()?;
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(self.config.connect_timeout)
            .request_timeout(Some(self.config.request_timeout));
        let connect = options.connect(self.config.url.as_str());
        // The client's own connection timeout covers one attempt; bound the whole call too.
        let client = match tokio::time::timeout(self.config.connect_timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                return Err(BrokerError::Unavailable {
                    reason: format!("connecting to {}: {e}", self.config.url),
                });
            }
            Err(_) => return Err(timed_out("connect", self.config.connect_timeout)),
        };
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.config.request_timeout);
        Ok(NatsBroker {
            shared: Arc::new(Shared {
                client,
                js,
                codec: self.codec,
                config: self.config,
                closed: AtomicBool::new(false),
                topics: Mutex::new(HashMap::new()),
            }),
            _payload: PhantomData,
        })
    }
}

/// JetStream's answer to a publish.
#[derive(Debug, Deserialize)]
struct PubAck {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// JetStream's error code for a store that refused a message (its limits are reached).
const STORE_FAILED: u64 = 10077;

/// What a publish into a stream came back with.
pub(crate) enum Stored {
    Accepted { seq: u64, duplicate: bool },
    Full,
}

impl<T, C> NatsBroker<T, C> {
    /// A builder for a broker on the server(s) at `url`, with JSON payloads.
    pub fn builder(url: impl Into<String>) -> NatsBrokerBuilder<T, Json> {
        NatsBrokerBuilder { config: NatsConfig::new(url), codec: Json, _payload: PhantomData }
    }

    /// The underlying NATS client (for operations levee does not wrap).
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &NatsConfig {
        &self.shared.config
    }

    /// True once [`close`](levee_queue::broker::Broker::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    pub(crate) fn check_open(&self) -> Result<(), BrokerError> {
        if self.is_closed() { Err(BrokerError::Closed) } else { Ok(()) }
    }

    fn names(&self, topic: &str) -> Result<TopicNames, BrokerError> {
        TopicNames::new(&self.shared.config.prefix, topic)
    }

    /// Creates `topic` (its streams and state bucket) if it does not exist; publishing to a
    /// topic nobody created is `NoSuchTopic`, as in-process. `subscribe` creates the topic
    /// with default settings too.
    ///
    /// # Errors
    /// [`BrokerError::Config`] for a bad name or setting; `Unavailable` / `Backend` from the
    /// server.
    pub async fn create_topic(&self, topic: &str, config: TopicConfig) -> Result<(), BrokerError> {
        self.check_open()?;
        config.validate()?;
        self.ensure_topic(topic, &config).await.map(drop)
    }

    /// Deletes `topic`: its messages, subscriptions, dead letters and state. Returns whether
    /// it existed.
    ///
    /// # Errors
    /// `Unavailable` / `Backend` from the server.
    pub async fn delete_topic(&self, topic: &str) -> Result<bool, BrokerError> {
        let names = self.names(topic)?;
        self.lock_topics().remove(topic);
        let js = &self.shared.js;
        let mut existed = false;
        for stream in [&names.stream, &names.delay_stream, &names.dlq_stream] {
            match js.delete_stream(stream).await {
                Ok(_) => existed = true,
                Err(e) if e.to_string().contains("not found") => {}
                Err(e) => return Err(nats("delete stream", &e)),
            }
        }
        match js.delete_key_value(&names.state_bucket).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("not found") => {}
            Err(e) => return Err(nats("delete state bucket", &e)),
        }
        Ok(existed)
    }

    fn lock_topics(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TopicHandle>>> {
        self.shared.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn storage(&self) -> stream::StorageType {
        match self.shared.config.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        }
    }

    /// The topic's handle, creating its streams if needed.
    pub(crate) async fn ensure_topic(
        &self,
        topic: &str,
        config: &TopicConfig,
    ) -> Result<Arc<TopicHandle>, BrokerError> {
        if let Some(handle) = self.lock_topics().get(topic) {
            return Ok(Arc::clone(handle));
        }
        let names = self.names(topic)?;
        let js = &self.shared.js;
        let replicas = self.shared.config.replicas;
        let dedup = if config.dedup_window.is_zero() {
            Duration::from_secs(1)
        } else {
            config.dedup_window
        };
        // Delayed messages: schedules (`Nats-Schedule: @at ...`) fire into `<delay>.o.>`, which
        // the topic stream sources with the prefix rewritten. Limits retention: a schedule
        // waits here whatever the topic's interest; the fired copy expires after a week.
        js.get_or_create_stream(stream::Config {
            name: names.delay_stream.clone(),
            subjects: vec![format!("{}.>", names.delay_base)],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            allow_message_schedules: true,
            allow_message_ttl: true,
            allow_rollup: true,
            duplicate_window: dedup,
            storage: self.storage(),
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| nats("create delay stream", &e))?;
        let dlq = js
            .get_or_create_stream(stream::Config {
                name: names.dlq_stream.clone(),
                subjects: vec![format!("{}.>", names.dlq_base)],
                retention: stream::RetentionPolicy::Limits,
                discard: stream::DiscardPolicy::Old,
                max_messages_per_subject: 10_000,
                duplicate_window: Duration::from_secs(120),
                allow_direct: true,
                storage: self.storage(),
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| nats("create dead-letter stream", &e))?;
        let state = match js.get_key_value(&names.state_bucket).await {
            Ok(store) => store,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: names.state_bucket.clone(),
                    history: 1,
                    storage: self.storage(),
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| nats("create state bucket", &e))?,
        };
        let mut metadata = HashMap::new();
        if config.dedup_window.is_zero() {
            metadata.insert("levee-dedup".to_owned(), "off".to_owned());
        }
        let stream = js
            .get_or_create_stream(stream::Config {
                name: names.stream.clone(),
                subjects: vec![format!("{}>", names.base)],
                // A message lives while a subscription that matches it has not acked it, and
                // one that matches none is not kept (as in-process).
                retention: stream::RetentionPolicy::Interest,
                // The smallest max_backlog of the subscriptions bounds the topic (set by
                // subscribe); a publish past it is refused, never a message dropped.
                discard: stream::DiscardPolicy::New,
                duplicate_window: dedup,
                allow_direct: true,
                storage: self.storage(),
                num_replicas: replicas,
                metadata,
                sources: Some(vec![stream::Source {
                    name: names.delay_stream.clone(),
                    subject_transforms: vec![stream::SubjectTransform {
                        source: format!("{}.o.>", names.delay_base),
                        destination: format!("{}>", names.base),
                    }],
                    ..Default::default()
                }]),
                ..Default::default()
            })
            .await
            .map_err(|e| nats("create topic stream", &e))?;
        let handle =
            Arc::new(TopicHandle { names, stream, dlq, state, routes: Mutex::new(Vec::new()) });
        self.load_routes(&handle).await?;
        Ok(Arc::clone(self.lock_topics().entry(topic.to_owned()).or_insert(handle)))
    }

    /// The handle of an existing topic (`NoSuchTopic` if it was never created).
    pub(crate) async fn topic(&self, topic: &str) -> Result<Arc<TopicHandle>, BrokerError> {
        if let Some(handle) = self.lock_topics().get(topic) {
            return Ok(Arc::clone(handle));
        }
        let names = self.names(topic)?;
        match self.shared.js.get_stream(&names.stream).await {
            Ok(_) => self.ensure_topic(topic, &TopicConfig::default()).await,
            Err(e) if is_stream_not_found(&e.kind()) => {
                Err(BrokerError::NoSuchTopic { topic: topic.to_owned() })
            }
            Err(e) => Err(nats("look up topic", &e)),
        }
    }

    /// Reads every subscription's settings from its consumer's metadata.
    async fn load_routes(&self, handle: &TopicHandle) -> Result<(), BrokerError> {
        let infos: Vec<_> = handle
            .stream
            .consumers()
            .try_collect()
            .await
            .map_err(|e| nats("list subscriptions", &e))?;
        let mut routes = Vec::new();
        for info in infos {
            if let Some(config) = info
                .config
                .metadata
                .get(META_CONFIG)
                .and_then(|json| serde_json::from_str::<SubscriptionConfig>(json).ok())
            {
                routes.push(Route::from_config(&config));
            }
        }
        *handle.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = routes;
        Ok(())
    }

    /// Publishes raw bytes to `subject` and waits for JetStream's answer.
    pub(crate) async fn store(
        &self,
        subject: impl Into<Subject>,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Stored, BrokerError> {
        store(&self.shared.client, self.shared.config.request_timeout, subject, headers, payload)
            .await
    }
}

/// Publishes raw bytes to `subject` on `client` and waits up to `timeout` for JetStream's
/// answer.
pub(crate) async fn store(
    client: &Client,
    timeout: Duration,
    subject: impl Into<Subject>,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<Stored, BrokerError> {
    let mut request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
    if !headers.is_empty() {
        // A plain message goes out as PUB, not HPUB with an empty header block.
        request = request.headers(headers);
    }
    let reply =
        client.send_request(subject.into(), request).await.map_err(|e| nats("publish", &e))?;
    let ack: PubAck = serde_json::from_slice(&reply.payload)
        .map_err(|e| BrokerError::Backend { reason: format!("unreadable publish ack: {e}") })?;
    match ack.error {
        None => Ok(Stored::Accepted { seq: ack.seq, duplicate: ack.duplicate }),
        Some(err) if err.err_code == STORE_FAILED && err.description.contains("maximum") => {
            Ok(Stored::Full)
        }
        Some(err) => Err(BrokerError::Backend {
            reason: format!("publish refused: {} ({})", err.description, err.err_code),
        }),
    }
}

fn is_stream_not_found(kind: &jetstream::context::GetStreamErrorKind) -> bool {
    matches!(kind, jetstream::context::GetStreamErrorKind::JetStream(e)
        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// A token no other call returns (the client's inbox generator: a NUID).
pub(crate) fn unique_token(client: &Client) -> String {
    let inbox = client.new_inbox();
    inbox.rsplit('.').next().unwrap_or(&inbox).to_owned()
}

/// Reserved header name prefixes: JetStream's own and levee's.
fn reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("nats-") || lower.starts_with("levee-")
}

/// The NATS headers carrying a message's levee headers.
pub(crate) fn user_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, BrokerError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if reserved(name) {
            return Err(BrokerError::Config(ConfigError::new(
                "header",
                format!("`{name}`: names starting with `Nats-` or `Levee-` are reserved"),
            )));
        }
        let name: HeaderName = name.parse().map_err(|_| {
            BrokerError::Config(ConfigError::new(
                "header",
                format!("`{name}` is not a header name"),
            ))
        })?;
        if value.contains(['\r', '\n']) {
            return Err(BrokerError::Config(ConfigError::new(
                "header",
                format!("the value of `{name}` holds a line break"),
            )));
        }
        map.append(name, value);
    }
    Ok(map)
}

/// The levee headers among a delivered message's NATS headers.
pub(crate) fn levee_headers(map: Option<&HeaderMap>) -> levee_queue::broker::Headers {
    let mut out = levee_queue::broker::Headers::new();
    if let Some(map) = map {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            if reserved(name) {
                continue;
            }
            for value in values {
                out.insert(name, value.as_str());
            }
        }
    }
    out
}

impl<T: Send + Sync + 'static, C: Codec<T>> NatsBroker<T, C> {
    pub(crate) async fn publish_message(
        &self,
        topic: &str,
        message: Message<T>,
    ) -> Result<Publish, BrokerError> {
        self.check_open()?;
        let handle = self.topic(topic).await?;
        let subject = message.subject_ref().unwrap_or(topic);
        levee_queue::broker::validate_subject(subject)?;
        if subject.contains(char::is_whitespace) {
            return Err(BrokerError::InvalidSubject {
                subject: subject.to_owned(),
                reason: "a NATS subject cannot contain whitespace",
            });
        }
        let mut headers = user_headers(message.header_map().iter())?;
        if let Some(id) = message.message_id() {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        }
        let key = key_token(message.key_ref());
        let payload = Bytes::from(self.shared.codec.encode(message.payload())?);
        let now = unix_nanos();
        let ready_at = match message.schedule() {
            Schedule::Now => now,
            Schedule::Delay(d) => {
                now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            }
            Schedule::NotBefore(at) => at,
        };
        let routed = handle.routed(subject);
        let target = if ready_at > now {
            // A schedule per message: its own subject (JetStream keeps one schedule per
            // subject), firing once at `ready_at` into the topic through the delay stream.
            headers.insert("Nats-Schedule", format!("@at {}", rfc3339(ready_at)).as_str());
            headers.insert(
                "Nats-Schedule-Target",
                handle.names.schedule_target(&key, subject).as_str(),
            );
            headers.insert("Nats-Schedule-TTL", "168h");
            if let Some(id) = message.message_id() {
                headers.insert(H_MSG_ID, id);
            }
            handle.names.schedule_subject(&unique_token(&self.shared.client))
        } else {
            handle.names.message_subject(None, &key, subject)
        };
        // Built once: a retry after `Full` sends the same bytes (a `Subject` clones by
        // reference count, where a `String` would be copied on every attempt).
        let target = Subject::from(target);
        let deadline = tokio::time::Instant::now() + self.shared.config.full_wait;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.store(target.clone(), headers.clone(), payload.clone()).await? {
                Stored::Accepted { seq, duplicate: true } => return Ok(Publish::Duplicate { seq }),
                Stored::Accepted { seq, duplicate: false } => {
                    return Ok(Publish::Published { seq, subscriptions: routed });
                }
                Stored::Full => {
                    self.load_routes(&handle).await?;
                    let bound = handle.bound();
                    let waits = bound.as_ref().is_some_and(|b| b.overflow == Overflow::Wait);
                    if !waits || tokio::time::Instant::now() + pause > deadline {
                        let (subscription, capacity) =
                            bound.map_or((String::new(), 0), |b| (b.name, b.max_backlog));
                        return Err(BrokerError::Full { subscription, capacity });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
            }
        }
    }
}

/// `nanos` since the epoch as RFC 3339 in UTC with nanoseconds (what `@at` schedules take).
fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(i64::MAX) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{frac:09}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339(1_767_225_599_500_000_000), "2025-12-31T23:59:59.500000000Z");
    }

    #[test]
    fn reserved_and_bad_headers_are_refused() {
        assert!(user_headers([("trace", "a")].into_iter()).is_ok());
        for (n, v) in [("Nats-Msg-Id", "x"), ("levee-seq", "1"), ("a:b", "x"), ("ok", "a\r\nb")] {
            assert!(user_headers([(n, v)].into_iter()).is_err(), "{n}: {v:?}");
        }
    }
}
