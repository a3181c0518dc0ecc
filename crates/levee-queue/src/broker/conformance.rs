//! A conformance suite for [`Broker`] implementations: the same checks for the in-process
//! broker and for adapters over real engines.
//!
//! Implement [`Harness`] (how to make a fresh broker, payloads, and how to let time pass) and
//! call [`run`]; it returns a [`Report`] naming every check that failed and why.
//!
//! ```
//! use std::time::Duration;
//! use levee_core::ManualClock;
//! use levee_queue::broker::InProcessBroker;
//! use levee_queue::broker::conformance::{self, Harness};
//!
//! struct InProcess;
//!
//! impl Harness for InProcess {
//!     type Broker = InProcessBroker<u64, ManualClock>;
//!     async fn broker(&self) -> Self::Broker {
//!         InProcessBroker::builder().clock(ManualClock::new()).build()
//!     }
//!     fn payload(&self, n: u64) -> u64 {
//!         n
//!     }
//!     fn number(&self, payload: &u64) -> u64 {
//!         *payload
//!     }
//!     async fn advance(&self, broker: &Self::Broker, by: Duration) {
//!         broker.clock().advance(by);
//!         broker.tick();
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! conformance::run(&InProcess).await.assert_passed();
//! # });
//! ```

pub mod model;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::config::{Overflow, SubscriptionConfig};
use super::dead_letter::{DeadLetterReason, Select};
use super::error::BrokerError;
use super::message::Message;
use super::nack::Nack;
use super::traits::{Broker, BrokerDelivery};

type Payload<H> = <<H as Harness>::Broker as Broker>::Payload;
type Sub<H> = <<H as Harness>::Broker as Broker>::Subscription;
type Con<H> = <<H as Harness>::Broker as Broker>::Consumer;
type Del<H> = <<H as Harness>::Broker as Broker>::Delivery;

/// What the suite needs to know about a broker under test.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_queue::broker::InProcessBroker;
/// use levee_queue::broker::conformance::{self, Harness};
///
/// /// The in-process broker on a manual clock, payloads as plain numbers.
/// struct InProcess;
///
/// impl Harness for InProcess {
///     type Broker = InProcessBroker<u64, ManualClock>;
///     async fn broker(&self) -> Self::Broker {
///         InProcessBroker::builder().clock(ManualClock::new()).build()
///     }
///     fn payload(&self, n: u64) -> u64 {
///         n
///     }
///     fn number(&self, payload: &u64) -> u64 {
///         *payload
///     }
///     async fn advance(&self, broker: &Self::Broker, by: Duration) {
///         broker.clock().advance(by);
///         broker.tick();
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let report = conformance::run(&InProcess).await;
/// assert!(report.is_ok(), "{report}");
/// # });
/// ```
pub trait Harness: Send + Sync {
    /// The broker under test.
    type Broker: Broker;

    /// A fresh broker with no topic (each check gets its own).
    fn broker(&self) -> impl Future<Output = Self::Broker> + Send;

    /// A payload standing for the number `n`.
    fn payload(&self, n: u64) -> Payload<Self>;

    /// The number a payload stands for (the inverse of [`payload`](Self::payload)).
    fn number(&self, payload: &Payload<Self>) -> u64;

    /// Lets `by` pass on the broker's clock: advance a manual clock (and tick), or sleep for
    /// a broker on real time.
    fn advance(&self, broker: &Self::Broker, by: Duration) -> impl Future<Output = ()> + Send;

    /// How long a receive waits before the suite concludes nothing is deliverable. Default
    /// 20 ms (instant under a paused tokio clock); raise it for networked brokers.
    fn quiet(&self) -> Duration {
        Duration::from_millis(20)
    }

    /// The ack wait the suite configures; time-based checks advance by multiples of it.
    fn ack_wait(&self) -> Duration {
        Duration::from_secs(2)
    }
}

/// The outcome of [`run`].
///
/// ```
/// use levee_queue::broker::conformance::Report;
///
/// let report = Report {
///     passed: vec!["ack removes the message"],
///     failed: vec![("nack redelivers", "no redelivery after 2 s".to_string())],
/// };
/// assert!(!report.is_ok());
/// // Display lists what failed and why; `assert_passed` panics with that text.
/// assert!(report.to_string().contains("nack redelivers"));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks that failed, with what went wrong.
    pub failed: Vec<(&'static str, String)>,
}

