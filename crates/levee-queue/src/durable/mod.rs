//! A durable broker: topics, subscriptions and messages in a directory on disk that survive
//! a crash, with the in-process broker's delivery rules (it runs the same engine) and the
//! same [`Broker`](crate::broker::Broker) trait, so it passes the same conformance suite.
//!
//! How it works. Every change that must survive a crash is a record in an append-only log
//! of segment files (`<dir>/<base>.seg`), each record framed with its length, its position
//! and a CRC-32C. A publish, a delivery, an ack, a nack (with its delay), a lease expiry, a
//! dead-lettering, a replay and a purge each append one record; on open, the log is read
//! from the start and every subscription's engine is rebuilt from it. One commit thread
//! writes what accumulated and fsyncs once for all of it (group commit): a publish is
//! confirmed, and becomes deliverable, only after the fsync that covers it. A message in
//! flight when the process died is redelivered on open, counted as a lease expiry.
//!
//! Segments are preallocated ([`DurableSettings::preallocate`], on by default): a thread of
//! their own writes the next segment file as zeros ahead of time, so appending never creates
//! or grows a file and the `fdatasync` before a confirm has only data to flush, not a new
//! file size. On open, the zeros after a segment's last record read as its end.
//!
//! Retention: once at least half of the oldest segment is dead (its messages acked, purged
//! or dropped), what is still alive in it is copied to the end of the log and the segment is
//! deleted, so the log stays within about twice what the subscriptions hold. A disk budget
//! ([`DurableSettings::max_disk_bytes`]) makes publishes wait or fail when it is reached.
//!
//! | [`FsyncPolicy`] | confirmed when | process crash (`kill -9`) loses | machine crash loses | cost |
//! |---|---|---|---|---|
//! | `Always` (default) | fsynced | nothing confirmed | nothing confirmed | one fsync per group: latency of one fsync per publish, throughput from grouping |
//! | `EveryMillis(n)` | written to the OS | nothing confirmed | up to `n` ms of confirmed work | one fsync per `n` ms |
//! | `Never` | written to the OS | nothing confirmed | whatever the kernel had not written back | no fsync |
//!
//! Corruption: a torn tail (the unfinished writes of a crash) is cut at the last whole
//! record on open. A damaged record in the middle of the log (a later record proves the
//! damaged bytes had been fsynced) is an [`OpenError::Corrupt`], or, as
//! [`OnCorruption`] says, the broker opens read-only or skips it.
//!
//! ```
//! use levee_queue::broker::{Message, SubscriptionConfig};
//! use levee_queue::durable::{DurableBroker, DurableSettings};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("levee-durable-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! {
//!     let broker = DurableBroker::<String>::open(&dir, DurableSettings::new()).unwrap();
//!     let sub = broker.subscribe("orders", SubscriptionConfig::new("payment")).await.unwrap();
//!     broker.publish("orders", Message::new("order 1".to_string())).await.unwrap(); // on disk
//!     let _ = sub;
//! } // dropped: as good as a crash here, nothing was acked
//! let broker = DurableBroker::<String>::open(&dir, DurableSettings::new()).unwrap();
//! let sub = broker.subscription("orders", "payment").unwrap();
//! let consumer = sub.consumer().unwrap();
//! let batch = consumer.receive(10).await.unwrap();
//! assert_eq!(batch[0].payload(), "order 1");
//! batch[0].ack().await.unwrap();
//! # drop(batch); drop(consumer); drop(sub); drop(broker);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```

mod broker;
mod codec;
mod error;
mod file;
mod frame;
mod handles;
mod log;
mod record;
mod recover;
mod seqmap;
mod settings;
mod state;
#[cfg(test)]
mod tests;

/// Internals for the fuzz targets (`fuzz/fuzz_targets/durable_recovery.rs`).
#[cfg(fuzzing)]
pub mod fuzz {
    use std::path::Path;
    use std::sync::Arc;

    use super::file::MemStorage;
    use super::{DurableBroker, DurableSettings, OnCorruption, record};

    /// Decodes `body` as a broker record: an error or a record, never a panic.
    pub fn decode_record(body: &[u8]) -> bool {
        record::decode_all(body).is_ok()
    }

    /// Opens a broker whose log is `segments` (each the bytes of one segment file, bases
    /// taken from their position in the stream) under every corruption policy: a typed
    /// error or a broker, never a panic.
    pub fn recover(segments: &[Vec<u8>]) {
        for policy in [OnCorruption::Fail, OnCorruption::ReadOnly, OnCorruption::Skip] {
            let storage = MemStorage::new();
            let dir = Path::new("/fuzz");
            let mut base = 0u64;
            for bytes in segments {
                storage.put(&dir.join(format!("{base:020}.seg")), bytes.clone());
                base += bytes.len().saturating_sub(super::frame::SEGMENT_HEADER) as u64;
            }
            let opened = DurableBroker::<Vec<u8>>::builder(dir)
                .settings(DurableSettings::new().on_corruption(policy))
                .storage(Arc::new(storage))
                .open();
            if let Ok(broker) = opened {
                let _ = broker.recovery();
                broker.shutdown();
            }
        }
    }

    /// A valid segment holding `bodies` as records, starting at `base`.
    pub fn segment(base: u64, bodies: &[&[u8]]) -> Vec<u8> {
        let mut buf = super::frame::segment_header(base).to_vec();
        for b in bodies {
            let lsn = base + (buf.len() - super::frame::SEGMENT_HEADER) as u64;
            super::frame::encode(&mut buf, lsn, lsn, b);
        }
        buf
    }
}

pub use broker::{DurableBroker, DurableBuilder, Refused};
pub use codec::{Codec, DecodeError};
pub use error::{DamagedRange, OpenError, Recovery};
pub use handles::{DurableConsumer, DurableDelivery, DurableSubscription};
pub use settings::{DurableSettings, FsyncPolicy, OnCorruption, WhenFull};
