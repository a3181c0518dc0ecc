//! Every value put into a channel is dropped exactly once: received, evicted, rejected,
//! discarded with the last receiver, or left inside when the channel itself goes.
//! (A Miri-free check: each value records its own drop in a shared ledger.)
#![cfg(not(loom))]

use std::sync::{Arc, Mutex};
use std::thread;

use levee_queue::channel::{self, Builder, OverflowPolicy};

/// For each value id: was it created, and how many times was it dropped.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Vec<(bool, u32)>>>);

impl Ledger {
    fn value(&self, id: usize) -> Tracked {
        let mut entries = self.0.lock().unwrap();
        if entries.len() <= id {
            entries.resize(id + 1, (false, 0));
        }
        entries[id].0 = true;
        Tracked { id, ledger: self.clone() }
    }

    fn drops(&self, id: usize) -> u32 {
        self.0.lock().unwrap()[id].1
    }

    /// Asserts that values `0..n` were each created and dropped exactly once.
    fn all_dropped_once(&self, n: usize) {
        let entries = self.0.lock().unwrap();
        assert_eq!(entries.len(), n);
        for (id, &(created, drops)) in entries.iter().enumerate() {
            assert!(created, "value {id} never created");
            assert_eq!(drops, 1, "value {id} dropped {drops} times");
        }
    }

    /// Asserts that every value created was dropped exactly once; returns how many there were.
    fn created_dropped_once(&self) -> usize {
        let entries = self.0.lock().unwrap();
        let mut created = 0;
        for (id, &(was_created, drops)) in entries.iter().enumerate() {
            if was_created {
                created += 1;
                assert_eq!(drops, 1, "value {id} dropped {drops} times");
            } else {
                assert_eq!(drops, 0);
            }
        }
        created
    }
}

struct Tracked {
    id: usize,
    ledger: Ledger,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ledger.0.lock().unwrap()[self.id].1 += 1;
    }
}

#[test]
fn leftovers_in_a_wrapped_ring_drop_once_with_the_channel() {
    let ledger = Ledger::default();
    let (tx, rx) = channel::bounded(4).unwrap();
    let mut next = 0;
    // Wrap the ring a few times, then leave 3 values straddling the wrap point.
    for _ in 0..3 {
        for _ in 0..3 {
            tx.send(ledger.value(next)).unwrap();
            next += 1;
        }
        for _ in 0..3 {
            drop(rx.recv().unwrap());
        }
    }
    for _ in 0..3 {
        tx.send(ledger.value(next)).unwrap();
        next += 1;
    }
    assert_eq!(ledger.drops(next - 1), 0);
    drop(tx);
    drop(rx);
    ledger.all_dropped_once(next);
}

#[test]
fn leftovers_across_blocks_of_an_unbounded_channel_drop_once() {
    for drained in [0, 1, 30, 31, 32, 62, 100] {
        let ledger = Ledger::default();
        let (tx, rx) = channel::unbounded();
        for id in 0..100 {
            tx.send(ledger.value(id)).unwrap();
        }
        for _ in 0..drained {
            drop(rx.recv().unwrap());
        }
        // The receiver goes first (discarding), then the channel.
        drop(rx);
        assert_eq!(tx.stats().discarded, 100 - drained as u64);
        ledger.all_dropped_once(100);
        drop(tx);
        ledger.all_dropped_once(100);
    }
}

#[test]
fn senders_outliving_receivers_see_values_discarded_at_once() {
    let ledger = Ledger::default();
    let (tx, rx) = channel::bounded(8).unwrap();
    for id in 0..5 {
        tx.send(ledger.value(id)).unwrap();
    }
    drop(rx);
    // Discarded now, not when the last sender goes.
    ledger.all_dropped_once(5);
    let refused = tx.send(ledger.value(5)).unwrap_err().into_inner();
    assert_eq!(ledger.drops(5), 0);
    drop(refused);
    ledger.all_dropped_once(6);
}

#[test]
fn evicted_and_rejected_values_drop_once() {
    let ledger = Ledger::default();
    let (tx, rx) = Builder::bounded(2).overflow(OverflowPolicy::DropOldest).build().unwrap();
    for id in 0..10 {
        tx.send(ledger.value(id)).unwrap();
    }
    for id in 0..8 {
        assert_eq!(ledger.drops(id), 1, "evicted value {id}");
    }
    drop((tx, rx));
    ledger.all_dropped_once(10);

    let ledger = Ledger::default();
    let (tx, rx) = Builder::bounded(1).overflow(OverflowPolicy::Reject).build().unwrap();
    tx.send(ledger.value(0)).unwrap();
    let back = tx.send(ledger.value(1)).unwrap_err();
    let back_too = tx.try_send(ledger.value(2)).unwrap_err();
    assert_eq!((ledger.drops(1), ledger.drops(2)), (0, 0));
    drop((back, back_too, tx, rx));
    ledger.all_dropped_once(3);
}

#[test]
fn concurrent_traffic_then_teardown_drops_everything_once() {
    for capacity in [Some(1), Some(3), None] {
        let ledger = Ledger::default();
        let builder = capacity.map_or_else(Builder::unbounded, Builder::bounded);
        let (tx, rx) = builder.build().unwrap();
        let per = 2_000;
        thread::scope(|s| {
            for p in 0..2 {
                let tx = tx.clone();
                let ledger = ledger.clone();
                s.spawn(move || {
                    for i in 0..per {
                        let v = ledger.value(p * per + i);
                        // Stop early once the consumers have closed the channel.
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                });
            }
            for _ in 0..2 {
                let rx = rx.clone();
                s.spawn(move || {
                    for _ in 0..per / 2 {
                        if rx.recv().is_err() {
                            break;
                        }
                    }
                    rx.close();
                });
            }
        });
        drop((tx, rx));
        // Producers stop early once the channel closes; every value they did create was
        // dropped exactly once (received, refused, discarded or left in the channel).
        assert!(ledger.created_dropped_once() >= per / 2);
    }
}
