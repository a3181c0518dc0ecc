//! The work of a cache operation, for counting instructions and cache misses instead of
//! timing: two cases of `cargo bench --bench cache` (`u64 -> u64`, foldhash on every cache) as
//! a plain program that fills a cache and then runs `OPS` operations:
//!
//! - `hit`: `cache/hit_1t`, 10k keys in a cache of capacity 20k, looked up in the bench's
//!   fixed random order (every lookup must hit);
//! - `churn`: `cache/churn_1t`, a cache of capacity 10k filled with 10k keys, then inserts of
//!   keys never seen before, each evicting one.
//!
//! On a shared VM an operation's time swings with other tenants' memory traffic (README,
//! levee-cache table); callgrind's counts do not. Run it twice and subtract: the difference
//! over the difference in operations is the cost of one, the fill and the start-up cancelled.
//!
//! ```text
//! cargo build --release --example cache_cost
//! for ops in 0 1000000; do
//!   valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
//!     target/release/examples/cache_cost hit levee $ops
//! done   # also: churn; quick_cache, moka; an optional last argument sets the capacity
//! ```

#[path = "../benches/support/caches.rs"]
mod caches;
#[path = "../benches/support/trace.rs"]
mod trace;

use std::hint::black_box;
use std::process::ExitCode;

use caches::Map;
use trace::{FRESH, KEYS, ORDER, key_order};

const USAGE: &str = "usage: cache_cost <hit|churn> <levee|quick_cache|moka> <ops> [capacity]";

#[derive(Clone, Copy)]
enum Case {
    Hit,
    Churn,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((case, cache, ops, capacity)) = parse(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let order = key_order();
    match cache {
        "levee" => run(caches::levee(capacity, None), case, &order, ops),
        "quick_cache" => run(caches::quick(capacity), case, &order, ops),
        "moka" => run(caches::moka(capacity, None), case, &order, ops),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// The case, the cache's name, the operations and the capacity (by default 20k for `hit`,
/// 10k for `churn`, as in the bench), or `None` for arguments that do not parse.
fn parse(args: &[String]) -> Option<(Case, &str, u64, u64)> {
    let (case, cache, ops, capacity) = match args {
        [case, cache, ops] => (case, cache, ops, None),
        [case, cache, ops, capacity] => (case, cache, ops, Some(capacity)),
        _ => return None,
    };
    let case = match case.as_str() {
        "hit" => Case::Hit,
        "churn" => Case::Churn,
        _ => return None,
    };
    let capacity = match (capacity, case) {
        (Some(c), _) => c.parse().ok().filter(|&c| c >= KEYS)?,
        (None, Case::Hit) => 2 * KEYS,
        (None, Case::Churn) => KEYS,
    };
    Some((case, cache.as_str(), ops.parse().ok()?, capacity))
}

/// Fills `cache` with the keys and runs `ops` operations of `case` on it.
fn run<M: Map>(cache: M, case: Case, order: &[u64], ops: u64) {
    let cache = caches::fill(cache, KEYS);
    match case {
        Case::Hit => {
            let mut found = 0u64;
            for n in 0..ops {
                found += u64::from(black_box(cache.get(order[n as usize % ORDER])).is_some());
            }
            assert_eq!(found, ops, "a lookup missed: the count would not be a hit's");
        }
        Case::Churn => {
            for n in 0..ops {
                cache.insert(FRESH + n, n);
            }
        }
    }
}
