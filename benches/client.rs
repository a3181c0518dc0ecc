//! What does the service client cost per call, above the endpoint itself?
//!
//! One group, `client/call`, measured in one run on a current-thread tokio runtime. The
//! same four in-process endpoints (the same `service_fn`, answering `200 ok` at once, no
//! network) sit behind:
//!
//! - `tower_p2c`: tower's own `balance::p2c::Balance` over `PeakEwmaDiscover` (tower's
//!   peak-EWMA, Linkerd's defaults: 30 ms default RTT, 10 s decay), driven by
//!   `ready().await` then `call().await` as tower clients do: balancing only;
//! - `levee`: levee's `Client`: P2C on peak-EWMA, a breaker permit and result per call,
//!   the call's deadline (a 10 s timeout, written into the `levee-timeout` header), the
//!   retry policy with its budget (no retry happens), through `Client::send`;
//! - `levee_no_deadline`: the same without a timeout or header, to show what the
//!   deadline costs.
//!
//! Both sides build the same request per call and await the same endpoint function; the
//! setup (runtime, endpoints, balancer, client) is outside the timed span. Allocations per
//! call are printed beside the timings (counting global allocator).
//!
//! `cargo bench --bench client`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use levee_client::{Client, Endpoint, TransportError};
use levee_workspace::CountingAllocator;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::{Service, ServiceExt};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const ENDPOINTS: usize = 4;

/// The endpoint: answers at once.
async fn endpoint(request: http::Request<Bytes>) -> http::Response<Bytes> {
    black_box(request);
    http::Response::new(Bytes::from_static(b"ok"))
}

fn request() -> http::Request<Bytes> {
    http::Request::get("/products/7").body(Bytes::new()).unwrap()
}

/// Runs `call` `iters` times inside `rt` after one warm-up call and returns the time taken;
/// prints the allocations per call of a large enough batch.
fn time(
    rt: &tokio::runtime::Runtime,
    name: &str,
    iters: u64,
    mut call: impl AsyncFnMut(),
) -> Duration {
    rt.block_on(async {
        call().await;
        let allocations = ALLOC.allocations();
        let start = Instant::now();
        for _ in 0..iters {
            call().await;
        }
        let elapsed = start.elapsed();
        if iters >= 100_000 {
            let per_call = (ALLOC.allocations() - allocations) as f64 / iters as f64;
            eprintln!("allocations per call, {name}: {per_call:.2}");
        }
        elapsed
    })
}

fn levee_client(deadline: bool) -> Client<impl levee_client::Transport> {
    let endpoints =
        (0..ENDPOINTS).map(|i| Endpoint::new(&format!("http://10.0.0.{i}:80")).unwrap());
    let builder = Client::builder().endpoints(endpoints).transport(
        |_: &Endpoint, request: http::Request<Bytes>| async move {
            Ok::<_, TransportError>(endpoint(request).await)
        },
    );
    let builder = if deadline {
        builder.timeout(Duration::from_secs(10))
    } else {
        builder.no_timeout().propagate_deadline(false)
    };
    builder.build().unwrap()
}

fn call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let mut group = c.benchmark_group("client/call");
    group.throughput(Throughput::Elements(1));

    let mut balance = rt.block_on(async {
        let services = (0..ENDPOINTS).map(|_| {
            tower::service_fn(|request: http::Request<Bytes>| async move {
                Ok::<_, Infallible>(endpoint(request).await)
            })
        });
        Balance::new(PeakEwmaDiscover::new(
            ServiceList::new(services.collect::<Vec<_>>()),
            Duration::from_millis(30),
            Duration::from_secs(10),
            CompleteOnResponse::default(),
        ))
    });
    group.bench_function("tower_p2c", |b| {
        b.iter_custom(|iters| {
            time(&rt, "tower_p2c", iters, async || {
                let response = balance.ready().await.unwrap().call(request()).await.unwrap();
                black_box(response);
            })
        });
    });

    for (name, deadline) in [("levee", true), ("levee_no_deadline", false)] {
        let client = levee_client(deadline);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                time(&rt, name, iters, async || {
                    black_box(client.send(request()).await.unwrap());
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, call);
criterion_main!(benches);
