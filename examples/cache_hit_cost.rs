//! The work of a cache hit, for counting instructions and cache misses instead of timing:
//! `cargo bench --bench cache`'s `cache/hit_1t` case (10k keys `u64 -> u64` in a cache of
//! capacity 20k, looked up in the bench's fixed random order, foldhash on every cache) as a
//! plain program that fills the cache and then makes `HITS` lookups.
//!
//! On a shared VM a hit's time swings with other tenants' memory traffic (README, levee-cache
//! table); callgrind's counts do not. Run it twice and subtract: the difference over the
//! difference in hits is the cost of one hit, the fill and the start-up cancelled out.
//!
//! ```text
//! cargo build --release --example cache_hit_cost
//! for hits in 0 1000000; do
//!   valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
//!     target/release/examples/cache_hit_cost levee $hits
//! done   # also: quick_cache, moka; an optional third argument sets the capacity
//! ```

#[path = "../benches/support/caches.rs"]
mod caches;
#[path = "../benches/support/trace.rs"]
#[allow(dead_code)] // the traces of the hit-ratio table are not used here
mod trace;

use std::hint::black_box;
use std::process::ExitCode;

use caches::Map;

const KEYS: u64 = 10_000;
const ORDER: usize = 1 << 14;
const USAGE: &str =
    "usage: cache_hit_cost <levee|quick_cache|moka> <hits> [capacity, default 20000]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [cache, hits] => hits.parse().ok().map(|h| (cache.as_str(), h, 2 * KEYS)),
        [cache, hits, capacity] => match (hits.parse(), capacity.parse()) {
            (Ok(h), Ok(c)) if c >= KEYS => Some((cache.as_str(), h, c)),
            _ => None,
        },
        _ => None,
    };
    let Some((cache, hits, capacity)) = parsed else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // The bench's key order (`benches/cache.rs`, `key_order`).
    let mut rng = trace::Rng::new(7);
    let order: Vec<u64> = (0..ORDER).map(|_| rng.next_u64() % KEYS).collect();
    match cache {
        "levee" => look_up(caches::levee(capacity, None), &order, hits),
        "quick_cache" => look_up(caches::quick(capacity), &order, hits),
        "moka" => look_up(caches::moka(capacity, None), &order, hits),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// Fills `cache` with the keys and makes `hits` lookups in `order`; every one must hit.
fn look_up<M: Map>(cache: M, order: &[u64], hits: u64) {
    let cache = caches::fill(cache, KEYS);
    let mut found = 0u64;
    for n in 0..hits {
        found += u64::from(black_box(cache.get(order[n as usize % ORDER])).is_some());
    }
    assert_eq!(found, hits, "a lookup missed: the cost would not be a hit's");
}
