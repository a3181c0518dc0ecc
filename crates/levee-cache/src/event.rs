//! What the cache tells its listeners.

pub use crate::store::RemovalCause;

/// An event of a [`Cache`](crate::Cache), delivered to the listeners given to
/// [`CacheBuilder::listener`](crate::CacheBuilder::listener) on the thread that caused it,
/// after the shard lock is released.
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
