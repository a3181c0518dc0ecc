//! Hit ratios of levee-cache (S3-FIFO), moka (W-TinyLFU) and quick_cache (CLOCK-Pro) on
//! fixed-seed traces: Zipf(0.9), 1M requests over 100k keys, and the same with scans mixed in.
//!
//! `cargo run --release --example cache_hit_ratio`

#[path = "../benches/support/trace.rs"]
mod trace;

fn main() {
    println!("| trace | capacity | levee | moka | quick_cache | best - levee |");
    println!("|---|---|---|---|---|---|");
    for row in trace::hit_ratio_table() {
        println!("{row}");
    }
}
