//! Channel settings: capacity and what a full channel does with the next message.

use levee_core::{ConfigError, EventHook, Listener};

use super::flavor::Flavor;
use super::stats::ChannelEvent;
use super::{Receiver, Sender, chan};

/// The largest capacity a bounded channel accepts.
///
/// A slot's position is a 64-bit stamp of `lap | closed bit | index`; this bound leaves at least
/// 20 bits of lap so that a stamp cannot come round to an old value while a thread holds it.
pub const MAX_CAPACITY: usize = 1 << 40;

/// What a bounded channel does with a message that arrives while it is full.
///
/// Whatever the policy, nothing is lost silently: a rejected message comes back to the sender
/// and an evicted one is counted in [`ChannelStats::dropped`](super::ChannelStats::dropped) and
/// reported as [`ChannelEvent::Dropped`].
///
/// ```
/// use levee_queue::channel::{Builder, OverflowPolicy, SendError};
///
/// // Latest prices only: a full channel drops its oldest message.
/// let (tx, rx) = Builder::bounded(2).overflow(OverflowPolicy::DropOldest).build()?;
/// for price in [1, 2, 3] {
///     tx.send(price).unwrap();
/// }
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
/// assert_eq!(tx.stats().dropped, 1);
///
/// // Or hand the message back to the sender at once.
/// let (tx, _rx) = Builder::bounded(1).overflow(OverflowPolicy::Reject).build()?;
/// tx.send(1).unwrap();
/// assert_eq!(tx.send(2), Err(SendError::Rejected(2)));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OverflowPolicy {
    /// The sender waits for room (`send` blocks, `send_async` pends; `try_send` returns
    /// [`TrySendError::Full`](super::TrySendError::Full)). Back-pressure: the default.
    #[default]
    Wait,
    /// The sender gets its message back at once as
    /// [`SendError::Rejected`](super::SendError::Rejected) (counted in `rejected`).
    Reject,
    /// The oldest queued message is dropped to make room (counted in `dropped`); sends never
    /// wait. For data where only the latest matters: telemetry, progress, prices.
    DropOldest,
}

/// A channel's settings as data (what a config file holds).
///
/// ```
/// use levee_queue::channel::{ChannelConfig, OverflowPolicy};
///
/// let config = ChannelConfig { capacity: Some(64), overflow: OverflowPolicy::Wait };
/// assert!(config.validate().is_ok());
/// // An unbounded channel is never full, so only `Wait` applies.
/// let bad = ChannelConfig { capacity: None, overflow: OverflowPolicy::DropOldest };
/// assert_eq!(bad.validate().unwrap_err().setting, "overflow");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct ChannelConfig {
    /// Most messages held at once (at least 1); `None` makes an unbounded channel.
    pub capacity: Option<usize>,
    /// What a full bounded channel does with the next message.
    pub overflow: OverflowPolicy,
}

impl Default for ChannelConfig {
    /// Bounded to 1024 messages, senders wait for room.
    fn default() -> Self {
        Self { capacity: Some(1024), overflow: OverflowPolicy::Wait }
    }
}

impl ChannelConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ConfigError`] naming `capacity` when it is zero or above [`MAX_CAPACITY`], or naming
    /// `overflow` when an unbounded channel is given a policy other than `Wait` (it is never
    /// full, so the policy could never apply).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.capacity {
            Some(0) => Err(ConfigError::new(
                "capacity",
                "must be greater than zero (a zero-capacity rendezvous channel is not supported)",
            )),
            Some(n) if n > MAX_CAPACITY => Err(ConfigError::new(
                "capacity",
                format!("must be at most {MAX_CAPACITY}, got {n}"),
            )),
            None if self.overflow != OverflowPolicy::Wait => Err(ConfigError::new(
                "overflow",
                "an unbounded channel is never full; only `Wait` applies",
            )),
            _ => Ok(()),
        }
    }
}

/// Builds a channel from settings and listeners.
///
/// ```
/// use levee_queue::channel::{Builder, ChannelEvent, OverflowPolicy};
///
/// let (tx, rx) = Builder::bounded(2)
///     .overflow(OverflowPolicy::DropOldest)
///     .listener(|e: &ChannelEvent| eprintln!("{e:?}"))
///     .build::<u32>()?;
/// for i in 0..3 {
///     tx.send(i)?;
/// }
/// assert_eq!(rx.try_recv(), Ok(1)); // 0 was dropped to make room for 2
/// assert_eq!(rx.stats().dropped, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    config: ChannelConfig,
    hook: EventHook<ChannelEvent>,
}

impl Builder {
    /// A channel holding at most `capacity` messages (checked by [`build`](Self::build)).
    pub fn bounded(capacity: usize) -> Self {
        Self::from_config(ChannelConfig { capacity: Some(capacity), ..ChannelConfig::default() })
    }

    /// A channel without a bound; its memory shrinks again after a backlog drains.
    pub fn unbounded() -> Self {
        Self::from_config(ChannelConfig { capacity: None, overflow: OverflowPolicy::Wait })
    }

    /// A channel with these settings.
    pub fn from_config(config: ChannelConfig) -> Self {
        Self { config, hook: EventHook::none() }
    }

    /// What a full channel does with the next message (default [`OverflowPolicy::Wait`]).
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.config.overflow = policy;
        self
    }

    /// Adds a listener for [`ChannelEvent`]s (drops, rejections, close).
    pub fn listener(mut self, listener: impl Listener<ChannelEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Replaces the event hook (to share listeners with other primitives).
    pub fn hook(mut self, hook: EventHook<ChannelEvent>) -> Self {
        self.hook = hook;
        self
    }

    /// The settings so far.
    #[must_use]
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// Creates the channel.
    ///
    /// # Errors
    /// [`ConfigError`] for invalid settings (see [`ChannelConfig::validate`]), or naming
    /// `capacity` when the slots cannot be allocated.
    pub fn build<T>(self) -> Result<(Sender<T>, Receiver<T>), ConfigError> {
        self.config.validate()?;
        let flavor = Flavor::new(self.config.capacity)?;
        let chan = chan::Chan::new(flavor, self.config.overflow, self.hook);
        Ok(chan::handles(chan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_typed_errors() {
        let err = Builder::bounded(0).build::<u8>().unwrap_err();
        assert_eq!(err.setting, "capacity");
        let err = Builder::bounded(MAX_CAPACITY + 1).build::<u8>().unwrap_err();
        assert_eq!(err.setting, "capacity");
        let err = Builder::unbounded().overflow(OverflowPolicy::DropOldest).build::<u8>();
        assert_eq!(err.unwrap_err().setting, "overflow");
        assert!(Builder::unbounded().build::<u8>().is_ok());
        assert_eq!(Builder::bounded(3).config().capacity, Some(3));
    }

    #[test]
    fn allocation_failure_is_an_error_not_an_abort() {
        // 2^40 slots of 4 KiB each cannot be reserved.
        let err = Builder::bounded(MAX_CAPACITY).build::<[u8; 4096]>().unwrap_err();
        assert_eq!(err.setting, "capacity");
    }
}
