//! Why a durable broker did not open, and what opening found.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use levee_core::ConfigError;

use super::codec::DecodeError;

/// Opening a [`DurableBroker`](super::DurableBroker) failed.
///
/// ```
/// use levee_queue::durable::{DurableBroker, DurableSettings, OpenError};
///
/// let dir = tempfile::tempdir().unwrap();
/// let tiny = DurableSettings::new().segment_bytes(1024); // under the 64 KiB minimum
/// match DurableBroker::<String>::open(dir.path(), tiny) {
///     Err(OpenError::Config(e)) => assert!(e.to_string().contains("segment_bytes")),
///     other => panic!("expected a config error, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The directory could not be read or written (or another broker holds it).
    #[error("durable broker i/o: {0}")]
    Io(#[from] io::Error),
    /// A record in the middle of the log fails its checksum and the settings say
    /// [`OnCorruption::Fail`](super::OnCorruption::Fail).
    #[error("corrupt log segment {}: bytes {from}..{to} fail their checksum", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// File offset of the first damaged byte.
        from: u64,
        /// File offset of the next intact record (or the file's end).
        to: u64,
    },
    /// An intact record does not decode: written by an incompatible version, or a payload
    /// the [`Codec`](super::Codec) refuses.
    #[error("log record at {lsn} does not decode: {error}")]
    Undecodable {
        /// The record's position in the log.
        lsn: u64,
        /// Why.
        error: DecodeError,
    },
}

/// A damaged range that opening skipped.
///
/// ```
/// use levee_queue::broker::{Message, SubscriptionConfig};
/// use levee_queue::durable::{DurableBroker, DurableSettings, OnCorruption, OpenError};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap();
/// broker.subscribe("orders", SubscriptionConfig::new("billing")).await.unwrap();
/// for n in 0..200 {
///     broker.publish("orders", Message::new(format!("order {n:04} {}", "x".repeat(40)))).await.unwrap();
/// }
/// broker.shutdown();
/// drop(broker);
///
/// // Flip a byte in the middle of the segment: bit rot, not a torn tail.
/// let segment = std::fs::read_dir(dir.path()).unwrap()
///     .map(|e| e.unwrap().path())
///     .find(|p| p.extension().is_some_and(|x| x == "seg"))
///     .unwrap();
/// let mut bytes = std::fs::read(&segment).unwrap();
/// let middle = bytes.len() / 2;
/// bytes[middle] ^= 0xff;
/// std::fs::write(&segment, &bytes).unwrap();
///
/// // The default refuses to open...
/// let err = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap_err();
/// assert!(matches!(err, OpenError::Corrupt { .. }));
/// // ...`Skip` opens without the damaged record and lists what it skipped.
/// let skip = DurableSettings::new().on_corruption(OnCorruption::Skip);
/// let broker = DurableBroker::<String>::open(dir.path(), skip).unwrap();
/// let damaged = &broker.recovery().damaged;
/// assert_eq!(damaged.len(), 1);
/// assert!(damaged[0].from <= middle as u64 && (middle as u64) < damaged[0].to);
/// assert!(broker.recovery().messages < 200);
/// broker.shutdown();
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The segment file.
    pub segment: PathBuf,
    /// File offset of the first damaged byte.
    pub from: u64,
    /// File offset of the next intact record (or the file's end).
    pub to: u64,
}

/// What opening found and did.
///
/// ```
/// use levee_queue::broker::{Message, SubscriptionConfig};
/// use levee_queue::durable::{DurableBroker, DurableSettings};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap();
/// broker.subscribe("orders", SubscriptionConfig::new("billing")).await.unwrap();
/// broker.publish("orders", Message::new("order 1".to_string())).await.unwrap();
/// broker.shutdown();
/// drop(broker);
///
/// let reopened = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap();
/// let recovery = reopened.recovery();
/// assert_eq!(recovery.messages, 1); // the unacked message is back
/// assert_eq!(recovery.torn_bytes, 0); // a clean shutdown leaves no torn tail
/// assert!(recovery.damaged.is_empty() && !recovery.read_only);
/// reopened.shutdown();
/// # });
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// Records read.
    pub records: u64,
    /// Bytes of intact records read.
    pub bytes: u64,
    /// Bytes of torn tail cut off (the unfinished writes of a crash).
    pub torn_bytes: u64,
    /// Damaged ranges skipped ([`OnCorruption::Skip`](super::OnCorruption::Skip) or
    /// [`ReadOnly`](super::OnCorruption::ReadOnly)); what they held is lost.
    pub damaged: Vec<DamagedRange>,
    /// True when the broker opened read-only.
    pub read_only: bool,
    /// Messages the subscriptions hold after recovery (waiting, redelivered, dead letters).
    pub messages: usize,
    /// Of those, messages that were in flight and were redelivered as lease expiries.
    pub redelivered: usize,
    /// How long opening took.
    pub took: Duration,
}
