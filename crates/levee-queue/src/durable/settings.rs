//! Settings of a durable broker: plain data, serde types behind the `serde` feature, so a
//! service reads them from its config file.

use std::time::Duration;

use levee_core::ConfigError;

use crate::broker::TopicConfig;

/// When the log is flushed to stable storage, and so when a publish (or a settlement) is
/// confirmed. Every setting survives a crash of the process (`kill -9`, a panic, an OOM
/// kill): a confirmed write has at least reached the operating system. They differ in what a
/// crash of the machine (power loss, kernel panic) can take.
///
/// ```
/// use levee_queue::durable::{DurableSettings, FsyncPolicy};
///
/// // Confirm a publish once written; fsync every 100 ms (a machine crash loses up to 100 ms).
/// let settings = DurableSettings::new().fsync(FsyncPolicy::EveryMillis(100));
/// assert!(settings.validate().is_ok());
/// assert!(DurableSettings::new().fsync(FsyncPolicy::EveryMillis(0)).validate().is_err());
/// assert_eq!(FsyncPolicy::default(), FsyncPolicy::Always);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FsyncPolicy {
    /// Confirm after the `fdatasync` that covers the write. One fsync covers every write
    /// waiting for it (group commit), so its cost is paid once per group, not per message.
    /// Loses nothing confirmed, whatever crashes.
    #[default]
    Always,
    /// Confirm once written to the operating system; fsync at most every this many
    /// milliseconds. A machine crash loses up to that much confirmed work.
    EveryMillis(u32),
    /// Confirm once written to the operating system; never fsync (the kernel writes back
    /// when it likes, typically within 30 s). A machine crash loses whatever was not yet
    /// written back.
    Never,
}

/// What a publish meets when the log is at its disk budget.
///
/// ```
/// use levee_queue::durable::{DurableSettings, WhenFull};
///
/// // A 10 GiB budget; at the budget, publishes fail with `BrokerError::DiskFull` instead of waiting.
/// let settings = DurableSettings::new().max_disk_bytes(Some(10 << 30)).when_full(WhenFull::Reject);
/// assert!(settings.validate().is_ok());
/// assert_eq!(WhenFull::default(), WhenFull::Backpressure);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum WhenFull {
    /// The publisher waits until acks let retention free space (`try_publish` and a
    /// read-only broker still refuse with [`BrokerError::DiskFull`](crate::broker::BrokerError::DiskFull)).
    #[default]
    Backpressure,
    /// The publisher gets [`BrokerError::DiskFull`](crate::broker::BrokerError::DiskFull) at once.
    Reject,
}

/// What opening a log does when a record in the middle fails its checksum (bit rot, a
/// damaged disk, a file edited by hand). A torn tail, the normal result of a crash, is not
/// corruption: it is always cut off at the last whole record.
///
/// ```
/// use levee_queue::durable::{DurableBroker, DurableSettings, OnCorruption};
///
/// let dir = tempfile::tempdir().unwrap();
/// // Open whatever is readable, refuse writes: inspect a damaged log before deciding.
/// let settings = DurableSettings::new().on_corruption(OnCorruption::ReadOnly);
/// let broker = DurableBroker::<String>::open(dir.path(), settings).unwrap();
/// assert!(!broker.recovery().read_only); // nothing was damaged, so it is writable
/// broker.shutdown();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OnCorruption {
    /// Refuse to open ([`OpenError::Corrupt`](super::OpenError::Corrupt)).
    #[default]
    Fail,
    /// Open with every readable record, skipping the damaged ranges, and refuse every write
    /// ([`BrokerError::ReadOnly`](crate::broker::BrokerError::ReadOnly)): to inspect and copy
    /// out what is left before deciding.
    ReadOnly,
    /// Open with every readable record, skipping the damaged ranges (what they held is lost,
    /// and listed in the [`Recovery`](super::Recovery) report), and carry on writing.
    Skip,
}

