//! What the integration tests share: the URL of CI's Redis, and Redis servers of their own
//! for the tests that stop and restart one.
#![allow(dead_code, unreachable_pub)] // each test file uses part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// CI's shared Redis (`.ci/redis.sh`), or `None` (skipped) locally without one.
pub fn shared_url() -> Option<String> {
    levee_core::testing::server_url("LEVEE_TEST_REDIS_URL", "redis")
}

/// A key no other test run uses.
pub fn unique_key(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}:{}:{nanos}:{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` this test started on 127.0.0.1 (no persistence), killed on drop.
pub struct RedisServer {
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one from `LEVEE_REDIS_SERVER_BIN`, or `None` (skipped) locally without it.
    pub fn start() -> Option<Self> {
        let bin = levee_core::testing::server_url("LEVEE_REDIS_SERVER_BIN", "redis-server")?;
        let mut server = Self { bin: bin.into(), port: free_port(), child: None };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (as a crash would: no shutdown handshake).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server on the same port and waits (at most 10 s) until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &std::env::temp_dir().display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
                {
                    if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                        return;
                    }
                }
            }
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
