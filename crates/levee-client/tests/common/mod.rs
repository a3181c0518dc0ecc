//! Small axum servers on 127.0.0.1 whose latency and status a test sets, and that count
//! what they receive. Latency is a sleep on the test's `ManualClock`, which under paused
//! tokio time moves the clock the client measures with: latencies are exact and no test
//! waits for real time.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use levee_client::{Endpoint, TIMEOUT_HEADER};
use levee_core::{Clock, ManualClock};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

/// What a test server does, changed by the test as it runs.
#[derive(Debug)]
pub struct Behaviour {
    pub name: &'static str,
    pub clock: ManualClock,
    pub latency_ms: AtomicU64,
    pub status: AtomicU16,
    /// Requests received.
    pub hits: AtomicU64,
    /// Requests whose handler ran to the end.
    pub completed: AtomicU64,
    /// The `levee-timeout` header of the last request.
    pub last_timeout: Mutex<Option<String>>,
}

impl Behaviour {
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// A running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub behaviour: Arc<Behaviour>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(&format!("http://{}", self.addr)).unwrap()
    }
}

async fn handle(State(b): State<Arc<Behaviour>>, headers: HeaderMap) -> (StatusCode, String) {
    b.hits.fetch_add(1, Ordering::Relaxed);
    *b.last_timeout.lock() =
        headers.get(TIMEOUT_HEADER).map(|v| v.to_str().unwrap_or("?").to_owned());
    let latency = b.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        b.clock.sleep(Duration::from_millis(latency)).await;
    }
    b.completed.fetch_add(1, Ordering::Relaxed);
    let status = StatusCode::from_u16(b.status.load(Ordering::Relaxed)).unwrap();
    (status, b.name.to_owned())
}

/// The router of a test server, for tests that add layers.
pub fn router(behaviour: Arc<Behaviour>) -> Router {
    Router::new().route("/{*path}", any(handle)).with_state(behaviour)
}

pub fn behaviour(name: &'static str, clock: &ManualClock, latency: Duration) -> Arc<Behaviour> {
    Arc::new(Behaviour {
        name,
        clock: clock.clone(),
        latency_ms: AtomicU64::new(latency.as_millis() as u64),
        status: AtomicU16::new(200),
        hits: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        last_timeout: Mutex::new(None),
    })
}

/// Starts a server named `name` answering 200 after `latency`.
pub async fn server(name: &'static str, clock: &ManualClock, latency: Duration) -> TestServer {
    let behaviour = behaviour(name, clock, latency);
    serve(router(behaviour.clone()), behaviour).await
}

/// Serves `app` on a fresh 127.0.0.1 port.
pub async fn serve(app: Router, behaviour: Arc<Behaviour>) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestServer { addr, behaviour, task }
}

/// Milliseconds on `clock` since `start`.
pub fn ms_since(clock: &ManualClock, start: u64) -> u64 {
    (clock.now() - start) / 1_000_000
}
