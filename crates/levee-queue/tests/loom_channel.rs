//! Model checks of the channel: no message lost or duplicated, close wakes everyone.
//!
//! `RUSTFLAGS="--cfg loom -D warnings" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom
//!  cargo test --release -p levee-queue --test loom_channel`
//!
//! Without `--cfg loom` each test runs once as a plain smoke test. Models are tiny (two or
//! three threads, a handful of operations, capacity 1 or 2, unbounded blocks of 2 slots under
//! loom) so the whole file stays within a couple of minutes.
//!
//! The shape of each model matters. Like every Vyukov-style queue, the ring makes a thread
//! that finds a peer between its claim (CAS) and its stamp store wait, with yields, for that
//! peer. Loom treats a switch between two yielding threads as free (not a preemption), so a
//! model in which two threads can wait on the same preempted third one has an unbounded
//! schedule and fails with "exceeded maximum number of branches", although no real
//! scheduler would starve that thread. Each model below therefore lets at most one thread
//! wait on a peer at a time: two consumers only race over messages already written, two
//! producers only share a ring they cannot wrap.

use levee_core::sync::{Arc, AtomicUsize, Ordering, model, thread};
use levee_queue::channel::{self, Builder, OverflowPolicy, RecvError, TryRecvError};

/// One producer and one consumer on a capacity-1 ring: the ring wraps twice, the producer
/// blocks while full and the consumer while empty; every value arrives once, in order.
#[test]
fn spsc_wraps_and_blocks_both_ways() {
    model(|| {
        let (tx, rx) = channel::bounded::<u32>(1).unwrap();
        let producer = thread::spawn(move || (1..=3).for_each(|v| tx.send(v).unwrap()));
        for v in 1..=3 {
            assert_eq!(rx.recv(), Ok(v));
        }
        producer.join().unwrap();
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

/// Two producers and one blocking consumer on a capacity-2 ring: each value exactly once.
#[test]
fn two_producers_one_consumer() {
    model(|| {
        let (tx, rx) = channel::bounded::<u32>(2).unwrap();
        let tx2 = tx.clone();
        let a = thread::spawn(move || tx.send(1).unwrap());
        let b = thread::spawn(move || tx2.send(2).unwrap());
        let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        a.join().unwrap();
        b.join().unwrap();
        // Both senders gone: closed and drained.
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

/// Two producers race `try_send` into a capacity-1 ring with a consumer taking at most one:
/// every value is either received, still queued, or handed back as `Full`, exactly once.
#[test]
fn two_producers_try_send_one_consumer() {
    model(|| {
        let (tx, rx) = channel::bounded::<u32>(1).unwrap();
        let returned = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|v| {
                let tx = tx.clone();
                let returned = returned.clone();
                thread::spawn(move || {
                    if let Err(e) = tx.try_send(v) {
                        assert!(e.is_full());
                        returned.fetch_add(e.into_inner() as usize, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        drop(tx);
        let taken = rx.try_recv().map_or(0, |v| v as usize);
        for p in producers {
            p.join().unwrap();
        }
        let rest: usize = rx.try_iter().map(|v| v as usize).sum();
        assert_eq!(taken + rest + returned.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(rx.stats().rejected as usize, usize::from(returned.load(Ordering::Relaxed) > 0));
    });
}

/// Two consumers race over a wrapped ring: each queued value is taken exactly once.
#[test]
fn two_consumers_race() {
    model(|| {
        let (tx, rx) = channel::bounded::<u32>(2).unwrap();
        // Wrap once so the consumers work on lap 1.
        tx.send(0).unwrap();
        assert_eq!(rx.recv(), Ok(0));
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        let rx2 = rx.clone();
        let other = thread::spawn(move || rx2.iter().sum::<u32>());
        let mine: u32 = rx.iter().sum();
        assert_eq!(mine + other.join().unwrap(), 3);
    });
}

/// Close wakes a receiver blocked on an empty channel and a sender blocked on a full one.
#[test]
fn close_wakes_blocked_sender_and_receiver() {
    model(|| {
        let (tx, rx) = channel::bounded::<u32>(1).unwrap();
        let (tx_full, rx_full) = channel::bounded::<u32>(1).unwrap();
        tx_full.send(0).unwrap();
        let receiver = {
            let rx = rx.clone();
            thread::spawn(move || rx.recv())
        };
        let sender = {
            let tx_full = tx_full.clone();
            thread::spawn(move || tx_full.send(1))
        };
        tx.close();
        rx_full.close();
        assert_eq!(receiver.join().unwrap(), Err(RecvError));
        assert_eq!(sender.join().unwrap().unwrap_err().into_inner(), 1);
        assert_eq!(rx_full.recv(), Ok(0));
    });
}

/// Dropping the last sender wakes every blocked receiver.
#[test]
fn last_sender_drop_wakes_all_receivers() {
    model(|| {
        let (tx, rx) = channel::unbounded::<u32>();
        let rx2 = rx.clone();
        let a = thread::spawn(move || rx.recv());
        let b = thread::spawn(move || rx2.recv());
        drop(tx);
        assert_eq!(a.join().unwrap(), Err(RecvError));
        assert_eq!(b.join().unwrap(), Err(RecvError));
    });
}

/// Unbounded: two producers fill a block (2 slots under loom), so one of them links the
/// next block, while a consumer drains and retires the first block into the spare cache.
#[test]
fn unbounded_two_producers_across_blocks() {
    model(|| {
        let (tx, rx) = channel::unbounded::<u32>();
        let tx2 = tx.clone();
        let a = thread::spawn(move || tx.send(1).unwrap());
        let b = thread::spawn(move || tx2.send(2).unwrap());
        let sum = rx.recv().unwrap() + rx.recv().unwrap();
        assert_eq!(sum, 3);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

/// Unbounded single producer and consumer over two block boundaries, reusing a spare block.
#[test]
fn unbounded_spsc_reuses_blocks() {
    model(|| {
        let (tx, rx) = channel::unbounded::<u32>();
        let producer = thread::spawn(move || (1..=5).for_each(|v| tx.send(v).unwrap()));
        for v in 1..=5 {
            assert_eq!(rx.recv(), Ok(v));
        }
        producer.join().unwrap();
    });
}

/// Unbounded with two consumers racing over the block end: each value once.
#[test]
fn unbounded_two_consumers() {
    model(|| {
        let (tx, rx) = channel::unbounded::<u32>();
        for v in [1, 2, 4] {
            tx.send(v).unwrap();
        }
        drop(tx);
        let rx2 = rx.clone();
        let other = thread::spawn(move || rx2.iter().sum::<u32>());
        let mine: u32 = rx.iter().sum();
        assert_eq!(mine + other.join().unwrap(), 7);
    });
}

/// DropOldest with a racing receiver: every message is received or counted as dropped.
#[test]
fn drop_oldest_accounts_for_everything() {
    model(|| {
        let (tx, rx) =
            Builder::bounded(1).overflow(OverflowPolicy::DropOldest).build::<u32>().unwrap();
        let tx2 = tx.clone();
        let a = thread::spawn(move || tx.send(1).unwrap());
        let b = thread::spawn(move || tx2.send(2).unwrap());
        let first = rx.try_recv().is_ok() as u64;
        a.join().unwrap();
        b.join().unwrap();
        let rest = rx.try_iter().count() as u64;
        let stats = rx.stats();
        assert_eq!(stats.sent, 2);
        assert_eq!(stats.received, first + rest);
        assert_eq!(stats.received + stats.dropped, 2);
    });
}

/// An async receiver (polled by loom's executor) is woken by a sender thread.
#[test]
fn async_receiver_is_woken() {
    model(|| {
        let (tx, rx) = channel::bounded::<u32>(1).unwrap();
        let t = thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(block_on(rx.recv_async()), Ok(7));
        t.join().unwrap();
    });
}

#[cfg(loom)]
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    loom::future::block_on(f)
}

#[cfg(not(loom))]
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}