impl Report {
    /// True when every check passed.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// Panics with every failure when a check failed (for use in tests).
    ///
    /// # Panics
    /// When a check failed.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.is_ok(), "{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} passed, {} failed", self.passed.len(), self.failed.len())?;
        for (name, why) in &self.failed {
            writeln!(f, "  {name}: {why}")?;
        }
        Ok(())
    }
}

type CheckResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn ok<T, E: fmt::Debug>(what: &str, r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("{what} failed: {e:?}"))
}

/// Every check's name, in the order [`run`] runs them.
pub const CHECKS: &[&str] = &[
    "publish_receive_ack",
    "fan_out_to_every_subscription",
    "consumers_compete",
    "subject_filter",
    "nack_redelivers_after_delay",
    "ack_deadline_redelivers",
    "in_progress_extends_the_lease",
    "dropped_delivery_is_redelivered",
    "max_deliveries_then_dead_letter",
    "lease_expiries_counted_apart",
    "term_dead_letters_now",
    "dead_letters_replay_and_purge",
    "delayed_message",
    "ordering_key_one_in_flight",
    "dedup_by_message_id",
    "backlog_bound_rejects",
    "max_in_flight_per_consumer",
    "settling_twice_is_an_error",
    "zero_settings_are_errors",
    "closed_broker_refuses",
];

/// Runs every check against fresh brokers from `harness`.
pub async fn run<H: Harness>(harness: &H) -> Report {
    let mut report = Report::default();
    for &name in CHECKS {
        let broker = harness.broker().await;
        let result = run_one(harness, &broker, name).await;
        broker.close().await;
        match result {
            Ok(()) => report.passed.push(name),
            Err(why) => report.failed.push((name, why)),
        }
    }
    report
}

async fn run_one<H: Harness>(h: &H, b: &H::Broker, name: &str) -> CheckResult {
    match name {
        "publish_receive_ack" => publish_receive_ack(h, b).await,
        "fan_out_to_every_subscription" => fan_out(h, b).await,
        "consumers_compete" => consumers_compete(h, b).await,
        "subject_filter" => subject_filter(h, b).await,
        "nack_redelivers_after_delay" => nack_redelivers(h, b).await,
        "ack_deadline_redelivers" => ack_deadline_redelivers(h, b).await,
        "in_progress_extends_the_lease" => in_progress_extends(h, b).await,
        "dropped_delivery_is_redelivered" => dropped_is_redelivered(h, b).await,
        "max_deliveries_then_dead_letter" => max_deliveries(h, b).await,
        "lease_expiries_counted_apart" => lease_expiries(h, b).await,
        "term_dead_letters_now" => term_dead_letters(h, b).await,
        "dead_letters_replay_and_purge" => replay_and_purge(h, b).await,
        "delayed_message" => delayed_message(h, b).await,
        "ordering_key_one_in_flight" => ordering_key(h, b).await,
        "dedup_by_message_id" => dedup(h, b).await,
        "backlog_bound_rejects" => backlog_rejects(h, b).await,
        "max_in_flight_per_consumer" => max_in_flight(h, b).await,
        "settling_twice_is_an_error" => settle_twice(h, b).await,
        "zero_settings_are_errors" => zero_settings(h, b).await,
        "closed_broker_refuses" => closed_refuses(h, b).await,
        other => Err(format!("unknown check {other}")),
    }
}

// ----- helpers -----

fn config<H: Harness>(h: &H, name: &str) -> SubscriptionConfig {
    SubscriptionConfig::new(name).ack_wait(h.ack_wait()).backoff(Vec::new())
}

async fn subscribe<H: Harness>(
    h: &H,
    b: &H::Broker,
    topic: &str,
    config: SubscriptionConfig,
) -> Result<(Sub<H>, Con<H>), String> {
    let _ = h;
    let sub = ok("subscribe", b.subscribe(topic, config).await)?;
    let con = ok("consumer", b.consumer(&sub).await)?;
    Ok((sub, con))
}

async fn publish_n<H: Harness>(
    h: &H,
    b: &H::Broker,
    topic: &str,
    numbers: impl IntoIterator<Item = u64>,
) -> CheckResult {
    for n in numbers {
        ok("publish", b.publish(topic, Message::new(h.payload(n))).await)?;
    }
    Ok(())
}

