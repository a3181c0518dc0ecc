//! The work of a cache operation, for counting instructions and cache misses instead of
//! timing: three cases of `cargo bench --bench cache` (`u64 -> u64`, foldhash on every cache)
//! as a plain program that runs `OPS` operations:
//!
//! - `hit`: `cache/hit_1t`, 10k keys in a cache of capacity 20k, looked up in the bench's
//!   fixed random order (every lookup must hit);
//! - `churn`: `cache/churn_1t`, a cache of capacity 10k filled with 10k keys, then inserts of
//!   keys never seen before, each evicting one;
//! - `replay`: `cache/zipf_replay`, the read-through replay (a get, and an insert when it
//!   misses) of the bench's Zipf(0.9) trace of 100k requests over 100k keys on a new cache of
//!   capacity 10k, cold, as the bench times it (building the cache included); `OPS` is a
//!   multiple of the trace's length.
//!
//! On a shared VM an operation's time swings with other tenants' memory traffic (README,
//! levee-cache table); cachegrind's counts do not. Run it twice and subtract: the difference
//! over the difference in operations is the cost of one, the fill and the start-up cancelled.
//! The counts still move by a few instructions an operation from one process to the next
//! (foldhash seeds itself per process, so the tables' layouts differ): take the median of a
//! few.
//!
//! ```text
//! cargo build --release --example cache_cost
//! for ops in 0 1000000; do
//!   valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
//!     target/release/examples/cache_cost hit levee $ops
//! done   # also: churn, replay; quick_cache, moka; an optional last argument sets the capacity
//! ```

#[path = "../benches/support/caches.rs"]
mod caches;
#[path = "../benches/support/trace.rs"]
mod trace;

use std::hint::black_box;
use std::process::ExitCode;

use caches::Map;
use trace::{FRESH, KEYS, ORDER, key_order};

const USAGE: &str =
    "usage: cache_cost <hit|churn|replay> <levee|quick_cache|moka> <ops> [capacity]";

/// `cache/zipf_replay`'s trace: requests, keys, exponent, seed.
const REPLAY: (usize, usize, f64, u64) = (100_000, 100_000, 0.9, 42);

#[derive(Clone, Copy)]
enum Case {
    Hit,
    Churn,
    Replay,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((case, cache, ops, capacity)) = parse(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if matches!(case, Case::Replay) && ops % REPLAY.0 as u64 != 0 {
        eprintln!("{USAGE}\n(for replay, ops is a multiple of {})", REPLAY.0);
        return ExitCode::from(2);
    }
    match cache {
        "levee" => run(|| caches::levee(capacity, None), case, ops),
        "quick_cache" => run(|| caches::quick(capacity), case, ops),
        "moka" => run(|| caches::moka(capacity, None), case, ops),
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
        "replay" => Case::Replay,
        _ => return None,
    };
    let capacity = match (capacity, case) {
        (Some(c), _) => c.parse().ok().filter(|&c| c >= KEYS)?,
        (None, Case::Hit) => 2 * KEYS,
        (None, Case::Churn | Case::Replay) => KEYS,
    };
    Some((case, cache.as_str(), ops.parse().ok()?, capacity))
}

/// Runs `ops` operations of `case` on caches made by `new_cache`.
fn run<M: Map>(new_cache: impl Fn() -> M, case: Case, ops: u64) {
    match case {
        Case::Hit => hit(&caches::fill(new_cache(), KEYS), ops),
        Case::Churn => churn(&caches::fill(new_cache(), KEYS), ops),
        Case::Replay => replay(new_cache, ops),
    }
}

/// `ops` lookups of the filled keys, in the bench's order.
fn hit<M: Map>(cache: &M, ops: u64) {
    let order = key_order();
    let mut found = 0u64;
    for n in 0..ops {
        found += u64::from(black_box(cache.get(order[n as usize % ORDER])).is_some());
    }
    assert_eq!(found, ops, "a lookup missed: the count would not be a hit's");
}

/// `ops` inserts of keys never seen before.
fn churn<M: Map>(cache: &M, ops: u64) {
    for n in 0..ops {
        cache.insert(FRESH + n, n);
    }
}

/// `ops` requests of the Zipf trace, replayed read-through on a new cache each time through.
fn replay<M: Map>(new_cache: impl Fn() -> M, ops: u64) {
    let (len, keys, s, seed) = REPLAY;
    let trace = trace::zipf_trace(len, keys, s, seed);
    for _ in 0..ops / len as u64 {
        let cache = new_cache();
        black_box(trace::replay(&trace, |k| cache.get(k).is_some(), |k| cache.insert(k, k)));
    }
}
