//! Deterministic request traces: the cache cases' key order and the hit-ratio comparison's
//! traces (shared by `benches/cache.rs`, `examples/cache_hit_ratio.rs` and
//! `examples/cache_cost.rs`; not every one uses every item).
#![allow(dead_code)]

/// Keys the cache cases fill their caches with: `0..KEYS`.
pub(crate) const KEYS: u64 = 10_000;
/// Lookups in [`key_order`] (a power of two, so an index wraps with a mask).
pub(crate) const ORDER: usize = 1 << 14;
/// The first key the churn cases insert: far above the keys the caches were filled with.
pub(crate) const FRESH: u64 = 1 << 40;

/// Keys in a fixed random order, so each lookup lands somewhere else in the table.
pub(crate) fn key_order() -> Vec<u64> {
    let mut rng = Rng::new(7);
    (0..ORDER).map(|_| rng.next_u64() % KEYS).collect()
}

/// xorshift64*: a fixed-seed generator, so every run replays the same trace.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Samples ranks `0..n` with P(rank k) proportional to 1 / (k + 1)^s. Ranks are scattered over
/// the key space by a fixed permutation-like mix so popular keys are not numerically adjacent.
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let rank = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64;
        // Scatter: an odd multiplier is a bijection on u64.
        rank.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// `len` requests drawn from Zipf(`s`) over `keys` keys.
pub(crate) fn zipf_trace(len: usize, keys: usize, s: f64, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, s);
    let mut rng = Rng::new(seed);
    (0..len).map(|_| zipf.sample(&mut rng)).collect()
}

/// The Zipf trace with scans mixed in: after every 7,000 Zipf requests, a scan of 3,000 keys
/// that are requested once and never again (a batch job reading everything).
pub(crate) fn scan_mixed_trace(len: usize, keys: usize, s: f64, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(keys, s);
    let mut rng = Rng::new(seed);
    let mut next_scan_key = 1u64 << 62;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        for _ in 0..7_000 {
            out.push(zipf.sample(&mut rng));
        }
        for _ in 0..3_000 {
            out.push(next_scan_key);
            next_scan_key += 1;
        }
    }
    out.truncate(len);
    out
}

/// Replays `trace` as read-through: a miss inserts the key. Returns the hit ratio.
pub(crate) fn replay(
    trace: &[u64],
    mut get: impl FnMut(u64) -> bool,
    mut insert: impl FnMut(u64),
) -> f64 {
    let mut hits = 0usize;
    for &k in trace {
        if get(k) {
            hits += 1;
        } else {
            insert(k);
        }
    }
    hits as f64 / trace.len() as f64
}

/// The hit ratios of levee, moka and quick_cache on the three traces at capacities 1k and 10k,
/// as printable table rows `| trace | capacity | levee | moka | quick_cache | best - levee |`.
pub(crate) fn hit_ratio_table() -> Vec<String> {
    const REQUESTS: usize = 1_000_000;
    const KEYS: usize = 100_000;
    let traces = [
        ("zipf(0.9)", zipf_trace(REQUESTS, KEYS, 0.9, 42)),
        ("zipf(0.9) + scans", scan_mixed_trace(REQUESTS, KEYS, 0.9, 42)),
    ];
    let mut rows = Vec::new();
    for (name, trace) in &traces {
        for capacity in [1_000u64, 10_000] {
            let levee: levee_cache::Cache<u64, u64> = levee_cache::Cache::new(capacity);
            let l = replay(trace, |k| levee.get(&k).is_some(), |k| levee.insert(k, k));
            let moka: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(capacity);
            let m = replay(trace, |k| moka.get(&k).is_some(), |k| moka.insert(k, k));
            let quick: quick_cache::sync::Cache<u64, u64> =
                quick_cache::sync::Cache::new(capacity as usize);
            let q = replay(trace, |k| quick.get(&k).is_some(), |k| quick.insert(k, k));
            let best = l.max(m).max(q);
            rows.push(format!(
                "| {name} | {capacity} | {:.2} % | {:.2} % | {:.2} % | {:.2} pt |",
                l * 100.0,
                m * 100.0,
                q * 100.0,
                (best - l) * 100.0
            ));
        }
    }
    rows
}
