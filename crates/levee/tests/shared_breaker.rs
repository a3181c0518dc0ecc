//! Breakers that share what they learn (issue 22, item 3): five replicas guarding one
//! dependency, each with a deterministic load, through an outage of that dependency, on one
//! manual clock. The same scenario runs with isolated breakers, with shared breakers on the
//! in-process broker, on a broker that loses every message, and on NATS JetStream when
//! `LEVEE_TEST_NATS_URL` is set (`source .ci/nats.sh`).

use std::sync::Arc;
use std::time::Duration;

use levee::breaker::{
    BreakerSettings, CircuitBreaker, CircuitBreakerBuilder, OpenWait, SlidingWindow, State,
};
use levee::core::ManualClock;
use levee::queue::broker::{
    Broker, BrokerError, DeadLetter, InProcessBroker, Message, Nack, Overflow, Publish, Select,
    SubscriptionConfig,
};
use levee::shared_breaker::{SharedBreaker, SharedSettings, SharedStats};

const MS: Duration = Duration::from_millis(1);
/// Replica `i` makes one call every `PERIODS_MS[i]` ms (1 000 down to 12 calls a second):
/// replicas behind different clients see different traffic.
const PERIODS_MS: [u64; 5] = [1, 3, 9, 27, 81];
/// The dependency fails every call in `[OUTAGE.0, OUTAGE.1)` ms.
const OUTAGE: (u64, u64) = (10_000, 30_000);
/// The scenario's length in ms.
const END: u64 = 50_000;

fn breaker_settings() -> BreakerSettings {
    BreakerSettings {
        window: SlidingWindow::count(100),
        minimum_calls: 100,
        failure_rate_threshold: 50.0,
        open_wait: OpenWait::fixed(Duration::from_secs(10)),
        half_open_calls: 3,
        ..BreakerSettings::default()
    }
}

fn builder(clock: &ManualClock) -> CircuitBreakerBuilder<ManualClock> {
    CircuitBreaker::builder().settings(breaker_settings()).clock(clock.clone())
}

fn shared_settings(quorum: usize) -> SharedSettings {
    SharedSettings::new().quorum(quorum).ttl(Duration::from_secs(30))
}

/// What one run of the scenario measured.
#[derive(Debug, PartialEq)]
struct Run {
    /// Calls let through to the dependency while it failed.
    sent_in_outage: u64,
    /// Per replica, the calls let through during the outage.
    per_replica: Vec<u64>,
    /// From the outage's end until every replica's breaker was closed, in ms.
    recovery_ms: Option<u64>,
    /// Per replica and ms: whether a call was let through (for comparing runs exactly).
    trace: Vec<Vec<u64>>,
}

/// The replicas' message exchange after each millisecond.
trait Net {
    fn breakers(&self) -> Vec<Arc<CircuitBreaker<ManualClock>>>;
    async fn exchange(&self);
}

struct Isolated(Vec<Arc<CircuitBreaker<ManualClock>>>);

impl Net for Isolated {
    fn breakers(&self) -> Vec<Arc<CircuitBreaker<ManualClock>>> {
        self.0.clone()
    }
    async fn exchange(&self) {}
}

struct Shared<B: Broker> {
    replicas: Vec<SharedBreaker<B, ManualClock>>,
    /// `None`: read once without waiting (what was published is there at once, or never);
    /// `Some(wait)`: read, waiting up to `wait` each time, until every message published
    /// this millisecond has arrived (a networked broker), so the run stays deterministic.
    wait: Option<Duration>,
}

impl<B: Broker> Net for Shared<B>
where
    B::Payload: From<String> + AsRef<str>,
{
    fn breakers(&self) -> Vec<Arc<CircuitBreaker<ManualClock>>> {
        self.replicas.iter().map(|s| s.breaker().clone()).collect()
    }
    async fn exchange(&self) {
        let mut published = 0;
        for replica in &self.replicas {
            published += replica.publish_pending().await;
        }
        // Only the replicas publish on the topic: nothing new to read when none did.
        if published == 0 {
            return;
        }
        for replica in &self.replicas {
            let Some(wait) = self.wait else {
                replica.receive(Duration::ZERO).await.unwrap();
                continue;
            };
            // Every replica reads every message, its own included.
            let (mut read, mut tries) = (0, 0);
            while read < published {
                tries += 1;
                assert!(tries <= 100, "{} read {read} of {published}", replica.replica());
                read += replica.receive(wait).await.unwrap();
            }
        }
    }
}

