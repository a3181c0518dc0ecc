//! Helpers for the multi-threaded benchmark cases.
//!
//! Criterion times one thread; a case that runs on several threads uses `iter_custom` and
//! reports the time of the slowest thread, all of them released together by a barrier so
//! they really contend.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op(thread, i)` for `i` in `0..iters` on each of `threads` threads, released together
/// by a barrier; returns the wall-clock time of the slowest thread (for `iter_custom`).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use levee_workspace::bench::slowest_thread;
///
/// let calls = AtomicU64::new(0);
/// // In a bench: group.bench_function("levee", |b| b.iter_custom(|iters| slowest_thread(2, iters, ..)));
/// let _slowest = slowest_thread(2, 1_000, |_thread, _i| {
///     calls.fetch_add(1, Ordering::Relaxed);
/// });
/// assert_eq!(calls.load(Ordering::Relaxed), 2_000);
/// ```
pub fn slowest_thread(threads: usize, iters: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let origin = Instant::now();
    slowest_thread_by(threads, iters, || origin.elapsed(), op)
}

/// As [`slowest_thread`], with each thread's time read by `now` on that thread (a thread's
/// CPU time, say, where wall time on a loaded machine measures the scheduler).
pub fn slowest_thread_by(
    threads: usize,
    iters: u64,
    now: impl Fn() -> Duration + Sync,
    op: impl Fn(usize, u64) + Sync,
) -> Duration {
    run(threads, iters, now, |_| (), op)
}

/// As [`slowest_thread`], with `setup(thread)` run on each thread before the barrier and its
/// result held, untimed, while that thread runs `op`: per-thread set-up that one side of a
/// comparison needs (entering a runtime, say) is then paid by neither.
///
/// ```
/// use std::cell::Cell;
/// use levee_workspace::bench::slowest_thread_with;
///
/// thread_local!(static READY: Cell<bool> = const { Cell::new(false) });
/// let _slowest = slowest_thread_with(
///     2,
///     1_000,
///     |_thread| READY.with(|r| r.set(true)), // e.g. `handle.enter()`, held by the thread
///     |_thread, _i| assert!(READY.with(Cell::get)),
/// );
/// ```
pub fn slowest_thread_with<G>(
    threads: usize,
    iters: u64,
    setup: impl Fn(usize) -> G + Sync,
    op: impl Fn(usize, u64) + Sync,
) -> Duration {
    let origin = Instant::now();
    run(threads, iters, || origin.elapsed(), setup, op)
}

fn run<G>(
    threads: usize,
    iters: u64,
    now: impl Fn() -> Duration + Sync,
    setup: impl Fn(usize) -> G + Sync,
    op: impl Fn(usize, u64) + Sync,
) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, now, setup, op) = (&barrier, &now, &setup, &op);
                s.spawn(move || {
                    let held = setup(t);
                    barrier.wait();
                    let start = now();
                    for i in 0..iters {
                        op(t, i);
                    }
                    let took = now().saturating_sub(start);
                    drop(held);
                    took
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench thread")).max().unwrap_or_default()
    })
}
