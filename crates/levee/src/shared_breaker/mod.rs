//! Breakers that share what they learn (issue 22, item 3): replicas guarding the same
//! dependency tell each other their breaker transitions through any levee
//! [`Broker`], so a replica that has not seen failures yet stops sending full traffic into an
//! outage its peers have found, and a replica whose circuit is open learns of a recovery as
//! soon as one peer's trial passes.
//!
//! # The rule
//!
//! Each replica keeps its own local [`CircuitBreaker`]: every decision is local, lock-free and
//! as cheap as a plain breaker's. Its transitions (dependency, replica id, generation, from,
//! to, time) go to an outbox and are published on a topic ([`SharedSettings::topic`]); the
//! replica reads the same topic through its own subscription and keeps the last word of each
//! peer (at most [`max_peers`](SharedSettings::max_peers), each trusted for
//! [`ttl`](SharedSettings::ttl) after it arrived, so a dead replica's word fades). Then:
//!
//! - **Outage.** When at least [`quorum`](SharedSettings::quorum) peers' last fresh word is
//!   *open*, heard after this replica's breaker last closed, and this replica's breaker is
//!   still closed, it moves to half-open ([`CircuitBreaker::probe`]): `half_open_calls` trial
//!   calls go through instead of full traffic. If they fail the circuit opens as usual; if
//!   they pass it closes, and the reports heard before that close no longer count (no probing
//!   loop against peers that are still open).
//! - **Recovery.** When a peer reports *closed after half-open* (its trial passed), a replica
//!   whose breaker is open probes at once instead of waiting out its open wait. Recovery is
//!   therefore never slower than the first replica's own trial.
//!
//! Reports from this replica itself are ignored, and so are reports about other
//! dependencies; a report older (by generation) than the peer's last fresh one is dropped as
//! stale; a message that does not parse is dropped and counted, never a panic.
//!
//! # Limits
//!
//! - No cluster-wide lock and no single point of failure: a lost, late or duplicated message
//!   only makes a replica behave more like a plain local breaker (with no message at all it
//!   *is* one, decision for decision). The broker being down costs nothing but the sharing.
//! - Replicas publish transitions only (no heartbeat), so a view does not know how many
//!   replicas exist: the quorum is a count of peers, not a fraction. Set the TTL above the
//!   open wait, so that peers cycling open / half-open during a long outage keep their word
//!   fresh.
//! - A peer's trial passing is a hint, not a verdict: the early probe is one ordinary
//!   half-open round of this replica's own breaker.
//! - Clocks of different processes are not compared: reports are aged by the receiver's
//!   clock from when they arrived.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use levee::breaker::{CircuitBreaker, State};
//! use levee::core::ManualClock;
//! use levee::queue::broker::InProcessBroker;
//! use levee::shared_breaker::{SharedBreaker, SharedSettings};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new();
//! let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
//! let settings = SharedSettings::new().quorum(1);
//! let replica = |id: &'static str| {
//!     let builder = CircuitBreaker::builder()
//!         .minimum_calls(4)
//!         .half_open_calls(1)
//!         .open_wait(Duration::from_secs(30))
//!         .clock(clock.clone());
//!     SharedBreaker::join(broker.clone(), "payments", id, builder, settings.clone())
//! };
//! let (a, b) = (replica("a").await?, replica("b").await?);
//!
//! // Replica a sees the payment provider fail and opens.
//! for _ in 0..4 {
//!     let _ = a.breaker().call(|| Err::<(), _>("503"));
//! }
//! assert_eq!(a.breaker().state(), State::Open);
//! a.publish_pending().await;
//!
//! // Replica b has not called it yet; it hears of the outage and probes instead.
//! b.receive(Duration::ZERO).await?;
//! assert_eq!(b.breaker().state(), State::HalfOpen);
//! assert_eq!(b.stats().probes, 1);
//! # Ok(())
//! # }
//! ```

