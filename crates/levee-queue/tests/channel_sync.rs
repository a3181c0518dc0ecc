//! Blocking-API behaviour of the channel: MPMC delivery, close semantics, policies, stats.
#![cfg(not(loom))]

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use levee_queue::channel::{
    self, Builder, ChannelEvent, CloseReason, OverflowPolicy, RecvError, SendError, TryRecvError,
    TrySendError,
};

/// Each of `producers` sends `per` distinct values; all consumers together must receive each
/// exactly once.
fn mpmc_exactly_once(
    tx: channel::Sender<u64>,
    rx: channel::Receiver<u64>,
    producers: u64,
    consumers: usize,
    per: u64,
) {
    let received = Arc::new(Mutex::new(Vec::new()));
    thread::scope(|s| {
        for p in 0..producers {
            let tx = tx.clone();
            s.spawn(move || {
                for i in 0..per {
                    tx.send(p * per + i).unwrap();
                }
            });
        }
        drop(tx);
        for _ in 0..consumers {
            let rx = rx.clone();
            let received = received.clone();
            s.spawn(move || {
                let mine: Vec<u64> = rx.iter().collect();
                received.lock().unwrap().extend(mine);
            });
        }
    });
    let all = received.lock().unwrap();
    assert_eq!(all.len() as u64, producers * per, "lost or duplicated messages");
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(distinct.len() as u64, producers * per, "duplicated messages");
    let stats = rx.stats();
    assert_eq!((stats.sent, stats.received, stats.depth), (producers * per, producers * per, 0));
}

#[test]
fn bounded_mpmc_delivers_every_message_once() {
    let (tx, rx) = channel::bounded(4).unwrap();
    mpmc_exactly_once(tx, rx, 3, 3, 20_000);
}

#[test]
fn bounded_capacity_one_mpmc() {
    let (tx, rx) = channel::bounded(1).unwrap();
    mpmc_exactly_once(tx, rx, 2, 2, 5_000);
}

#[test]
fn unbounded_mpmc_delivers_every_message_once() {
    let (tx, rx) = channel::unbounded();
    mpmc_exactly_once(tx, rx, 3, 2, 20_000);
}

#[test]
fn per_producer_order_is_kept() {
    for (tx, rx) in [channel::bounded::<(u8, u32)>(3).unwrap(), channel::unbounded()] {
        thread::scope(|s| {
            for p in 0..2u8 {
                let tx = tx.clone();
                s.spawn(move || (0..10_000).for_each(|i| tx.send((p, i)).unwrap()));
            }
            let mut last = [None::<u32>; 2];
            for _ in 0..20_000 {
                let (p, i) = rx.recv().unwrap();
                assert!(last[p as usize].is_none_or(|l| l < i), "out of order");
                last[p as usize] = Some(i);
            }
        });
    }
}

#[test]
fn fifo_and_wraparound_single_thread() {
    let (tx, rx) = channel::bounded(3).unwrap();
    for round in 0..10u32 {
        for i in 0..3 {
            tx.try_send(round * 3 + i).unwrap();
        }
        assert!(tx.is_full());
        assert_eq!(tx.try_send(99), Err(TrySendError::Full(99)));
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got, [round * 3, round * 3 + 1, round * 3 + 2]);
        assert!(rx.is_empty());
    }
    assert_eq!(rx.stats().rejected, 10);
}

#[test]
fn unbounded_crosses_many_blocks_in_order() {
    let (tx, rx) = channel::unbounded();
    for i in 0..1000u32 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 1000);
    for i in 0..1000u32 {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rx.stats().sent, 1000);
    assert_eq!(rx.stats().received, 1000);
}

