//! Exclusive per-thread slot numbers: while a thread lives, no other thread has its number, so
//! a per-thread stripe indexed by it has one writer and needs no read-modify-write.
//!
//! Numbers come from one process-wide pool of `4 x CPUs` (at least 8, at most 256), taken on a
//! thread's first use and given back when it exits; threads beyond the pool get `None` and
//! take a shared path instead. (levee-cache's shard lock keeps the same kind of pool; one per
//! workspace belongs in `levee_core::sync`.)

#[cfg(not(loom))]
use std::sync::OnceLock;
// Plain std atomics even under loom: which number a thread gets is not part of any modelled
// protocol (exclusivity is, and each number has one owner at a time).
use std::sync::atomic::{AtomicU64, Ordering};

struct Pool {
    taken: Box<[AtomicU64]>,
    size: usize,
}

impl Pool {
    fn new(size: usize) -> Self {
        Self { taken: (0..size.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(), size }
    }

    fn take(&self) -> Option<usize> {
        for (w, word) in self.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            loop {
                let free = (!bits).trailing_zeros() as usize;
                if free == 64 || w * 64 + free >= self.size {
                    break;
                }
                // AcqRel: the previous owner's last writes under this number (its stripes'
                // stores) happen before ours.
                match word.compare_exchange_weak(
                    bits,
                    bits | 1 << free,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(w * 64 + free),
                    Err(now) => bits = now,
                }
            }
        }
        None
    }

    fn give_back(&self, i: usize) {
        // Release pairs with the next owner's AcqRel take.
        self.taken[i / 64].fetch_and(!(1 << (i % 64)), Ordering::Release);
    }
}

/// Runs `f` on the process-wide pool.
#[cfg(not(loom))]
fn with_pool<R>(f: impl FnOnce(&Pool) -> R) -> R {
    static POOL: OnceLock<Pool> = OnceLock::new();
    f(POOL.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Pool::new((cpus * 4).clamp(8, 256))
    }))
}

/// Under loom, one small pool per OS thread: a model runs all its threads on the test's OS
/// thread, and tests running in parallel must not take each other's numbers, or a replay of
/// one model could see a different number than the run it replays. (Small, too: every stripe
/// a reader scans multiplies the interleavings to explore.)
#[cfg(loom)]
fn with_pool<R>(f: impl FnOnce(&Pool) -> R) -> R {
    std::thread_local! {
        static POOL: Pool = Pool::new(4);
    }
    POOL.with(f)
}

/// How many exclusive numbers there are: `mine()` is always below this.
pub(crate) fn size() -> usize {
    with_pool(|pool| pool.size)
}

/// A thread's number, given back when the thread exits.
struct Claim(Option<usize>);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            with_pool(|pool| pool.give_back(i));
        }
    }
}

// Loom's thread-local under `cfg(loom)`: one claim per modelled thread.
levee_core::sync::thread_local! {
    static MINE: Claim = Claim(with_pool(Pool::take));
}

/// This thread's number, or `None` when the pool is exhausted (or the thread is exiting).
#[inline]
pub(crate) fn mine() -> Option<usize> {
    MINE.try_with(|c| c.0).ok().flatten()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn live_threads_hold_distinct_numbers_and_give_them_back() {
        let here = mine().expect("a number for the test thread");
        assert!(here < size());
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let done_rx = std::sync::Mutex::new(done_rx);
        std::thread::scope(|s| {
            for _ in 0..3 {
                let (tx, done_rx) = (tx.clone(), &done_rx);
                s.spawn(move || {
                    tx.send(mine()).unwrap();
                    // Hold the number until every thread has reported.
                    done_rx.lock().unwrap().recv().unwrap();
                });
            }
            let mut seen: Vec<usize> = (0..3).map(|_| rx.recv().unwrap().unwrap()).collect();
            seen.push(here);
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 4, "live threads never share a number");
            for _ in 0..3 {
                done_tx.send(()).unwrap();
            }
        });
        let again = std::thread::spawn(mine).join().unwrap().unwrap();
        assert!(again < size(), "numbers of exited threads are handed out again");
    }
}