mod peers;
mod wire;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use levee_breaker::{BreakerEvent, CircuitBreaker, CircuitBreakerBuilder, State};
use levee_core::{Clock, ConfigError};
use levee_queue::broker::{
    Broker, BrokerDelivery, BrokerError, Message, Overflow, SubscriptionConfig,
};
use levee_queue::channel::{self, Receiver, Sender};

pub use peers::PeerReport;
pub use wire::{Malformed, Transition};

use peers::{Observed, PeerView};

/// Settings of a [`SharedBreaker`]: where replicas talk and how much one trusts the others.
///
/// ```
/// use std::time::Duration;
/// use levee::shared_breaker::SharedSettings;
///
/// // Probe once two peers report the dependency down; trust a report for two minutes.
/// let settings = SharedSettings::new().topic("breakers").quorum(2).ttl(Duration::from_secs(120));
/// assert!(settings.validate().is_ok());
/// assert!(SharedSettings::new().quorum(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedSettings {
    /// The topic all replicas publish and read transitions on. Default `levee.breakers`.
    pub topic: String,
    /// How many peers must report the dependency open before a closed replica probes.
    /// Default 2 (one replica's bad luck does not move the others).
    pub quorum: usize,
    /// How long a peer's report counts after it arrived. Default 2 minutes: above the
    /// breaker's default open wait (60 s), so a peer cycling open / half-open stays counted.
    pub ttl: Duration,
    /// The most peers remembered; when full, the one heard from longest ago makes room.
    /// Default 256.
    pub max_peers: usize,
    /// Transitions waiting to be published; beyond it a transition is dropped and counted
    /// (peers then miss it, nothing else). Default 64.
    pub outbox: usize,
    /// The most messages this replica's subscription holds unread. Default 1 024.
    pub backlog: usize,
    /// What a publish does when a replica's subscription holds `backlog` unread messages.
    /// Default [`Overflow::DeadLetterOldest`]: the oldest report is dropped, so a replica that
    /// stopped reading never stops the others' publishing. Brokers that refuse it (NATS
    /// JetStream: a full stream never drops a message) need [`Overflow::Reject`]: a publish
    /// into a full backlog then fails and is counted as lost, so remove a dead replica's
    /// subscription there, or sharing stops once its backlog is full.
    pub overflow: Overflow,
}

impl Default for SharedSettings {
    fn default() -> Self {
        Self {
            topic: "levee.breakers".into(),
            quorum: 2,
            ttl: Duration::from_secs(120),
            max_peers: 256,
            outbox: 64,
            backlog: 1024,
            overflow: Overflow::DeadLetterOldest,
        }
    }
}

impl SharedSettings {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`topic`](Self::topic).
    #[must_use]
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Sets [`quorum`](Self::quorum).
    #[must_use]
    pub fn quorum(mut self, peers: usize) -> Self {
        self.quorum = peers;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`max_peers`](Self::max_peers).
    #[must_use]
    pub fn max_peers(mut self, peers: usize) -> Self {
        self.max_peers = peers;
        self
    }

    /// Sets [`outbox`](Self::outbox).
    #[must_use]
    pub fn outbox(mut self, transitions: usize) -> Self {
        self.outbox = transitions;
        self
    }

    /// Sets [`backlog`](Self::backlog).
    #[must_use]
    pub fn backlog(mut self, messages: usize) -> Self {
        self.backlog = messages;
        self
    }

    /// Sets [`overflow`](Self::overflow).
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting that is zero (or an empty topic).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            ("quorum", self.quorum == 0),
            ("ttl", self.ttl.is_zero()),
            ("max_peers", self.max_peers == 0),
            ("outbox", self.outbox == 0),
            ("backlog", self.backlog == 0),
        ];
        if let Some((name, _)) = zero.into_iter().find(|(_, bad)| *bad) {
            return Err(ConfigError::new(name, "must be more than zero"));
        }
        if self.topic.is_empty() {
            return Err(ConfigError::new("topic", "must not be empty"));
        }
        Ok(())
    }
}

