//! What does levee's `Broker` on NATS JetStream cost over using `async-nats` directly?
//!
//! `cargo bench --bench nats` (needs `nats-server` 2.12+: `LEVEE_NATS_SERVER_BIN` or on PATH;
//! `source .ci/nats.sh` installs one). The bench starts its own server on 127.0.0.1 with a
//! temporary store and stops it at the end; without a server binary it says so and exits.
//!
//! One group, `nats/publish_receive_ack`, one round = 100 messages: publish each and wait for
//! JetStream's PubAck, then pull them with batched fetches (`no_wait` + `expires`) from a
//! durable pull consumer and ack each. Both sides use the same stream settings (file storage,
//! interest retention, discard-new), the same consumer settings (explicit acks, the same
//! ack wait), JSON `u64` payloads, one connection each, the same 2-worker tokio runtime and
//! the same timing (`iter_custom`, wall clock around whole rounds).
//!
//! - `levee`: `NatsBroker::publish` / `receive` / `ack` through the `Broker` trait.
//! - `async-nats`: `jetstream::Context::publish(..).await?.await?`, `Consumer::fetch()`,
//!   `Message::ack()`: the client's documented fast path.
//! - `_confirmed`: the same with acks confirmed by the server: levee's default
//!   `confirm_acks`, and `Message::double_ack()` on the raw side.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer, stream};
use criterion::{Criterion, Throughput};
use futures::StreamExt;
use levee_nats::NatsBroker;
use levee_queue::broker::{Broker, BrokerDelivery, Message, SubscriptionConfig};

const ROUND: u64 = 100;
const ACK_WAIT: Duration = Duration::from_secs(30);

/// A nats-server on loopback for the length of the bench.
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Server {
    fn start() -> Option<Self> {
        let bin = std::env::var_os("LEVEE_NATS_SERVER_BIN").map(PathBuf::from).or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("levee-bench-nats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new(bin)
            .args(["--jetstream", "--store_dir"])
            .arg(dir.join("store"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Self { child, dir, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Who does the work of a case.
#[derive(Clone, Copy)]
enum Side<'a> {
    Levee(&'a NatsBroker<u64>, &'a levee_nats::NatsConsumer),
    /// async-nats; `true`: acks confirmed by the server.
    Raw(&'a jetstream::Context, &'a PullConsumer, bool),
}

/// levee: one round through the `Broker` trait.
async fn levee_round(
    broker: &NatsBroker<u64>,
    consumer: &levee_nats::NatsConsumer,
    next: &mut u64,
) {
    for _ in 0..ROUND {
        broker.publish("bench", Message::new(*next)).await.expect("publish");
        *next += 1;
    }
    let mut got = 0;
    while got < ROUND {
        let batch = broker
            .receive(consumer, (ROUND - got) as usize, Duration::from_secs(1))
            .await
            .expect("receive");
        for d in &batch {
            std::hint::black_box(d.payload());
            broker.ack(d).await.expect("ack");
        }
        got += batch.len() as u64;
    }
}

/// async-nats: the same work by hand.
async fn raw_round(
    js: &jetstream::Context,
    consumer: &PullConsumer,
    next: &mut u64,
    confirmed: bool,
) {
    for _ in 0..ROUND {
        let payload = serde_json::to_vec(next).expect("encode");
        js.publish("rawbench.x", payload.into()).await.expect("publish").await.expect("puback");
        *next += 1;
    }
    let mut got = 0;
    while got < ROUND {
        let mut batch = consumer
            .fetch()
            .max_messages((ROUND - got) as usize)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .expect("fetch");
        while let Some(message) = batch.next().await {
            let message = message.expect("message");
            let n: u64 = serde_json::from_slice(&message.payload).expect("decode");
            std::hint::black_box(n);
            if confirmed {
                message.double_ack().await.expect("ack");
            } else {
                message.ack().await.expect("ack");
            }
            got += 1;
        }
    }
}

fn main() {
    let Some(server) = Server::start() else {
        eprintln!("skipped: benches/nats.rs needs nats-server (LEVEE_NATS_SERVER_BIN or PATH)");
        return;
    };
    let url = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = SubscriptionConfig::new("bench").ack_wait(ACK_WAIT);
    let (levee, levee_confirmed, levee_consumer, levee_confirmed_consumer) = rt.block_on(async {
        let fast = NatsBroker::<u64>::builder(url.as_str())
            .prefix("lbench")
            .confirm_acks(false)
            .connect()
            .await
            .expect("connect");
        let sub = fast.subscribe("bench", config.clone()).await.expect("subscribe");
        let consumer = fast.consumer(&sub).await.expect("consumer");
        let confirmed = NatsBroker::<u64>::builder(url.as_str())
            .prefix("lbenchc")
            .connect()
            .await
            .expect("connect");
        let sub = confirmed.subscribe("bench", config.clone()).await.expect("subscribe");
        let confirmed_consumer = confirmed.consumer(&sub).await.expect("consumer");
        (fast, confirmed, consumer, confirmed_consumer)
    });
    let (js, raw_consumer) = rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let js = jetstream::new(client);
        let stream = js
            .create_stream(stream::Config {
                name: "RAWBENCH".into(),
                subjects: vec!["rawbench.>".into()],
                retention: stream::RetentionPolicy::Interest,
                discard: stream::DiscardPolicy::New,
                max_messages: 100_000,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .expect("stream");
        let consumer: PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some("bench".into()),
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 10_000,
                ..Default::default()
            })
            .await
            .expect("consumer");
        (js, consumer)
    });

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("nats/publish_receive_ack");
    group.throughput(Throughput::Elements(ROUND));
    group.sample_size(20);
    let mut next = 0;
    let cases = [
        ("levee", Side::Levee(&levee, &levee_consumer)),
        ("async-nats", Side::Raw(&js, &raw_consumer, false)),
        ("levee_confirmed", Side::Levee(&levee_confirmed, &levee_confirmed_consumer)),
        ("async-nats_confirmed", Side::Raw(&js, &raw_consumer, true)),
    ];
    for (name, side) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|rounds| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..rounds {
                        match side {
                            Side::Levee(broker, consumer) => {
                                levee_round(broker, consumer, &mut next).await;
                            }
                            Side::Raw(js, consumer, confirmed) => {
                                raw_round(js, consumer, &mut next, confirmed).await;
                            }
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
    c.final_summary();
    drop(server);
}
