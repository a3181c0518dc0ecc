//! Which broker carries the shop's events (`queue.backend`), and where it keeps them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The broker behind the event bus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueBackend {
    /// levee-queue's durable broker in `queue.durable_dir` (default `<data_dir>/events`): a
    /// confirmed event is on disk and survives a crash. The default.
    #[default]
    Durable,
    /// levee-queue's in-process broker: fastest, but events still queued are lost with the
    /// process (the transactional outbox and the start-up re-derivation narrow that loss).
    Memory,
    /// NATS JetStream at `queue.nats_url`, through levee-nats.
    Nats,
}

impl QueueBackend {
    /// The name used in settings and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Durable => "durable",
            Self::Memory => "memory",
            Self::Nats => "nats",
        }
    }
}

/// The durable broker's directory: `configured`, or `events` under the data directory.
#[must_use]
pub fn durable_dir(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    configured.map_or_else(|| data_dir.join("events"), Path::to_path_buf)
}