async fn shared_on<B: Broker>(
    broker: Arc<B>,
    clock: &ManualClock,
    settings: SharedSettings,
    wait: Option<Duration>,
) -> Shared<B>
where
    B::Payload: From<String> + AsRef<str>,
{
    let mut replicas = Vec::new();
    for i in 0..PERIODS_MS.len() {
        let replica = SharedBreaker::join(
            broker.clone(),
            "payments",
            &format!("replica-{i}"),
            builder(clock),
            settings.clone(),
        )
        .await
        .unwrap();
        replicas.push(replica);
    }
    Shared { replicas, wait }
}

/// Runs the scenario: every ms, each replica whose turn it is asks its breaker, calls the
/// dependency if let through and records the outcome; then the replicas exchange messages.
async fn run(net: &impl Net, clock: &ManualClock) -> Run {
    let breakers = net.breakers();
    let mut trace = vec![Vec::new(); breakers.len()];
    let mut per_replica = vec![0; breakers.len()];
    let mut recovery_ms = None;
    for t in 0..END {
        clock.advance(MS);
        let failing = (OUTAGE.0..OUTAGE.1).contains(&t);
        for (i, b) in breakers.iter().enumerate() {
            if t % PERIODS_MS[i] != 0 {
                continue;
            }
            if let Ok(permit) = b.try_acquire() {
                trace[i].push(t);
                if failing {
                    per_replica[i] += 1;
                    permit.failure();
                } else {
                    permit.success();
                }
            }
        }
        net.exchange().await;
        if t >= OUTAGE.1
            && recovery_ms.is_none()
            && breakers.iter().all(|b| b.state() == State::Closed)
        {
            recovery_ms = Some(t - OUTAGE.1);
        }
    }
    Run { sent_in_outage: per_replica.iter().sum(), per_replica, recovery_ms, trace }
}

async fn isolated() -> Run {
    let clock = ManualClock::new();
    let breakers = (0..PERIODS_MS.len()).map(|_| Arc::new(builder(&clock).build().unwrap()));
    run(&Isolated(breakers.collect()), &clock).await
}

fn stats<B: Broker>(net: &Shared<B>) -> Vec<SharedStats> {
    net.replicas.iter().map(SharedBreaker::stats).collect()
}

/// Prints what a shared run measured against the isolated one, and asserts that recovery
/// (every replica closed again) is no slower; returns the share of calls saved, in percent.
fn compare(alone: &Run, shared: &Run, what: &str) -> f64 {
    let (a, s) = (alone.sent_in_outage, shared.sent_in_outage);
    let (ra, rs) = (alone.recovery_ms.unwrap(), shared.recovery_ms.unwrap());
    let saved = 100.0 - s as f64 * 100.0 / a as f64;
    let report = format!(
        "{what}: calls into the outage {s} shared vs {a} isolated ({saved:.0} % fewer; per \
         replica {:?} vs {:?}); full recovery {rs} ms vs {ra} ms after the outage",
        shared.per_replica, alone.per_replica
    );
    eprintln!("{report}");
    assert!(rs <= ra, "recovery slower: {report}");
    saved
}

async fn in_process(quorum: usize) -> (Run, Vec<SharedStats>) {
    let clock = ManualClock::new();
    let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
    let net = shared_on(broker, &clock, shared_settings(quorum), None).await;
    let shared = run(&net, &clock).await;
    (shared, stats(&net))
}

/// With a quorum of one peer the calls sent into the outage at least halve, and every replica
/// is closed again no later than with isolated breakers.
#[tokio::test]
async fn sharing_halves_the_calls_into_an_outage_and_recovers_no_slower() {
    let alone = isolated().await;
    let (shared, stats) = in_process(1).await;
    let saved = compare(&alone, &shared, "in-process broker, quorum 1");
    assert!(saved >= 50.0, "not halved: {saved:.0} % fewer");
    let probes: u64 = stats.iter().map(|s| s.probes).sum();
    let early: u64 = stats.iter().map(|s| s.early_trials).sum();
    assert!(probes >= 1 && early >= 1, "both rules acted: {stats:?}");
    assert!(stats.iter().all(|s| s.malformed == 0 && s.publish_lost == 0), "{stats:?}");
}

