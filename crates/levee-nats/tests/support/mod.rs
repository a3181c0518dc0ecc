//! Shared by the integration tests: brokers with their own prefix on the shared server, and
//! removing what a test created.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::TryStreamExt;
use levee_nats::{NatsBroker, Storage};

/// Waits on real time; only where a real server needs it.
pub async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The shared server's URL (skips locally without one; fails under CI=true).
pub fn url() -> Option<String> {
    levee_core::testing::server_url("LEVEE_TEST_NATS_URL", "nats")
}

/// A prefix no other test run uses: process id, a counter, and the test's tag.
pub fn prefix(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("lt{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), tag)
}

/// A broker on `url` with a fresh prefix, in-memory streams, short timeouts.
pub async fn broker<T>(url: &str, tag: &str) -> NatsBroker<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    NatsBroker::<T>::builder(url)
        .prefix(prefix(tag))
        .storage(Storage::Memory)
        .request_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .full_wait(Duration::from_millis(500))
        .connect()
        .await
        .expect("connect to the test server")
}

/// Deletes every stream whose name starts with `prefix` (topics, delay and dead-letter
/// streams, and the KV buckets' streams).
pub async fn remove_streams(url: &str, prefix: &str) {
    let Ok(client) = async_nats::connect(url).await else { return };
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = match js.stream_names().try_collect().await {
        Ok(names) => names,
        Err(_) => return,
    };
    for name in names {
        if name.starts_with(prefix) || name.starts_with(&format!("KV_{prefix}")) {
            let _ = js.delete_stream(&name).await;
        }
    }
}

/// A nats-server process a test starts, kills and restarts itself (on loopback, a free port,
/// its store in a temporary directory). Killed on drop.
pub struct Server {
    bin: std::path::PathBuf,
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

/// The nats-server binary: `LEVEE_NATS_SERVER_BIN`, else `nats-server` on PATH. Locally
/// without one the test is skipped (with a message); under CI=true that is a failure.
pub fn server_bin() -> Option<std::path::PathBuf> {
    if let Some(bin) = std::env::var_os("LEVEE_NATS_SERVER_BIN").filter(|b| !b.is_empty()) {
        return Some(bin.into());
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|d| d.join("nats-server")).find(|p| p.is_file())
    });
    if on_path.is_none() {
        levee_core::testing::server_url("LEVEE_NATS_SERVER_BIN", "nats fault")?;
    }
    on_path
}

impl Server {
    /// Starts a server; `None` (skipped) when there is no binary.
    pub fn start(tag: &str) -> Option<Self> {
        let bin = server_bin()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("levee-nats-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut server = Self { bin, port, dir, child: None };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, on the same port and store) and waits until it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let child = std::process::Command::new(&self.bin)
            .args(["--jetstream", "--store_dir"])
            .arg(self.dir.join("store"))
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "--log"])
            .arg(self.dir.join("server.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
