//! levee-queue's channel: a bounded MPMC channel with sync and async ends, an overflow policy
//! that never drops silently, and statistics.
//!
//! `cargo run --release --example queue_channel`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use levee_queue::channel::{self, Builder, ChannelEvent, OverflowPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Work queue: two producers, two competing consumers, senders wait when it is full.
    let (tx, rx) = channel::bounded::<u64>(64)?;
    let total: u64 = std::thread::scope(|s| {
        for p in 0..2 {
            let tx = tx.clone();
            s.spawn(move || (0..100_000).for_each(|i| tx.send(p * 100_000 + i).unwrap()));
        }
        drop(tx); // the channel closes when the producers finish
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || rx.iter().count() as u64)
            })
            .collect();
        consumers.into_iter().map(|c| c.join().unwrap()).sum()
    });
    let stats = rx.stats();
    println!("work queue: received {total} of {} sent, depth {}", stats.sent, stats.depth);

    // Latest-value feed: a slow reader of a DropOldest channel sees the newest readings, and
    // every reading it missed is counted and reported.
    let dropped_events = Arc::new(AtomicU64::new(0));
    let counter = dropped_events.clone();
    let (tx, rx) = Builder::bounded(4)
        .overflow(OverflowPolicy::DropOldest)
        .listener(move |e: &ChannelEvent| {
            if matches!(e, ChannelEvent::Dropped { .. }) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build::<u32>()?;
    for reading in 0..100 {
        tx.send(reading)?;
    }
    let latest: Vec<u32> = rx.try_iter().collect();
    let stats = rx.stats();
    println!(
        "feed: kept {latest:?}, dropped {} (listener saw {})",
        stats.dropped,
        dropped_events.load(Ordering::Relaxed)
    );
    Ok(())
}
