//! One cached entry as the slab stores it, its deadlines (kept apart, see [`Times`]), and the
//! view of both that a lookup hands out ([`Found`]).

use levee_core::sync::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use super::Slot;
use super::slab::NIL;

/// Highest value of an entry's hit counter.
const MAX_FREQ: u8 = 3;

/// An entry: its key, its slot, and its place in the S3-FIFO queues (intrusive links, slab
/// indices). The key's hash is not stored: a probe filters on the table's 7-bit tags before it
/// compares keys, and the few places that need an entry's hash without being given it (the
/// eviction, a table that grows) hash its key again. For a `u64 -> u64` cache that makes an
/// entry 40 bytes instead of 48, and every hit and eviction touches less memory.
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) slot: Slot<V>,
    pub(crate) weight: u32,
    /// Neighbours in its queue (`NIL` at either end).
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) in_main: bool,
    pub(crate) freq: AtomicU8,
}

impl<K, V> Entry<K, V> {
    pub(crate) fn new(key: K, slot: Slot<V>, weight: u32, in_main: bool) -> Self {
        Self { key, slot, weight, prev: NIL, next: NIL, in_main, freq: AtomicU8::new(0) }
    }
}

/// What only expiring entries need. Kept in a side array the shard allocates with its first
/// entry that has a deadline (or when the cache has a time to idle), so a cache without
/// deadlines pays nothing for them per entry.
pub(crate) struct Times {
    /// The entry's identity (a key stored again after a removal gets a new one), which a
    /// refresh names its entry by: only entries with deadlines are ever refreshed.
    pub(crate) id: u64,
    /// Stale (may still be served while refreshing) from here on; `u64::MAX`: never.
    pub(crate) expires_at: u64,
    /// Gone for good from here on (`expires_at` plus the allowed staleness).
    pub(crate) dead_at: u64,
    /// Nanoseconds the load that produced this entry took (XFetch's delta).
    pub(crate) load_nanos: u64,
    /// Last read, for time-to-idle (only maintained when idle expiry is on).
    pub(crate) last_access: AtomicU64,
    /// Set by the one caller that starts a background refresh of this entry.
    pub(crate) refreshing: AtomicBool,
}

impl Times {
    pub(crate) fn new(id: u64, expires_at: u64, dead_at: u64, load_nanos: u64, now: u64) -> Self {
        Self {
            id,
            expires_at,
            dead_at,
            load_nanos,
            last_access: AtomicU64::new(now),
            refreshing: AtomicBool::new(false),
        }
    }

    /// The deadlines of an entry stored before the shard kept any: none.
    pub(crate) fn never(id: u64, now: u64) -> Self {
        Self::new(id, u64::MAX, u64::MAX, 0, now)
    }

    /// True when past the hard deadline or idle too long.
    #[inline]
    fn is_dead(&self, now: u64, tti: u64) -> bool {
        now >= self.dead_at
            || (tti != 0 && now.saturating_sub(self.last_access.load(Ordering::Relaxed)) >= tti)
    }
}

/// An entry found by a lookup, with its deadlines if the shard keeps any.
pub(crate) struct Found<'a, K, V> {
    pub(crate) entry: &'a Entry<K, V>,
    pub(crate) times: Option<&'a Times>,
}

impl<K, V> Clone for Found<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Found<'_, K, V> {}

impl<'a, K, V> Found<'a, K, V> {
    /// What the entry holds.
    #[inline]
    pub(crate) fn slot(self) -> &'a Slot<V> {
        &self.entry.slot
    }

    /// This entry's identity (a key stored again gets a new one); 0 (no entry's) when the
    /// shard keeps no deadlines, as then nothing refreshes.
    pub(crate) fn id(self) -> u64 {
        self.times.map_or(0, |t| t.id)
    }

    /// Records a hit: the frequency only ever grows to `MAX_FREQ`, and once there a hit writes
    /// nothing, so hot entries stay shared in every reader's cache.
    #[inline]
    pub(crate) fn touch(self) {
        let f = self.entry.freq.load(Ordering::Relaxed);
        if f < MAX_FREQ {
            // A lost update between two readers only undercounts a hit: harmless.
            self.entry.freq.store(f + 1, Ordering::Relaxed);
        }
    }

    /// When the entry goes stale; `u64::MAX`: never.
    #[inline]
    pub(crate) fn expires_at(self) -> u64 {
        self.times.map_or(u64::MAX, |t| t.expires_at)
    }

    /// How long the load that produced the entry took.
    pub(crate) fn load_nanos(self) -> u64 {
        self.times.map_or(0, |t| t.load_nanos)
    }

    /// True when the entry is past its hard deadline or idle too long.
    #[inline]
    pub(crate) fn is_dead(self, now: u64, tti: u64) -> bool {
        self.times.is_some_and(|t| t.is_dead(now, tti))
    }

    /// Records a read for time-to-idle. Writes only when the last record is more than
    /// `tti / 256` old, so a hot entry's line is not written on every hit.
    #[inline]
    pub(crate) fn mark_read(self, now: u64, tti: u64) {
        if let Some(t) = self.times {
            let last = t.last_access.load(Ordering::Relaxed);
            if now > last.saturating_add(tti >> 8) {
                t.last_access.store(now, Ordering::Relaxed);
            }
        }
    }

    /// Claims the right to refresh this entry: true for exactly one caller until
    /// [`end_refresh`](Self::end_refresh) or a new value.
    pub(crate) fn win_refresh(self) -> bool {
        self.times.is_some_and(|t| {
            !t.refreshing.load(Ordering::Relaxed)
                && t.refreshing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Lets the next caller refresh this entry (the refresh produced nothing).
    pub(crate) fn end_refresh(self) {
        if let Some(t) = self.times {
            t.refreshing.store(false, Ordering::Release);
        }
    }
}

/// True when the entry at these deadlines is past its hard deadline or idle too long (for
/// the shard's own checks, which hold the times apart from the entry).
#[inline]
pub(crate) fn is_dead(times: Option<&Times>, now: u64, tti: u64) -> bool {
    times.is_some_and(|t| t.is_dead(now, tti))
}