/// Receives until `want` deliveries arrived or a quiet wait comes back empty.
async fn receive_n<H: Harness>(
    h: &H,
    b: &H::Broker,
    con: &Con<H>,
    want: usize,
) -> Result<Vec<Del<H>>, String> {
    let mut got = Vec::new();
    while got.len() < want {
        let batch = ok("receive", b.receive(con, want - got.len(), h.quiet()).await)?;
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    Ok(got)
}

async fn expect_nothing<H: Harness>(h: &H, b: &H::Broker, con: &Con<H>, when: &str) -> CheckResult {
    let batch = ok("receive", b.receive(con, 16, h.quiet()).await)?;
    ensure!(batch.is_empty(), "{when}: expected nothing deliverable, got {:?}", numbers(h, &batch));
    Ok(())
}

fn numbers<H: Harness>(h: &H, batch: &[Del<H>]) -> Vec<u64> {
    batch.iter().map(|d| h.number(d.payload())).collect()
}

async fn ack_all<H: Harness>(b: &H::Broker, batch: &[Del<H>]) -> CheckResult {
    for d in batch {
        ok("ack", b.ack(d).await)?;
    }
    Ok(())
}

// ----- checks -----

async fn publish_receive_ack<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_sub, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [1, 2, 3]).await?;
    let got = receive_n(h, b, &con, 3).await?;
    ensure!(
        numbers(h, &got) == [1, 2, 3],
        "received {:?}, want [1, 2, 3] in order",
        numbers(h, &got)
    );
    ensure!(got.iter().all(|d| d.attempt() == 1), "first deliveries must say attempt 1");
    ensure!(got.windows(2).all(|w| w[0].seq() < w[1].seq()), "sequence numbers must increase");
    ack_all::<H>(b, &got).await?;
    expect_nothing(h, b, &con, "after acking everything").await
}

async fn fan_out<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_a, ca) = subscribe(h, b, "t", config(h, "a")).await?;
    let (_b, cb) = subscribe(h, b, "t", config(h, "b")).await?;
    publish_n(h, b, "t", [1, 2]).await?;
    for (name, con) in [("a", &ca), ("b", &cb)] {
        let got = receive_n(h, b, con, 2).await?;
        ensure!(
            numbers(h, &got) == [1, 2],
            "subscription {name} got {:?}, want [1, 2]",
            numbers(h, &got)
        );
        ack_all::<H>(b, &got).await?;
    }
    Ok(())
}

async fn consumers_compete<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (sub, c1) = subscribe(h, b, "t", config(h, "s")).await?;
    let c2 = ok("consumer", b.consumer(&sub).await)?;
    publish_n(h, b, "t", 0..10).await?;
    let mut seen = Vec::new();
    loop {
        let x = ok("receive", b.receive(&c1, 3, h.quiet()).await)?;
        let y = ok("receive", b.receive(&c2, 3, h.quiet()).await)?;
        if x.is_empty() && y.is_empty() {
            break;
        }
        seen.extend(numbers(h, &x));
        seen.extend(numbers(h, &y));
        ack_all::<H>(b, &x).await?;
        ack_all::<H>(b, &y).await?;
    }
    seen.sort_unstable();
    ensure!(
        seen == (0..10).collect::<Vec<_>>(),
        "two consumers together got {seen:?}, want each of 0..10 once"
    );
    Ok(())
}

async fn subject_filter<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, star) = subscribe(h, b, "orders", config(h, "star").filter("orders.*")).await?;
    let (_t, tail) = subscribe(h, b, "orders", config(h, "tail").filter("orders.>")).await?;
    for (n, subject) in [(1, "orders.placed"), (2, "orders.placed.eu"), (3, "payments.ok")] {
        ok("publish", b.publish("orders", Message::new(h.payload(n)).subject(subject)).await)?;
    }
    let got = receive_n(h, b, &star, 3).await?;
    ensure!(numbers(h, &got) == [1], "`orders.*` got {:?}, want [1]", numbers(h, &got));
    ensure!(got[0].subject() == "orders.placed", "subject {:?}", got[0].subject());
    let got = receive_n(h, b, &tail, 3).await?;
    ensure!(numbers(h, &got) == [1, 2], "`orders.>` got {:?}, want [1, 2]", numbers(h, &got));
    Ok(())
}

async fn nack_redelivers<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [7]).await?;
    let d = receive_n(h, b, &con, 1).await?.pop().ok_or("nothing delivered")?;
    let delay = h.ack_wait() / 2;
    ok("nack", b.nack(&d, Nack::new().delay(delay)).await)?;
    expect_nothing(h, b, &con, "before the nack delay passed").await?;
    h.advance(b, delay).await;
    let d = receive_n(h, b, &con, 1).await?.pop().ok_or("not redelivered after the nack delay")?;
    ensure!(
        h.number(d.payload()) == 7 && d.attempt() == 2,
        "redelivery attempt {} of {}",
        d.attempt(),
        h.number(d.payload())
    );
    ok("ack", b.ack(&d).await)
}

