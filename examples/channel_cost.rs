//! The work of a channel round trip, for counting instructions instead of timing:
//! `cargo bench --bench queue`'s `channel/try_send_try_recv_1t` case (one thread, a `try_send`
//! and a `try_recv` of a `u64` per message, bounded 1024) as a plain program that makes `OPS`
//! round trips through levee's channel, crossbeam-channel, flume or kanal.
//!
//! One-thread timings of a few nanoseconds move with the host; cachegrind's counts do not. Run
//! it twice and subtract: the difference over the difference in round trips is the cost of one,
//! the start-up cancelled.
//!
//! ```text
//! cargo build --release --example channel_cost
//! for ops in 0 1000000; do
//!   valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
//!     target/release/examples/channel_cost levee $ops
//! done   # also: crossbeam, flume, kanal
//! ```

use std::hint::black_box;
use std::process::ExitCode;

const USAGE: &str = "usage: channel_cost <levee|crossbeam|flume|kanal> <ops>";

/// The bench's capacity.
const CAPACITY: usize = 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(channel), Some(Ok(ops))) = (args.first(), args.get(1).map(|o| o.parse::<u64>()))
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let done = match channel.as_str() {
        "levee" => levee(ops),
        "crossbeam" => crossbeam(ops),
        "flume" => flume(ops),
        "kanal" => kanal(ops),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if done != ops {
        eprintln!("channel_cost: {done} of {ops} round trips went through");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Makes `ops` round trips and returns how many got their message back (every one, on an
/// empty channel of capacity 1024), so that a failed send shows as an error.
fn round_trips(ops: u64, mut round_trip: impl FnMut() -> bool) -> u64 {
    (0..ops).filter(|_| round_trip()).count() as u64
}

fn levee(ops: u64) -> u64 {
    let Ok((tx, rx)) = levee_queue::channel::bounded(CAPACITY) else { return 0 };
    round_trips(ops, || tx.try_send(black_box(1u64)).is_ok() && black_box(rx.try_recv()).is_ok())
}

fn crossbeam(ops: u64) -> u64 {
    let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
    round_trips(ops, || tx.try_send(black_box(1u64)).is_ok() && black_box(rx.try_recv()).is_ok())
}

fn flume(ops: u64) -> u64 {
    let (tx, rx) = flume::bounded(CAPACITY);
    round_trips(ops, || tx.try_send(black_box(1u64)).is_ok() && black_box(rx.try_recv()).is_ok())
}

/// kanal's `try_send` reports a full channel as `Ok(false)` and `try_recv` an empty one as
/// `Ok(None)`.
fn kanal(ops: u64) -> u64 {
    let (tx, rx) = kanal::bounded(CAPACITY);
    round_trips(ops, || {
        tx.try_send(black_box(1u64)) == Ok(true) && matches!(black_box(rx.try_recv()), Ok(Some(_)))
    })
}