#[test]
fn dropping_senders_lets_receivers_drain_then_closes() {
    let (tx, rx) = channel::bounded(4).unwrap();
    let tx2 = tx.clone();
    tx.send(1).unwrap();
    tx2.send(2).unwrap();
    drop(tx);
    assert!(!rx.is_closed());
    drop(tx2);
    assert!(rx.is_closed());
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn dropping_receivers_fails_sends_with_the_value_and_discards_the_rest() {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let c = closes.clone();
    let (tx, rx) = Builder::bounded(4)
        .listener(move |e: &ChannelEvent| c.lock().unwrap().push(*e))
        .build::<String>()
        .unwrap();
    tx.send("a".into()).unwrap();
    tx.send("b".into()).unwrap();
    let rx2 = rx.clone();
    drop(rx);
    tx.send("c".into()).unwrap();
    drop(rx2);
    assert_eq!(tx.send("d".into()), Err(SendError::Closed("d".into())));
    assert_eq!(tx.try_send("e".into()), Err(TrySendError::Closed("e".into())));
    let stats = tx.stats();
    assert_eq!((stats.sent, stats.received, stats.discarded, stats.depth), (3, 0, 3, 0));
    assert_eq!(
        *closes.lock().unwrap(),
        [
            ChannelEvent::Closed { reason: CloseReason::ReceiversGone },
            ChannelEvent::Discarded { count: 3 }
        ]
    );
}

#[test]
fn explicit_close_from_either_end() {
    let (tx, rx) = channel::unbounded();
    tx.send(1).unwrap();
    assert!(rx.close());
    assert!(!tx.close(), "second close reports it was already closed");
    assert!(tx.is_closed());
    assert_eq!(tx.send(2), Err(SendError::Closed(2)));
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn close_wakes_every_blocked_sender_and_receiver() {
    // Blocked receivers.
    let (tx, rx) = channel::bounded::<u32>(1).unwrap();
    let start = Barrier::new(4);
    thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    rx.recv()
                })
            })
            .collect();
        start.wait();
        // Whether they are parked yet or not, close must release them all.
        tx.close();
        for h in handles {
            assert_eq!(h.join().unwrap(), Err(RecvError));
        }
    });

    // Blocked senders.
    let (tx, rx) = channel::bounded::<u32>(1).unwrap();
    tx.send(0).unwrap();
    let start = Barrier::new(4);
    thread::scope(|s| {
        let handles: Vec<_> = (1..4)
            .map(|i| {
                let tx = tx.clone();
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    tx.send(i)
                })
            })
            .collect();
        start.wait();
        rx.close();
        for h in handles {
            assert!(h.join().unwrap().unwrap_err().is_closed());
        }
    });
    assert_eq!(rx.recv(), Ok(0));
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn reject_policy_hands_the_value_back_and_counts() {
    let events = Arc::new(Mutex::new(0));
    let e = events.clone();
    let (tx, rx) = Builder::bounded(2)
        .overflow(OverflowPolicy::Reject)
        .listener(move |ev: &ChannelEvent| {
            if matches!(ev, ChannelEvent::Rejected { capacity: 2 }) {
                *e.lock().unwrap() += 1;
            }
        })
        .build::<u32>()
        .unwrap();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(tx.send(3), Err(SendError::Rejected(3)));
    assert_eq!(tx.try_send(4), Err(TrySendError::Full(4)));
    assert_eq!(rx.stats().rejected, 2);
    assert_eq!(*events.lock().unwrap(), 2);
    assert_eq!(rx.recv(), Ok(1));
    tx.send(5).unwrap();
}

#[test]
fn drop_oldest_evicts_counts_and_reports_every_drop() {
    let dropped = Arc::new(Mutex::new(0));
    let d = dropped.clone();
    let (tx, rx) = Builder::bounded(3)
        .overflow(OverflowPolicy::DropOldest)
        .listener(move |ev: &ChannelEvent| {
            if matches!(ev, ChannelEvent::Dropped { capacity: 3 }) {
                *d.lock().unwrap() += 1;
            }
        })
        .build::<u32>()
        .unwrap();
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    tx.try_send(10).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [8, 9, 10]);
    let stats = rx.stats();
    assert_eq!((stats.sent, stats.received, stats.dropped, stats.depth), (11, 3, 8, 0));
    assert_eq!(*dropped.lock().unwrap(), 8);
}

#[test]
fn drop_oldest_under_contention_accounts_for_every_message() {
    let (tx, rx) = Builder::bounded(2).overflow(OverflowPolicy::DropOldest).build::<u64>().unwrap();
    let got = thread::scope(|s| {
        for p in 0..2 {
            let tx = tx.clone();
            s.spawn(move || (0..20_000).for_each(|i| tx.send(p * 100_000 + i).unwrap()));
        }
        let consumer = {
            let rx = rx.clone();
            s.spawn(move || rx.iter().count() as u64)
        };
        drop(tx);
        consumer.join().unwrap()
    });
    let stats = rx.stats();
    assert_eq!(stats.sent, 40_000);
    assert_eq!(stats.received, got);
    assert_eq!(stats.received + stats.dropped, 40_000);
}

#[test]
fn handles_report_counts_and_identity() {
    let (tx, rx) = channel::bounded::<u8>(2).unwrap();
    let tx2 = tx.clone();
    let rx2 = rx.clone();
    assert_eq!((tx.sender_count(), tx.receiver_count()), (2, 2));
    assert!(tx.same_channel(&tx2) && rx.same_channel(&rx2));
    assert_eq!(tx.capacity(), Some(2));
    assert_eq!(channel::unbounded::<u8>().0.capacity(), None);
    assert!(format!("{tx:?}").starts_with("Sender"));
    drop(rx2);
    assert_eq!(tx.receiver_count(), 1);
}

#[test]
fn handles_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<channel::Sender<String>>();
    send_sync::<channel::Receiver<String>>();
    send::<channel::SendFuture<'static, String>>();
    send::<channel::RecvFuture<'static, String>>();
}