async fn ack_deadline_redelivers<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [1]).await?;
    let first = receive_n(h, b, &con, 1).await?.pop().ok_or("nothing delivered")?;
    expect_nothing(h, b, &con, "while the lease runs").await?;
    h.advance(b, h.ack_wait() + h.ack_wait() / 2).await;
    let again =
        receive_n(h, b, &con, 1).await?.pop().ok_or("not redelivered after the ack deadline")?;
    ensure!(again.attempt() == 2, "redelivery says attempt {}", again.attempt());
    ensure!(b.ack(&first).await.is_err(), "acking the expired lease must fail");
    ok("ack", b.ack(&again).await)?;
    expect_nothing(h, b, &con, "after the ack").await
}

async fn in_progress_extends<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [1]).await?;
    let d = receive_n(h, b, &con, 1).await?.pop().ok_or("nothing delivered")?;
    let step = h.ack_wait() * 3 / 4;
    for _ in 0..3 {
        h.advance(b, step).await;
        ok("in_progress", b.in_progress(&d).await)?;
        expect_nothing(h, b, &con, "while the lease is being extended").await?;
    }
    ok("ack", b.ack(&d).await)
}

async fn dropped_is_redelivered<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [1]).await?;
    drop(receive_n(h, b, &con, 1).await?);
    // A dropped delivery comes back at once (in-process) or after the ack deadline (engines
    // that only see a missing ack): either way, never lost.
    let mut got = receive_n(h, b, &con, 1).await?;
    if got.is_empty() {
        h.advance(b, h.ack_wait() + h.ack_wait() / 2).await;
        got = receive_n(h, b, &con, 1).await?;
    }
    let d = got.pop().ok_or("a dropped delivery was lost")?;
    ensure!(d.attempt() == 2, "redelivery says attempt {}", d.attempt());
    ok("ack", b.ack(&d).await)
}

async fn max_deliveries<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (sub, con) = subscribe(h, b, "t", config(h, "s").max_deliveries(3)).await?;
    publish_n(h, b, "t", [5]).await?;
    for attempt in 1..=3 {
        let d =
            receive_n(h, b, &con, 1).await?.pop().ok_or(format!("attempt {attempt} missing"))?;
        ensure!(d.attempt() == attempt, "attempt {} where {attempt} was due", d.attempt());
        ok("nack", b.nack(&d, Nack::new().reason(format!("failure {attempt}"))).await)?;
    }
    expect_nothing(h, b, &con, "after the last allowed failure").await?;
    let dead = ok("dead_letters", b.dead_letters(&sub).await)?;
    ensure!(dead.len() == 1, "{} dead letters, want 1", dead.len());
    ensure!(h.number(dead[0].payload()) == 5, "wrong message dead-lettered");
    ensure!(
        dead[0].reason == DeadLetterReason::MaxDeliveries { failures: 3 },
        "reason {:?}",
        dead[0].reason
    );
    ensure!(dead[0].history.len() == 3, "history has {} attempts, want 3", dead[0].history.len());
    let reasons: Vec<_> = dead[0].history.iter().map(|a| a.reason()).collect();
    ensure!(
        reasons == [Some("failure 1"), Some("failure 2"), Some("failure 3")],
        "the history keeps the reasons {reasons:?}, want those of the three nacks"
    );
    ensure!(
        dead[0].last_reason() == Some("failure 3"),
        "the dead letter shows {:?}, want the last failure's reason",
        dead[0].last_reason()
    );
    Ok(())
}

async fn lease_expiries<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let c = config(h, "s").max_deliveries(1).max_lease_expiries(2);
    let (sub, con) = subscribe(h, b, "t", c).await?;
    publish_n(h, b, "t", [9]).await?;
    // Two crashes do not use up the single allowed handler failure...
    let d = receive_n(h, b, &con, 1).await?.pop().ok_or("nothing delivered")?;
    h.advance(b, h.ack_wait() * 2).await;
    let d2 = receive_n(h, b, &con, 1).await?.pop().ok_or("not redelivered after a crash")?;
    ensure!(d2.attempt() == 2, "attempt {}", d2.attempt());
    h.advance(b, h.ack_wait() * 2).await;
    // ...but the second expiry reaches max_lease_expiries.
    expect_nothing(h, b, &con, "after the last allowed lease expiry").await?;
    let dead = ok("dead_letters", b.dead_letters(&sub).await)?;
    ensure!(dead.len() == 1, "{} dead letters, want 1", dead.len());
    ensure!(
        dead[0].reason == DeadLetterReason::MaxLeaseExpiries { expiries: 2 },
        "reason {:?}",
        dead[0].reason
    );
    drop((d, d2));
    Ok(())
}

