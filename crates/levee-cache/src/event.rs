//! What the cache tells its listeners.

pub use crate::store::RemovalCause;

/// An event of a [`Cache`](crate::Cache), delivered to the listeners given to
/// [`CacheBuilder::listener`](crate::CacheBuilder::listener) on the thread that caused it,
/// after the shard lock is released.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_cache::{Cache, CacheEvent, RemovalCause};
///
/// let removed = Arc::new(Mutex::new(Vec::new()));
/// let sink = removed.clone();
/// let cache: Cache<u32, String> = Cache::builder()
///     .max_capacity(100)
///     .listener(move |e: &CacheEvent<u32, String>| {
///         if let CacheEvent::Removed { key, cause, .. } = e {
///             sink.lock().unwrap().push((*key, *cause));
///         }
///     })
///     .build()?;
/// cache.insert(1, "one".into());
/// cache.insert(1, "uno".into());
/// cache.invalidate(&1);
/// assert_eq!(removed.lock().unwrap()[..], [(1, RemovalCause::Replaced), (1, RemovalCause::Invalidated)]);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent<K, V> {
    /// A value left the cache. (Remembered misses and errors leave silently.)
    Removed {
        /// Its key.
        key: K,
        /// The value.
        value: V,
        /// Why it left.
        cause: RemovalCause,
    },
    /// A value weighed more than a shard can hold, so it was not stored.
    Rejected {
        /// Its key.
        key: K,
        /// What the weigher said.
        weight: u32,
    },
}
