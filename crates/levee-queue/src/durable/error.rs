//! Why a durable broker did not open, and what opening found.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use levee_core::ConfigError;

use super::codec::DecodeError;

/// Opening a [`DurableBroker`](super::DurableBroker) failed.
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
