//! Live bytes per entry of levee-cache, moka and quick_cache: not timed, a table printed.
//!
//! How it is measured, the same way for all three: a counting global allocator
//! ([`CountingAllocator`]) reports the bytes allocated and not yet freed. Each cache is built
//! (capacity = the entry count), filled with `u64 -> u64` keys `0..n` (moka's pending
//! maintenance then run), and the live bytes it added are divided by `n`; the cache is dropped
//! before the next is measured. The figures are the sizes the caches asked for: the
//! allocator's own overhead per block (8-16 bytes with glibc) is not counted, which flatters
//! a cache that allocates per entry (moka: a node and its key per entry) against one that
//! keeps entries in a few large arrays (levee, quick_cache). The allocations each fill made
//! are printed beside the bytes for that reason.
//!
//! All three hash with foldhash and are built as `benches/cache.rs` builds them
//! (`support/caches.rs`).
//!
//! `cargo bench --bench cache_memory`

#[path = "support/caches.rs"]
mod caches;

use caches::Map;
use levee_workspace::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

/// Live bytes per entry, and allocations per entry, of the cache `build(n)` returns after
/// `n` inserts.
fn per_entry<M: Map>(n: u64, build: impl FnOnce(u64) -> M) -> (f64, f64) {
    let (bytes, allocations) = (ALLOC.live_bytes(), ALLOC.allocations());
    let cache = caches::fill(build(n), n);
    assert_eq!(cache.get(n - 1), Some(n - 1), "the last key is cached");
    let held = ALLOC.live_bytes() - bytes;
    let made = ALLOC.allocations() - allocations;
    drop(cache);
    (held as f64 / n as f64, made as f64 / n as f64)
}

fn main() {
    println!("cache/memory: live bytes per entry (u64 -> u64, capacity = entries)");
    println!("| entries | levee | moka | quick_cache | levee / moka | levee / quick_cache |");
    println!("|---|---|---|---|---|---|");
    let mut allocations = Vec::new();
    for (label, n) in [("100k", 100_000u64), ("1M", 1_000_000)] {
        let levee = per_entry(n, |n| caches::levee(n, None));
        let moka = per_entry(n, |n| caches::moka(n, None));
        let quick = per_entry(n, caches::quick);
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            levee.0,
            moka.0,
            quick.0,
            levee.0 / moka.0,
            levee.0 / quick.0
        );
        allocations.push((label, levee.1, moka.1, quick.1));
    }
    println!("cache/memory: allocations per entry while filling (not counted in the bytes: each");
    println!("block also costs the allocator 8-16 bytes of its own)");
    for (label, levee, moka, quick) in allocations {
        println!("| {label}, allocations per entry | {levee:.3} | {moka:.3} | {quick:.3} | | |");
    }
}
