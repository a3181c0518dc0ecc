//! The cache's shards: levee-core's [`ShardLocks`], whose readers write only their own
//! thread's row; hits and misses are counted in that row's tallies, so counting a hit writes
//! no shared word either.

use levee_core::sync::ShardLocks;

/// What a read saw, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
    /// Count nothing.
    Nothing,
    /// Count a hit.
    Hit,
    /// Count a miss.
    Miss,
}

impl Tally {
    /// The row tally counting this outcome.
    #[inline]
    fn index(self) -> Option<usize> {
        match self {
            Tally::Nothing => None,
            Tally::Hit => Some(0),
            Tally::Miss => Some(1),
        }
    }
}

/// The shards of one cache.
pub(crate) struct Shards<T> {
    locks: ShardLocks<T>,
}

impl<T> Shards<T> {
    /// `n` shards, the `i`-th made by `init(i)`.
    pub(crate) fn new(n: usize, init: impl FnMut(usize) -> T) -> Self {
        Self { locks: ShardLocks::new(n, init) }
    }

    pub(crate) fn len(&self) -> usize {
        self.locks.len()
    }

    /// Shard `i`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> ShardRef<'_, T> {
        ShardRef { shards: self, i }
    }

    /// Every shard in turn.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ShardRef<'_, T>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Hits and misses counted so far.
    pub(crate) fn tallies(&self) -> (u64, u64) {
        (self.locks.tally(0), self.locks.tally(1))
    }
}

/// One shard of a [`Shards`].
pub(crate) struct ShardRef<'a, T> {
    shards: &'a Shards<T>,
    i: usize,
}

impl<T> ShardRef<'_, T> {
    /// Runs `f` with shared access; `f` says whether the read was a hit or a miss.
    #[inline]
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> (R, Tally)) -> R {
        self.shards.locks.read_tallied(self.i, |shard| {
            let (result, tally) = f(shard);
            (result, tally.index())
        })
    }

    /// Runs `f` with exclusive access.
    #[inline]
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.shards.locks.write(self.i, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reads_count_their_tallies_and_writes_are_seen() {
        let shards = Shards::new(2, |i| i as u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        shards.get(1).write(|v| *v += 1);
                        let seen = shards.get(1).read(|v| (*v, Tally::Hit));
                        assert!(seen >= 2);
                    }
                });
            }
        });
        assert_eq!(shards.get(1).read(|v| (*v, Tally::Miss)), 4001);
        assert_eq!(shards.get(0).read(|v| (*v, Tally::Nothing)), 0);
        assert_eq!(shards.tallies(), (4000, 1));
        assert_eq!(shards.iter().count(), 2);
    }
}
