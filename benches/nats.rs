//! What does levee's `Broker` on NATS JetStream cost over using `async-nats` directly?
//!
//! `cargo bench --bench nats` (needs `nats-server` 2.12+: `LEVEE_NATS_SERVER_BIN` or on PATH;
//! `source .ci/nats.sh` installs one). The bench starts its own server on 127.0.0.1 with a
//! temporary store and stops it at the end; without a server binary it says so and exits.
//!
//! One group, `nats/publish_receive_ack`, one round = 100 messages: publish each and wait for
//! JetStream's PubAck, then pull them with batched fetches (`no_wait` + `expires`) from a
//! durable pull consumer and ack each. JSON `u64` payloads on both sides, one connection
//! each, the same 2-worker tokio runtime and the same timing (`iter_custom`, wall clock
//! around whole rounds).
//!
//! Like for like: the raw rows run on a topic that levee created (`subscribe` on another
//! prefix), so the server does the same work for both: the same stream (interest retention,
//! discard-new, file storage, dedup window, the delay stream it sources), the same durable
//! consumer (explicit acks, ack wait, the two filter subjects of a levee subscription) and
//! subjects of the same shape.
//!
//! - `levee`: `NatsBroker::publish` / `receive` / `ack` through the `Broker` trait, with
//!   `confirm_acks(false)`: fire-and-forget acks.
//! - `async-nats`: `jetstream::Context::publish(..).await?.await?`, `Consumer::fetch()`,
//!   `Message::ack()`: the client's documented fast path, fire-and-forget acks.
//! - `_confirmed`: the same with acks confirmed by the server: levee's default
//!   `confirm_acks`, and `Message::double_ack()` on the raw side. Only these two compare
//!   with each other: a confirmed ack waits a round trip that a plain ack does not.
//! - `async-nats_plain`: raw on a plain stream (one subject, one unfiltered consumer, no
//!   sources): what levee's layout (filters, delay stream, dedup) costs on the server; not
//!   a like-for-like pair with anything.
//!
//! Each row runs twice: `nats/publish_receive_ack` times whole rounds on the wall clock;
//! `nats/publish_receive_ack_cpu` counts the CPU time the bench process and the server
//! spent on them instead (the scheduler's per-thread accounting), which waiting for a core
//! on a shared machine does not inflate. Criterion prints it as "time".

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
    /// async-nats publishing to a subject; `true`: acks confirmed by the server.
    Raw(&'a jetstream::Context, &'a PullConsumer, &'static str, bool),
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
    subject: &'static str,
    next: &mut u64,
    confirmed: bool,
) {
    for _ in 0..ROUND {
        let payload = serde_json::to_vec(next).expect("encode");
        js.publish(subject, payload.into()).await.expect("publish").await.expect("puback");
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

/// A fixed instant the wall clock is read against.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// CPU time (ns) every thread of process `pid` (`self` for this one) has run so far, from
/// the scheduler's own accounting (`/proc/<pid>/task/*/schedstat`); 0 where there is none.
fn cpu_nanos(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A levee broker on `prefix` with the bench's subscription, and a consumer of it.
async fn levee_side(
    url: &str,
    prefix: &str,
    confirm_acks: bool,
) -> (NatsBroker<u64>, levee_nats::NatsConsumer) {
    let broker = NatsBroker::<u64>::builder(url)
        .prefix(prefix)
        .confirm_acks(confirm_acks)
        .connect()
        .await
        .expect("connect");
    let config = SubscriptionConfig::new("bench").ack_wait(ACK_WAIT);
    let sub = broker.subscribe("bench", config).await.expect("subscribe");
    let consumer = broker.consumer(&sub).await.expect("consumer");
    (broker, consumer)
}

/// Where the raw rows publish on levee's layout: a message of topic `bench` with subject
/// `bench`, no ordering key, for every subscription (see levee-nats' `names`).
const RAW_SUBJECT: &str = "lbenchr.t.bench._._.bench";
/// Where the plain row publishes.
const PLAIN_SUBJECT: &str = "rawbench.x";

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
    let ((levee, levee_consumer), (levee_confirmed, levee_confirmed_consumer)) =
        rt.block_on(async {
            (levee_side(&url, "lbench", false).await, levee_side(&url, "lbenchc", true).await)
        });
    let (js, raw_consumer, plain_consumer) = rt.block_on(async {
        // The raw rows' stream and consumer are levee's: created through a broker, then used
        // with async-nats alone (the broker is dropped before the bench starts).
        let (layout, _) = levee_side(&url, "lbenchr", true).await;
        drop(layout);
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let js = jetstream::new(client);
        let raw: PullConsumer = js
            .get_stream("lbenchr-T-bench")
            .await
            .expect("levee's stream")
            .get_consumer("bench")
            .await
            .expect("levee's consumer");
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
        let plain: PullConsumer = stream
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
        (js, raw, plain)
    });

    let mut c = Criterion::default().configure_from_args();
    let mut next = 0;
    let cases = [
        ("levee", Side::Levee(&levee, &levee_consumer)),
        ("async-nats", Side::Raw(&js, &raw_consumer, RAW_SUBJECT, false)),
        ("levee_confirmed", Side::Levee(&levee_confirmed, &levee_confirmed_consumer)),
        ("async-nats_confirmed", Side::Raw(&js, &raw_consumer, RAW_SUBJECT, true)),
        ("async-nats_plain", Side::Raw(&js, &plain_consumer, PLAIN_SUBJECT, false)),
    ];
    let server_pid = server.child.id();
    // Wall clock, and the CPU time the bench process and the server spent (what a shared,
    // loaded machine distorts least: waiting for a core is not counted).
    let clocks: [(&str, &dyn Fn() -> u64); 2] = [
        ("nats/publish_receive_ack", &|| u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(0)),
        ("nats/publish_receive_ack_cpu", &|| {
            cpu_nanos("self") + cpu_nanos(&server_pid.to_string())
        }),
    ];
    for (group_name, clock) in clocks {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(ROUND));
        group.sample_size(20);
        for (name, side) in cases {
            group.bench_function(name, |b| {
                b.iter_custom(|rounds| {
                    rt.block_on(async {
                        let start = clock();
                        for _ in 0..rounds {
                            match side {
                                Side::Levee(broker, consumer) => {
                                    levee_round(broker, consumer, &mut next).await;
                                }
                                Side::Raw(js, consumer, subject, confirmed) => {
                                    raw_round(js, consumer, subject, &mut next, confirmed).await;
                                }
                            }
                        }
                        Duration::from_nanos(clock().saturating_sub(start))
                    })
                });
            });
        }
        group.finish();
    }
    c.final_summary();
    drop(server);
}