async fn term_dead_letters<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (sub, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [4]).await?;
    let d = receive_n(h, b, &con, 1).await?.pop().ok_or("nothing delivered")?;
    ok("term", b.term(&d, "card declined").await)?;
    expect_nothing(h, b, &con, "after term").await?;
    let dead = ok("dead_letters", b.dead_letters(&sub).await)?;
    ensure!(dead.len() == 1, "{} dead letters, want 1", dead.len());
    let want = DeadLetterReason::Terminated { reason: "card declined".into() };
    ensure!(dead[0].reason == want, "reason {:?}", dead[0].reason);
    Ok(())
}

async fn replay_and_purge<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (sub, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [1, 2]).await?;
    for d in receive_n(h, b, &con, 2).await? {
        ok("term", b.term(&d, "poison").await)?;
    }
    let dead = ok("dead_letters", b.dead_letters(&sub).await)?;
    ensure!(dead.len() == 2, "{} dead letters, want 2", dead.len());
    let first = dead
        .iter()
        .find(|l| h.number(l.payload()) == 1)
        .ok_or("message 1 not dead-lettered")?
        .seq();
    ensure!(
        ok("replay", b.replay(&sub, Select::from(first)).await)? == 1,
        "replay did not report 1"
    );
    let d = receive_n(h, b, &con, 2).await?;
    ensure!(numbers(h, &d) == [1], "after replay got {:?}, want [1]", numbers(h, &d));
    ack_all::<H>(b, &d).await?;
    ensure!(ok("purge", b.purge(&sub, Select::All).await)? == 1, "purge did not report 1");
    let dead = ok("dead_letters", b.dead_letters(&sub).await)?;
    ensure!(dead.is_empty(), "{} dead letters left after purge", dead.len());
    expect_nothing(h, b, &con, "after purge").await
}

async fn delayed_message<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    let delay = h.ack_wait();
    ok("publish", b.publish("t", Message::new(h.payload(1)).delay(delay)).await)?;
    publish_n(h, b, "t", [2]).await?;
    let got = receive_n(h, b, &con, 2).await?;
    ensure!(numbers(h, &got) == [2], "before the delay got {:?}, want [2]", numbers(h, &got));
    ack_all::<H>(b, &got).await?;
    h.advance(b, delay).await;
    let got = receive_n(h, b, &con, 2).await?;
    ensure!(numbers(h, &got) == [1], "after the delay got {:?}, want [1]", numbers(h, &got));
    ack_all::<H>(b, &got).await
}

async fn ordering_key<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    for (n, key) in [(1, "a"), (2, "a"), (3, "b"), (4, "a")] {
        ok("publish", b.publish("t", Message::new(h.payload(n)).key(key)).await)?;
    }
    let got = receive_n(h, b, &con, 4).await?;
    ensure!(
        numbers(h, &got) == [1, 3],
        "got {:?}, want the heads of keys a and b: [1, 3]",
        numbers(h, &got)
    );
    // A nacked head keeps its key: 2 must not overtake 1.
    ok("nack", b.nack(&got[0], Nack::new().delay(Duration::ZERO)).await)?;
    let again = receive_n(h, b, &con, 4).await?;
    ensure!(numbers(h, &again) == [1], "after nacking 1 got {:?}, want [1]", numbers(h, &again));
    ack_all::<H>(b, &again).await?;
    let next = receive_n(h, b, &con, 4).await?;
    ensure!(numbers(h, &next) == [2], "after acking 1 got {:?}, want [2]", numbers(h, &next));
    ack_all::<H>(b, &next).await?;
    let last = receive_n(h, b, &con, 4).await?;
    ensure!(numbers(h, &last) == [4], "after acking 2 got {:?}, want [4]", numbers(h, &last));
    ack_all::<H>(b, &last).await?;
    ack_all::<H>(b, &got[1..]).await
}