/// With the default quorum of two peers the two busiest replicas open on their own; the
/// others still send fewer calls into the outage, and recovery is no slower.
#[tokio::test]
async fn a_quorum_of_two_saves_less_and_recovers_no_slower() {
    let alone = isolated().await;
    let (shared, _) = in_process(2).await;
    let saved = compare(&alone, &shared, "in-process broker, quorum 2");
    assert!(saved > 0.0, "nothing saved: {saved:.0} %");
    assert_eq!(shared.per_replica[..2], alone.per_replica[..2], "the two busiest open alone");
}

/// A broker that delivers nothing: every message is taken and acked on receipt, and
/// reported as none.
struct Lossy<B>(B);

impl<B: Broker> Broker for Lossy<B> {
    type Payload = B::Payload;
    type Subscription = B::Subscription;
    type Consumer = B::Consumer;
    type Delivery = B::Delivery;

    async fn publish(&self, topic: &str, m: Message<B::Payload>) -> Result<Publish, BrokerError> {
        self.0.publish(topic, m).await
    }
    async fn subscribe(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<B::Subscription, BrokerError> {
        self.0.subscribe(topic, config).await
    }
    async fn consumer(&self, s: &B::Subscription) -> Result<B::Consumer, BrokerError> {
        self.0.consumer(s).await
    }
    async fn receive(
        &self,
        consumer: &B::Consumer,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<B::Delivery>, BrokerError> {
        for lost in self.0.receive(consumer, max, wait).await? {
            self.0.ack(&lost).await?;
        }
        Ok(Vec::new())
    }
    async fn ack(&self, d: &B::Delivery) -> Result<(), BrokerError> {
        self.0.ack(d).await
    }
    async fn nack(&self, d: &B::Delivery, nack: Nack) -> Result<(), BrokerError> {
        self.0.nack(d, nack).await
    }
    async fn in_progress(&self, d: &B::Delivery) -> Result<(), BrokerError> {
        self.0.in_progress(d).await
    }
    async fn term(&self, d: &B::Delivery, reason: &str) -> Result<(), BrokerError> {
        self.0.term(d, reason).await
    }
    async fn dead_letters(
        &self,
        s: &B::Subscription,
    ) -> Result<Vec<DeadLetter<B::Payload>>, BrokerError> {
        self.0.dead_letters(s).await
    }
    async fn replay(&self, s: &B::Subscription, select: Select) -> Result<usize, BrokerError> {
        self.0.replay(s, select).await
    }
    async fn purge(&self, s: &B::Subscription, select: Select) -> Result<usize, BrokerError> {
        self.0.purge(s, select).await
    }
    async fn close(&self) {
        self.0.close().await;
    }
}

#[tokio::test]
async fn losing_every_message_is_exactly_the_isolated_behaviour() {
    let alone = isolated().await;
    let clock = ManualClock::new();
    let broker = InProcessBroker::<String, _>::builder().clock(clock.clone()).build();
    let net = shared_on(Arc::new(Lossy(broker)), &clock, shared_settings(1), None).await;
    let lossy = run(&net, &clock).await;
    let stats = stats(&net);
    assert!(stats.iter().all(|s| s.published > 0 && s.received == 0), "{stats:?}");
    assert_eq!(lossy, alone, "call for call, the isolated breakers' run");
}

#[tokio::test]
async fn own_foreign_and_malformed_messages_change_nothing() {
    let clock = ManualClock::new();
    let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
    let settings = SharedSettings::new().quorum(1);
    let join = |id: &'static str| {
        SharedBreaker::join(broker.clone(), "payments", id, builder(&clock), settings.clone())
    };
    let me = join("me").await.unwrap();
    let open = |dependency: &str, replica: &str| {
        format!("levee.breaker.v1 {dependency} {replica} 1 closed open 0")
    };
    let junk = [
        String::new(),
        "levee.breaker.v1".into(),
        "levee.breaker.v1 payments a 1 closed open".into(),
        "levee.breaker.v1 payments a 99999999 closed open 0".into(),
        "\u{0}\u{ffff} payments".into(),
        "x".repeat(100_000),
        open("payments", "me"),
        open("inventory", "a"),
    ];
    for text in junk {
        broker.publish("levee.breakers", Message::new(text)).await.unwrap();
    }
    assert_eq!(me.receive(Duration::ZERO).await.unwrap(), 8);
    let s = me.stats();
    assert_eq!((s.malformed, s.own, s.other_dependency, s.received), (6, 1, 1, 0), "{s:?}");
    assert_eq!(me.breaker().state(), State::Closed);
    assert!(me.peers().is_empty());

    // One well-formed report of a peer moves it (quorum 1), and is then a peer.
    broker.publish("levee.breakers", Message::new(open("payments", "a"))).await.unwrap();
    me.receive(Duration::ZERO).await.unwrap();
    assert_eq!(me.breaker().state(), State::HalfOpen);
    assert_eq!(me.peers()[0].replica, "a");
    assert_eq!(me.stats().probes, 1);
}

#[tokio::test]
async fn a_replica_that_closed_after_probing_ignores_the_reports_it_already_acted_on() {
    let clock = ManualClock::new();
    let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
    let settings = SharedSettings::new().quorum(1);
    let me = SharedBreaker::join(broker.clone(), "payments", "me", builder(&clock), settings)
        .await
        .unwrap();
    let report = |generation: u32| {
        Message::new(format!("levee.breaker.v1 payments a {generation} closed open 0"))
    };
    broker.publish("levee.breakers", report(1)).await.unwrap();
    me.receive(Duration::ZERO).await.unwrap();
    assert_eq!(me.breaker().state(), State::HalfOpen);
    for _ in 0..5 {
        me.breaker().try_acquire().unwrap().success();
    }
    assert_eq!(me.breaker().state(), State::Closed, "its own trials passed");
    // The peer is still open; a later report of it (a failed trial, say) counts again.
    clock.advance(MS);
    broker.publish("levee.breakers", report(3)).await.unwrap();
    me.receive(Duration::ZERO).await.unwrap();
    assert_eq!(me.breaker().state(), State::HalfOpen);
    assert_eq!(me.stats().probes, 2);
}

#[tokio::test]
async fn bad_settings_and_names_are_refused() {
    let clock = ManualClock::new();
    let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
    let join = |dependency: &'static str, replica: &'static str, settings: SharedSettings| {
        SharedBreaker::join(broker.clone(), dependency, replica, builder(&clock), settings)
    };
    let setting = |e: BrokerError| match e {
        BrokerError::Config(c) => c.setting,
        other => panic!("{other}"),
    };
    let s = SharedSettings::new;
    assert_eq!(setting(join("p", "a", s().quorum(0)).await.unwrap_err()), "quorum");
    assert_eq!(setting(join("p", "a", s().ttl(Duration::ZERO)).await.unwrap_err()), "ttl");
    assert_eq!(setting(join("p", "a", s().topic("")).await.unwrap_err()), "topic");
    assert_eq!(setting(join("p q", "a", s()).await.unwrap_err()), "dependency");
    assert_eq!(setting(join("p", "", s()).await.unwrap_err()), "replica");
}

/// The outage scenario on NATS JetStream, each message read by every replica before the next
/// millisecond: the same run, call for call, as on the in-process broker (skips without
/// `LEVEE_TEST_NATS_URL`). JetStream refuses `Overflow::DeadLetterOldest`, so the replicas'
/// subscriptions reject instead.
#[tokio::test]
async fn sharing_pays_on_nats_too() {
    let Some(url) = levee::core::testing::server_url("LEVEE_TEST_NATS_URL", "nats") else {
        return;
    };
    let broker = levee::nats::NatsBroker::<String>::builder(url)
        .prefix(format!("lsb{}", std::process::id()))
        .storage(levee::nats::Storage::Memory)
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to the test server");
    let broker = Arc::new(broker);
    let clock = ManualClock::new();
    let settings = shared_settings(1).topic("breakers").overflow(Overflow::Reject);
    let net = shared_on(broker.clone(), &clock, settings, Some(Duration::from_millis(200))).await;
    let on_nats = tokio::time::timeout(Duration::from_secs(120), run(&net, &clock))
        .await
        .expect("the scenario finishes within two minutes on a local server");
    broker.close().await;
    let alone = isolated().await;
    let saved = compare(&alone, &on_nats, "NATS JetStream, quorum 1");
    assert!(saved >= 50.0, "not halved: {saved:.0} % fewer");
    let (in_process, _) = in_process(1).await;
    assert_eq!(on_nats, in_process, "the in-process run, call for call");
    let stats = stats(&net);
    assert!(stats.iter().all(|s| s.malformed == 0 && s.publish_lost == 0), "{stats:?}");
}