/// What a [`SharedBreaker`] did with the messages it sent and heard.
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use levee::breaker::{CircuitBreaker, State};
/// # use levee::core::ManualClock;
/// # use levee::queue::broker::InProcessBroker;
/// # use levee::shared_breaker::{SharedBreaker, SharedSettings};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let clock = ManualClock::new();
/// # let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
/// # let settings = SharedSettings::new().quorum(1);
/// # let replica = |id: &'static str| {
/// #     let builder = CircuitBreaker::builder().minimum_calls(4).clock(clock.clone());
/// #     SharedBreaker::join(broker.clone(), "payments", id, builder, settings.clone())
/// # };
/// let (a, b) = (replica("a").await?, replica("b").await?);
/// for _ in 0..4 {
///     let _ = a.breaker().call(|| Err::<(), _>("503"));
/// }
/// a.publish_pending().await; // a opened, and tells its peers
/// b.receive(Duration::ZERO).await?;
///
/// let (sent, heard) = (a.stats(), b.stats());
/// assert_eq!(sent.published, 1);
/// assert_eq!((heard.received, heard.probes), (1, 1)); // b probed on a's word
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedStats {
    /// Transitions published.
    pub published: u64,
    /// Transitions lost before reaching the broker: outbox full or publish failed.
    pub publish_lost: u64,
    /// Peer reports kept.
    pub received: u64,
    /// Messages that did not parse (dropped).
    pub malformed: u64,
    /// This replica's own messages (ignored).
    pub own: u64,
    /// Reports about other dependencies on the same topic (ignored).
    pub other_dependency: u64,
    /// Reports older than the peer's last fresh one (dropped).
    pub stale: u64,
    /// Peers forgotten to make room for new ones.
    pub evicted: u64,
    /// Times a closed breaker probed because a quorum of peers reported open.
    pub probes: u64,
    /// Times an open breaker probed early because a peer recovered.
    pub early_trials: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    publish_lost: AtomicU64,
    received: AtomicU64,
    malformed: AtomicU64,
    own: AtomicU64,
    other_dependency: AtomicU64,
    stale: AtomicU64,
    evicted: AtomicU64,
    probes: AtomicU64,
    early_trials: AtomicU64,
    /// When the local breaker last entered closed (its clock): open reports heard before
    /// count no more.
    closed_at: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A local [`CircuitBreaker`] that tells its peers what it learns through a [`Broker`] and
/// listens to theirs (the rule is in the [module documentation](self)).
///
/// Calls go through [`breaker`](Self::breaker) exactly as through a plain breaker. Drive the
/// messaging with [`run`](Self::run) on a task (or [`publish_pending`](Self::publish_pending)
/// and [`receive`](Self::receive) step by step, as tests do).
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use levee::breaker::{CircuitBreaker, State};
/// # use levee::core::ManualClock;
/// # use levee::queue::broker::InProcessBroker;
/// # use levee::shared_breaker::{SharedBreaker, SharedSettings};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let clock = ManualClock::new();
/// # let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
/// # let settings = SharedSettings::new().quorum(1);
/// # let replica = |id: &'static str| {
/// #     let builder = CircuitBreaker::builder().minimum_calls(4).clock(clock.clone());
/// #     SharedBreaker::join(broker.clone(), "payments", id, builder, settings.clone())
/// # };
/// let (a, b) = (replica("a").await?, replica("b").await?);
/// for _ in 0..4 {
///     let _ = a.breaker().call(|| Err::<(), _>("503"));
/// }
/// a.publish_pending().await; // a opened, and tells its peers
/// b.receive(Duration::ZERO).await?;
///
/// // b's own breaker had seen nothing; the quorum of one open peer made it probe.
/// assert_eq!(b.breaker().state(), State::HalfOpen);
/// assert_eq!(b.replica(), "b");
/// # Ok(())
/// # }
/// ```
pub struct SharedBreaker<B: Broker, C: Clock> {
    breaker: Arc<CircuitBreaker<C>>,
    broker: Arc<B>,
    consumer: B::Consumer,
    dependency: Arc<str>,
    replica: Arc<str>,
    settings: SharedSettings,
    outbox: Receiver<Transition>,
    view: Mutex<PeerView>,
    counters: Arc<Counters>,
}

impl<B: Broker, C: Clock> std::fmt::Debug for SharedBreaker<B, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBreaker")
            .field("dependency", &self.dependency)
            .field("replica", &self.replica)
            .field("state", &self.breaker.state())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<B: Broker, C: Clock> SharedBreaker<B, C> {
    /// The local breaker: make calls through it.
    #[must_use]
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }

    /// This replica's id.
    #[must_use]
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The peers' fresh reports, oldest first.
    #[must_use]
    pub fn peers(&self) -> Vec<PeerReport> {
        self.lock_view().snapshot(self.breaker.clock().now())
    }

    /// Counters of what was sent and heard.
    #[must_use]
    pub fn stats(&self) -> SharedStats {
        let c = &*self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SharedStats {
            published: get(&c.published),
            publish_lost: get(&c.publish_lost),
            received: get(&c.received),
            malformed: get(&c.malformed),
            own: get(&c.own),
            other_dependency: get(&c.other_dependency),
            stale: get(&c.stale),
            evicted: get(&c.evicted),
            probes: get(&c.probes),
            early_trials: get(&c.early_trials),
        }
    }

    fn lock_view(&self) -> std::sync::MutexGuard<'_, PeerView> {
        // The view is plain data updated in one step; a panic elsewhere cannot leave it torn.
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B, C> SharedBreaker<B, C>
where
    B: Broker,
    B::Payload: From<String> + AsRef<str>,
    C: Clock,
{
    /// Builds replica `replica`'s breaker for `dependency` from `breaker` (its listeners are
    /// kept, one is added) and subscribes to the topic as subscription `replica`.
    ///
    /// # Errors
    /// [`BrokerError::Config`] for invalid settings, breaker settings, or a dependency or
    /// replica name that is empty, longer than 128 bytes or holds whitespace; the broker's
    /// error when subscribing fails.
    pub async fn join(
        broker: Arc<B>,
        dependency: &str,
        replica: &str,
        breaker: CircuitBreakerBuilder<C>,
        settings: SharedSettings,
    ) -> Result<Self, BrokerError> {
        settings.validate()?;
        for (name, value) in [("dependency", dependency), ("replica", replica)] {
            if !wire::is_name(value) {
                return Err(ConfigError::new(
                    name,
                    "must be 1 to 128 bytes without whitespace or control characters",
                )
                .into());
            }
        }
        let (tx, outbox) = channel::bounded(settings.outbox)?;
        let counters = Arc::new(Counters::default());
        let breaker = breaker
            .name(dependency)
            .listener(Outbox {
                tx,
                dependency: dependency.into(),
                replica: replica.into(),
                counters: counters.clone(),
            })
            .build()?;
        let subscription = SubscriptionConfig::new(replica)
            .max_backlog(settings.backlog)
            .overflow(settings.overflow)
            .max_dead_letters(1)
            .max_deliveries(1);
        let subscription = broker.subscribe(&settings.topic, subscription).await?;
        let consumer = broker.consumer(&subscription).await?;
        let ttl = levee_core::nanos(settings.ttl);
        Ok(Self {
            breaker: Arc::new(breaker),
            broker,
            consumer,
            dependency: dependency.into(),
            replica: replica.into(),
            view: Mutex::new(PeerView::new(ttl, settings.max_peers)),
            settings,
            outbox,
            counters,
        })
    }

    /// Publishes the transitions waiting in the outbox; returns how many were published. A
    /// publish that fails is counted in [`SharedStats::publish_lost`] and not retried (a
    /// later transition supersedes it).
    pub async fn publish_pending(&self) -> usize {
        let mut published = 0;
        while let Ok(t) = self.outbox.try_recv() {
            published += usize::from(self.publish(t).await);
        }
        published
    }

    async fn publish(&self, t: Transition) -> bool {
        let message = Message::new(B::Payload::from(t.encode()));
        match self.broker.publish(&self.settings.topic, message).await {
            Ok(_) => {
                bump(&self.counters.published);
                true
            }
            Err(_) => {
                bump(&self.counters.publish_lost);
                false
            }
        }
    }

    /// Waits up to `wait` for peers' messages, applies the rule to what arrived and acks it;
    /// returns how many messages were read.
    ///
    /// # Errors
    /// The broker's error from receiving ([`BrokerError::Closed`] once it is closed).
    pub async fn receive(&self, wait: Duration) -> Result<usize, BrokerError> {
        let deliveries = self.broker.receive(&self.consumer, 64, wait).await?;
        for delivery in &deliveries {
            self.apply(delivery.payload().as_ref());
            // A failed ack redelivers a report that is then stale: nothing to do.
            let _ = self.broker.ack(delivery).await;
        }
        Ok(deliveries.len())
    }

    /// Publishes this replica's transitions and applies its peers' until the broker closes:
    /// spawn it on a task. Each receive waits up to `poll` (its ceiling on how late a peer's
    /// message is read when the broker cannot wake a waiting receiver sooner).
    ///
    /// # Errors
    /// The broker's error from receiving ([`BrokerError::Closed`] when it closed).
    pub async fn run(&self, poll: Duration) -> Result<(), BrokerError> {
        let mut sending = pin!(async {
            while let Ok(t) = self.outbox.recv_async().await {
                self.publish(t).await;
            }
        });
        let mut receiving = pin!(async {
            loop {
                self.receive(poll).await?;
            }
        });
        poll_fn(|cx| {
            // Sending ends only when the outbox closes, which the breaker's listener holding
            // its sender prevents; receiving ends with the broker.
            let _ = sending.as_mut().poll(cx);
            match receiving.as_mut().poll(cx) {
                Poll::Ready(result) => Poll::Ready(result),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Applies one message's text (the rule in the module documentation).
    fn apply(&self, text: &str) {
        let c = &*self.counters;
        let t = match Transition::decode(text) {
            Ok(t) => t,
            Err(_) => return bump(&c.malformed),
        };
        if t.replica == *self.replica {
            return bump(&c.own);
        }
        if t.dependency != *self.dependency {
            return bump(&c.other_dependency);
        }
        let now = self.breaker.clock().now();
        let mut view = self.lock_view();
        match view.observe(&t, now) {
            Observed::Stale => return bump(&c.stale),
            Observed::Kept { evicted } => {
                bump(&c.received);
                if evicted {
                    bump(&c.evicted);
                }
            }
        }
        let since = c.closed_at.load(Ordering::Relaxed);
        let open_peers = view.open_since(now, since);
        drop(view);
        match (t.from, t.to, self.breaker.state()) {
            (_, State::Open, State::Closed)
                if open_peers >= self.settings.quorum && self.breaker.probe() =>
            {
                bump(&c.probes);
            }
            (State::HalfOpen, State::Closed, State::Open) if self.breaker.probe() => {
                bump(&c.early_trials);
            }
            _ => {}
        }
    }
}

/// The breaker's listener: queues each transition for publishing, never blocking the call
/// that caused it.
struct Outbox {
    tx: Sender<Transition>,
    dependency: Arc<str>,
    replica: Arc<str>,
    counters: Arc<Counters>,
}

impl levee_core::Listener<BreakerEvent> for Outbox {
    fn on_event(&self, event: &BreakerEvent) {
        if event.to == State::Closed {
            self.counters.closed_at.store(event.at, Ordering::Relaxed);
        }
        if self.tx.try_send(Transition::of(&self.dependency, &self.replica, event)).is_err() {
            bump(&self.counters.publish_lost);
        }
    }
}