async fn dedup<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    let first = ok("publish", b.publish("t", Message::new(h.payload(1)).id("order-1")).await)?;
    let second = ok("publish", b.publish("t", Message::new(h.payload(1)).id("order-1")).await)?;
    ensure!(!first.is_duplicate(), "first publish reported as duplicate");
    ensure!(second.is_duplicate(), "second publish with the same id not reported as duplicate");
    ensure!(
        second.seq() == first.seq(),
        "duplicate names seq {} not {}",
        second.seq(),
        first.seq()
    );
    let got = receive_n(h, b, &con, 2).await?;
    ensure!(got.len() == 1, "{} deliveries of a deduplicated message", got.len());
    ensure!(got[0].message_id() == Some("order-1"), "message id {:?}", got[0].message_id());
    ack_all::<H>(b, &got).await
}

async fn backlog_rejects<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) =
        subscribe(h, b, "t", config(h, "s").max_backlog(2).overflow(Overflow::Reject)).await?;
    publish_n(h, b, "t", [1, 2]).await?;
    match b.publish("t", Message::new(h.payload(3))).await {
        Err(BrokerError::Full { .. }) => {}
        other => return Err(format!("third publish into a backlog of 2: {other:?}, want Full")),
    }
    let got = receive_n(h, b, &con, 1).await?;
    ack_all::<H>(b, &got).await?;
    ok("publish after an ack made room", b.publish("t", Message::new(h.payload(3))).await)?;
    let got = receive_n(h, b, &con, 3).await?;
    ensure!(numbers(h, &got) == [2, 3], "got {:?}, want [2, 3]", numbers(h, &got));
    ack_all::<H>(b, &got).await
}

async fn max_in_flight<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (sub, c1) = subscribe(h, b, "t", config(h, "s").max_in_flight_per_consumer(2)).await?;
    let c2 = ok("consumer", b.consumer(&sub).await)?;
    publish_n(h, b, "t", 0..5).await?;
    let a = receive_n(h, b, &c1, 5).await?;
    ensure!(a.len() == 2, "a consumer bounded to 2 in flight got {}", a.len());
    expect_nothing(h, b, &c1, "consumer at its in-flight bound").await?;
    let c = receive_n(h, b, &c2, 5).await?;
    ensure!(c.len() == 2, "second consumer got {}, want 2", c.len());
    ack_all::<H>(b, &a[..1]).await?;
    let more = receive_n(h, b, &c1, 5).await?;
    ensure!(more.len() == 1, "after one ack the consumer got {}, want 1", more.len());
    ack_all::<H>(b, &a[1..]).await?;
    ack_all::<H>(b, &c).await?;
    ack_all::<H>(b, &more).await
}

async fn settle_twice<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [1, 2]).await?;
    let got = receive_n(h, b, &con, 2).await?;
    ensure!(got.len() == 2, "got {} deliveries", got.len());
    ok("ack", b.ack(&got[0]).await)?;
    ensure!(b.ack(&got[0]).await.is_err(), "second ack succeeded");
    ensure!(b.nack(&got[0], Nack::new()).await.is_err(), "nack after ack succeeded");
    ensure!(b.term(&got[0], "x").await.is_err(), "term after ack succeeded");
    ok("term", b.term(&got[1], "x").await)?;
    ensure!(b.ack(&got[1]).await.is_err(), "ack after term succeeded");
    expect_nothing(h, b, &con, "after settling both").await
}

async fn zero_settings<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let bad = [
        config(h, "a").max_backlog(0),
        config(h, "b").max_deliveries(0),
        config(h, "c").max_in_flight_per_consumer(0),
        config(h, "d").ack_wait(Duration::ZERO),
        config(h, "e").filter("orders.>.eu"),
    ];
    for c in bad {
        let what = format!("{c:?}");
        ensure!(b.subscribe("t", c).await.is_err(), "accepted {what}");
    }
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    ensure!(b.receive(&con, 0, h.quiet()).await.is_err(), "receive of 0 messages accepted");
    Ok(())
}

async fn closed_refuses<H: Harness>(h: &H, b: &H::Broker) -> CheckResult {
    let (_s, con) = subscribe(h, b, "t", config(h, "s")).await?;
    publish_n(h, b, "t", [1]).await?;
    let got = receive_n(h, b, &con, 1).await?;
    b.close().await;
    match b.publish("t", Message::new(h.payload(2))).await {
        Err(BrokerError::Closed) => {}
        other => return Err(format!("publish after close: {other:?}, want Closed")),
    }
    match b.receive(&con, 1, h.quiet()).await {
        Err(BrokerError::Closed) => {}
        other => {
            return Err(format!("receive after close: {:?}, want Closed", other.map(|v| v.len())));
        }
    }
    // Work already handed out can still finish.
    ack_all::<H>(b, &got).await
}
