//! The unbounded channel gives its memory back after a backlog drains (tokio issue 4321).
//!
//! One test per binary: the counting allocator sees every allocation of the process.
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use levee_queue::channel;

struct Counting {
    allocations: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: forwards every call unchanged to `System`; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        let now = self.live.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        self.peak.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract; forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting {
    allocations: AtomicUsize::new(0),
    live: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

#[test]
fn unbounded_channel_returns_memory_after_a_backlog() {
    let (tx, rx) = channel::unbounded::<u64>();
    let baseline = ALLOC.live.load(Ordering::Relaxed);

    for round in 0..3 {
        // A backlog of a million messages...
        for i in 0..1_000_000u64 {
            tx.send(i).unwrap();
        }
        let backlog = ALLOC.live.load(Ordering::Relaxed) - baseline;
        assert!(backlog >= 8_000_000, "round {round}: backlog held only {backlog} bytes");
        // ...drained.
        for i in 0..1_000_000u64 {
            assert_eq!(rx.recv(), Ok(i));
        }
        let kept = ALLOC.live.load(Ordering::Relaxed).saturating_sub(baseline);
        // What remains is the current block plus at most two spare blocks (~0.5 KiB each
        // for u64), not the 16 MB the backlog needed.
        assert!(kept < 4096, "round {round}: {kept} bytes still held after draining");
    }

    // Steady traffic across block boundaries does not allocate: blocks come from the spares.
    let before = ALLOC.allocations.load(Ordering::Relaxed);
    for i in 0..100_000u64 {
        tx.send(i).unwrap();
        tx.send(i).unwrap();
        assert_eq!(rx.recv(), Ok(i));
        assert_eq!(rx.recv(), Ok(i));
    }
    assert_eq!(ALLOC.allocations.load(Ordering::Relaxed), before);
    assert!(ALLOC.peak.load(Ordering::Relaxed) >= 8_000_000);
}
