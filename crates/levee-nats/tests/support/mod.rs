//! Shared by the integration tests: brokers with their own prefix on the shared server, and
//! removing what a test created.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::TryStreamExt;
use levee_nats::{NatsBroker, Storage};

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