/// Settings of a [`DurableBroker`](super::DurableBroker).
///
/// ```
/// use levee_queue::durable::{DurableSettings, FsyncPolicy, WhenFull};
///
/// let settings = DurableSettings::new()
///     .fsync(FsyncPolicy::Always)
///     .segment_bytes(64 << 20)
///     .max_disk_bytes(Some(10 << 30))
///     .when_full(WhenFull::Backpressure);
/// assert!(settings.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct DurableSettings {
    /// When writes are flushed and confirmed. Default [`FsyncPolicy::Always`].
    pub fsync: FsyncPolicy,
    /// Size at which a segment file is closed and a new one started; retention deletes whole
    /// segments. Default 64 MiB; at least 64 KiB.
    pub segment_bytes: u64,
    /// The most bytes the log may take on disk; `None` for no bound. Publishes are held to
    /// this bound less one segment, which stays free for acks and compaction (the records
    /// that make space), and with [`preallocate`](Self::preallocate) less two more: the
    /// room preallocated ahead of the records (the rest of the segment being written, and
    /// the spare). At least three segments, five with `preallocate`. Default `None`.
    pub max_disk_bytes: Option<u64>,
    /// What a publish meets at the disk bound. Default [`WhenFull::Backpressure`].
    pub when_full: WhenFull,
    /// What opening does with a corrupt record in the middle of the log. Default
    /// [`OnCorruption::Fail`].
    pub on_corruption: OnCorruption,
    /// Settings of topics created implicitly by `subscribe`.
    pub topic_defaults: TopicConfig,
    /// How often the background thread applies due timers and expired leases when nobody
    /// receives, so statistics and dead letters stay current. Default 100 ms.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub tick: Duration,
    /// Write the next segment file as zeros ahead of time, on a thread of its own, so that
    /// appending never creates or grows a file and each `fdatasync` before a confirm has
    /// only data to flush (a file that grows makes it commit the new size through the
    /// file system's journal too: the slow tail of confirm latency). Costs one spare
    /// segment on disk, and each segment takes `segment_bytes` from its start
    /// ([`max_disk_bytes`](Self::max_disk_bytes) counts both). Default `true`.
    pub preallocate: bool,
}

impl Default for DurableSettings {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 << 20,
            max_disk_bytes: None,
            when_full: WhenFull::Backpressure,
            on_corruption: OnCorruption::Fail,
            topic_defaults: TopicConfig::default(),
            tick: Duration::from_millis(100),
            preallocate: true,
        }
    }
}

impl DurableSettings {
    /// Default settings.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`fsync`](Self::fsync).
    #[must_use]
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Sets [`preallocate`](Self::preallocate).
    #[must_use]
    pub fn preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self
    }

    /// Sets [`segment_bytes`](Self::segment_bytes).
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`max_disk_bytes`](Self::max_disk_bytes).
    #[must_use]
    pub fn max_disk_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_disk_bytes = bytes;
        self
    }

    /// Sets [`when_full`](Self::when_full).
    #[must_use]
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Sets [`on_corruption`](Self::on_corruption).
    #[must_use]
    pub fn on_corruption(mut self, policy: OnCorruption) -> Self {
        self.on_corruption = policy;
        self
    }

    /// Sets [`topic_defaults`](Self::topic_defaults).
    #[must_use]
    pub fn topic_defaults(mut self, config: TopicConfig) -> Self {
        self.topic_defaults = config;
        self
    }

    /// Sets [`tick`](Self::tick).
    #[must_use]
    pub fn tick(mut self, period: Duration) -> Self {
        self.tick = period;
        self
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting out of range: `segment_bytes` under
    /// 64 KiB or over 1 GiB, `max_disk_bytes` under three segments (five with
    /// `preallocate`), a zero
    /// `EveryMillis`, a zero `tick`, or invalid topic defaults.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(64 << 10..=1 << 30).contains(&self.segment_bytes) {
            return Err(ConfigError::new("segment_bytes", "must be between 64 KiB and 1 GiB"));
        }
        if let Some(max) = self.max_disk_bytes
            && max < (self.reserved_segments() + 2) * self.segment_bytes
        {
            return Err(ConfigError::new(
                "max_disk_bytes",
                if self.preallocate {
                    "must be at least five segments with preallocate (three without)"
                } else {
                    "must be at least three segments"
                },
            ));
        }
        if self.fsync == FsyncPolicy::EveryMillis(0) {
            return Err(ConfigError::new("fsync", "every_millis must be greater than zero"));
        }
        ConfigError::require_positive("tick", self.tick)?;
        self.topic_defaults.validate()
    }

    /// Segments of `max_disk_bytes` that published records never take: one free for acks
    /// and compaction, and with `preallocate` two more for the preallocated room (the rest
    /// of the segment being written, and the spare), which is on disk but holds no record.
    fn reserved_segments(&self) -> u64 {
        if self.preallocate { 3 } else { 1 }
    }

    /// The bytes of records a publish may bring the log to: `max_disk_bytes` less the
    /// reserved segments; `None` without a bound.
    pub(crate) fn publish_budget(&self) -> Option<u64> {
        self.max_disk_bytes
            .map(|max| max.saturating_sub(self.reserved_segments() * self.segment_bytes))
    }
}
