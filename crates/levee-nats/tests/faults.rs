//! Faults against a real nats-server that each test starts, kills and restarts itself:
//! a restart mid-stream, an unreachable server, a slow consumer, a lost publish confirmation.
//!
//! Every wait is bounded; the tests use loopback only.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use levee_nats::{NatsBroker, Storage};
use levee_queue::broker::{
    Broker, BrokerDelivery, BrokerError, Message, Overflow, Publish, SubscriptionConfig,
};
use support::Server;

async fn connect(url: &str, tag: &str) -> NatsBroker<u64> {
    NatsBroker::<u64>::builder(url)
        .prefix(support::prefix(tag))
        .storage(Storage::File)
        .request_timeout(Duration::from_millis(750))
        .connect_timeout(Duration::from_secs(2))
        .full_wait(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect")
}

/// Publishes `n` with id `m-n`, retrying an unavailable server for up to `for_at_most`.
async fn publish_retrying(b: &NatsBroker<u64>, n: u64, for_at_most: Duration) -> Publish {
    let started = Instant::now();
    loop {
        match b.publish("t", Message::new(n).id(format!("m-{n}"))).await {
            Ok(p) => return p,
            Err(e) if e.is_transient() && started.elapsed() < for_at_most => {
                support::pause(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish {n}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_stream_loses_nothing_confirmed() {
    let Some(mut server) = Server::start("restart") else { return };
    let b = connect(&server.url(), "restart").await;
    let sub = b
        .subscribe("t", SubscriptionConfig::new("s").ack_wait(Duration::from_secs(2)))
        .await
        .unwrap();
    let c = b.consumer(&sub).await.unwrap();
    for n in 0..20 {
        b.publish("t", Message::new(n).id(format!("m-{n}"))).await.unwrap();
    }
    let mut handled = BTreeSet::new();
    for d in b.receive(&c, 5, Duration::from_secs(1)).await.unwrap() {
        b.ack(&d).await.unwrap();
        handled.insert(*d.payload());
    }
    assert_eq!(handled.len(), 5);
    // Two more in flight when the server dies: they come back after the restart.
    let in_flight = b.receive(&c, 2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(in_flight.len(), 2);

    server.kill();
    let started = Instant::now();
    let down = b.publish("t", Message::new(20).id("m-20")).await;
    assert!(
        matches!(down, Err(BrokerError::Unavailable { .. })),
        "publish to a dead server: {down:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "publish waited {:?}", started.elapsed());
    let acked = b.ack(&in_flight[0]).await;
    assert!(
        matches!(acked, Err(BrokerError::Unavailable { .. })),
        "ack to a dead server: {acked:?}"
    );
    drop(in_flight);

    server.restart();
    // The client reconnects by itself; message 20 may have gone out from its buffer on
    // reconnect, so its retry is deduplicated, never stored twice.
    publish_retrying(&b, 20, Duration::from_secs(15)).await;
    for n in 21..25 {
        publish_retrying(&b, n, Duration::from_secs(5)).await;
    }
    let mut deliveries: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while handled.len() < 25 && Instant::now() < deadline {
        match b.receive(&c, 25, Duration::from_millis(500)).await {
            Ok(batch) => {
                for d in batch {
                    deliveries.push(*d.payload());
                    b.ack(&d).await.unwrap();
                    handled.insert(*d.payload());
                }
            }
            Err(e) if e.is_transient() => support::pause(Duration::from_millis(50)).await,
            Err(e) => panic!("receive after restart: {e}"),
        }
    }
    assert_eq!(handled, (0..25).collect::<BTreeSet<_>>(), "every confirmed message handled");
    let twenties = deliveries.iter().filter(|&&n| n == 20).count();
    assert_eq!(twenties, 1, "the retried publish of 20 was stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_a_typed_error_without_a_hang() {
    let Some(mut server) = Server::start("down") else { return };
    let url = server.url();
    server.kill();
    let started = Instant::now();
    let refused = NatsBroker::<u64>::builder(url.as_str())
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await;
    assert!(matches!(refused, Err(BrokerError::Unavailable { .. })), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "connect waited {:?}", started.elapsed());

    server.restart();
    let b = connect(&url, "down").await;
    let sub = b.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    let c = b.consumer(&sub).await.unwrap();
    server.kill();
    let started = Instant::now();
    let published = b.publish("t", Message::new(1)).await;
    assert!(matches!(published, Err(BrokerError::Unavailable { .. })), "{published:?}");
    let received = b.receive(&c, 1, Duration::from_millis(200)).await;
    assert!(
        matches!(received, Err(BrokerError::Unavailable { .. })),
        "receive: {:?}",
        received.map(|v| v.len())
    );
    let subscribed = b.subscribe("u", SubscriptionConfig::new("s")).await;
    assert!(matches!(subscribed, Err(BrokerError::Unavailable { .. })), "{subscribed:?}");
    // Three operations, each bounded by request_timeout (750 ms) plus the receive's wait.
    assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_flow_controlled() {
    let Some(server) = Server::start("slow") else { return };
    let b = connect(&server.url(), "slow").await;
    // The consumer side: a consumer holds at most its in-flight bound however much is asked.
    let config = SubscriptionConfig::new("s")
        .max_in_flight_per_consumer(4)
        .max_backlog(10)
        .overflow(Overflow::Wait);
    let sub = b.subscribe("t", config).await.unwrap();
    let slow = b.consumer(&sub).await.unwrap();
    for n in 0..10 {
        b.publish("t", Message::new(n)).await.unwrap();
    }
    let held = b.receive(&slow, 10, Duration::from_millis(500)).await.unwrap();
    assert_eq!(held.len(), 4, "a consumer bounded to 4 in flight");
    assert!(b.receive(&slow, 10, Duration::from_millis(100)).await.unwrap().is_empty());

    // The publisher side: the topic is full (10 held), so a publish waits for room...
    let publisher = b.clone();
    let waiting = tokio::spawn(async move { publisher.publish("t", Message::new(10)).await });
    support::pause(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a publish into a full topic with Overflow::Wait waits");
    // ...and goes through once the slow consumer acks one.
    b.ack(&held[0]).await.unwrap();
    let published = tokio::time::timeout(Duration::from_secs(3), waiting).await;
    assert!(matches!(published, Ok(Ok(Ok(Publish::Published { .. })))), "{published:?}");

    // Without room for full_wait (2 s), the publish gives up with Full.
    let started = Instant::now();
    let full = b.publish("t", Message::new(11)).await;
    assert!(matches!(full, Err(BrokerError::Full { capacity: 10, .. })), "{full:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "waited {:?}", started.elapsed());
    for d in &held[1..] {
        b.ack(d).await.unwrap();
    }
}

/// A TCP proxy in front of the server that can swallow the server's replies (a confirmation
/// lost on the way back) and then cut every connection (the client reconnects through it).
struct Proxy {
    port: u16,
    mute: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mute = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (m, c) = (Arc::clone(&mute), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let mute = Arc::clone(&m);
                let task = tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::io::copy(&mut cr, &mut sw);
                    let down = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = sr.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            if !mute.load(Ordering::SeqCst) {
                                cw.write_all(&buf[..n]).await?;
                            }
                        }
                    };
                    let _ = tokio::join!(up, down);
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { port, mute, conns, accept }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn mute(&self, on: bool) {
        self.mute.store(on, Ordering::SeqCst);
    }

    /// Drops every connection (the client sees a disconnect) and stops muting.
    fn cut(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
        self.mute(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_confirmation_was_lost_is_retried_safely() {
    let Some(server) = Server::start("lost") else { return };
    let proxy = Proxy::start(server.port).await;
    let b = connect(&proxy.url(), "lost").await;
    let sub = b.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    let c = b.consumer(&sub).await.unwrap();

    // The publish reaches the server, which stores it; its confirmation never comes back.
    proxy.mute(true);
    let first = b.publish("t", Message::new(7).id("order-7")).await;
    assert!(matches!(first, Err(BrokerError::Unavailable { .. })), "{first:?}");
    proxy.cut();

    // Not knowing whether it was stored, the caller retries with the same id: the server
    // recognises it, so the retry is safe.
    let started = Instant::now();
    let retried = loop {
        match b.publish("t", Message::new(7).id("order-7")).await {
            Ok(p) => break p,
            Err(e) if e.is_transient() && started.elapsed() < Duration::from_secs(15) => {
                support::pause(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("retry: {e}"),
        }
    };
    assert!(retried.is_duplicate(), "the lost publish was stored; the retry is a duplicate");
    let mut got = Vec::new();
    loop {
        let batch = b.receive(&c, 10, Duration::from_millis(300)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for d in batch {
            got.push((*d.payload(), d.message_id().map(str::to_owned)));
            b.ack(&d).await.unwrap();
        }
    }
    assert_eq!(got, vec![(7, Some("order-7".to_owned()))], "delivered exactly once");
}
