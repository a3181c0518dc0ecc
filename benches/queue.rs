//! levee-queue against what users pick today: its channels against crossbeam-channel, flume,
//! kanal and tokio's mpsc (`channel.rs`), its broker's publish -> receive -> ack against raw
//! channels, and the broker's end-to-end latency (`broker.rs`).
//!
//! `cargo bench --bench queue` runs everything; name filters pick parts, e.g.
//! `cargo bench --bench queue -- spsc`, `-- broker_2c`, `-- broker_latency`.

#[path = "queue/broker.rs"]
mod broker;
#[path = "queue/channel.rs"]
mod channel;

fn main() {
    broker::latency_if_wanted();
    channel::benches();
    broker::benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
