//! Support code for levee's top-level benchmarks, examples and cross-crate tests.
//!
//! Not published. Shared by several benches: [`CountingAllocator`], which backs the "no
//! allocation per call" and "bytes per entry" claims with measurements, and
//! [`bench`](mod@bench), the barrier-started multi-thread timing of the `iter_custom` cases.
//!
//! ```
//! use levee_workspace::CountingAllocator;
//!
//! // In a bench binary: #[global_allocator] static ALLOC: CountingAllocator = CountingAllocator::new();
//! static ALLOC: CountingAllocator = CountingAllocator::new();
//! assert_eq!(ALLOC.allocations(), 0);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bench;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A global allocator that counts allocations and live bytes on top of the system allocator.
///
/// Install it with `#[global_allocator]` in a bench or test binary, then compare
/// [`allocations`](Self::allocations) or [`live_bytes`](Self::live_bytes) before and after
/// the code under measurement.
#[derive(Debug)]
pub struct CountingAllocator {
    allocations: AtomicU64,
    live_bytes: AtomicUsize,
}

impl CountingAllocator {
    /// A counter at zero.
    #[must_use]
    pub const fn new() -> Self {
        Self { allocations: AtomicU64::new(0), live_bytes: AtomicUsize::new(0) }
    }

    /// Allocations (including reallocations) made so far.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Bytes currently allocated and not yet freed.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes.load(Ordering::Relaxed)
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is upheld by the system allocator; the counters are plain atomics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.live_bytes.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.live_bytes.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live_bytes.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from this allocator (that is, from System).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.live_bytes.fetch_add(new_size, Ordering::Relaxed);
        self.live_bytes.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
