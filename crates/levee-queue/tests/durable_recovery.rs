//! Recovery of a million pending messages: opening a log that holds 1 000 000 unacked
//! 100-byte messages rebuilds the subscription with every one of them. Release builds only
//! (`.ci/durable.sh` runs it); it prints how long opening took, the figure the README quotes.

use std::time::{Duration, Instant};

use levee_queue::broker::{Message, SubscriptionConfig};
use levee_queue::durable::{DurableBroker, DurableSettings, FsyncPolicy};

const N: u64 = 1_000_000;

#[test]
#[cfg_attr(debug_assertions, ignore = "a million messages: release builds only")]
fn recovers_a_million_pending_messages() {
    let dir = tempfile::tempdir().unwrap();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let settings = DurableSettings::new().fsync(FsyncPolicy::Never);
    rt.block_on(async {
        let broker = DurableBroker::<Vec<u8>>::open(dir.path(), settings.clone()).unwrap();
        let config = SubscriptionConfig::new("s").max_backlog(2 * N as usize);
        broker.subscribe("t", config).await.unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let broker = broker.clone();
                tokio::spawn(async move {
                    for i in (t..N).step_by(64) {
                        let mut payload = vec![0u8; 100];
                        payload[..8].copy_from_slice(&i.to_le_bytes());
                        broker.publish("t", Message::new(payload)).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        broker.shutdown();
    });
    let cpu_before = thread_cpu();
    let started = Instant::now();
    let broker = DurableBroker::<Vec<u8>>::open(dir.path(), settings).unwrap();
    let took = started.elapsed();
    let cpu = thread_cpu().zip(cpu_before).map(|(a, b)| Duration::from_nanos(a - b));
    let sub = broker.subscription("t", "s").unwrap();
    assert_eq!(sub.stats().depth, N as usize);
    assert_eq!(broker.recovery().messages, N as usize);
    println!(
        "recovered {N} pending messages ({} MB of log) in {took:?} wall, {cpu:?} on the opening thread's CPU (the wall figure is only meaningful on an idle machine)",
        broker.recovery().bytes >> 20,
    );
    rt.block_on(async {
        let c = sub.consumer().unwrap();
        let first = c.receive_timeout(1, Some(Duration::from_secs(1))).await.unwrap();
        assert_eq!(first[0].payload().len(), 100);
        assert_eq!(first[0].seq(), 1);
    });
}

/// CPU time of this thread (Linux), to tell the work from the waiting on a loaded machine.
fn thread_cpu() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
