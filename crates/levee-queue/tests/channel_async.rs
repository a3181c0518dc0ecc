//! Async ends: tokio tasks, mixed sync/async use, cancellation safety.
#![cfg(not(loom))]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use levee_queue::channel::{self, Builder, OverflowPolicy, RecvError, SendError};
use tokio::time::sleep;

/// A waker that counts how often it was woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let c = Arc::new(CountingWaker::default());
    (c.clone(), Waker::from(c))
}

fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    std::pin::Pin::new(f).poll(&mut Context::from_waker(waker))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_spsc_keeps_order() {
    let (tx, rx) = channel::bounded::<u32>(8).unwrap();
    let producer = tokio::spawn(async move {
        for i in 0..20_000 {
            tx.send_async(i).await.unwrap();
        }
    });
    for i in 0..20_000 {
        assert_eq!(rx.recv_async().await, Ok(i));
    }
    producer.await.unwrap();
    assert_eq!(rx.recv_async().await, Err(RecvError));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_mpmc_exactly_once() {
    for (tx, rx) in [channel::bounded::<u64>(4).unwrap(), channel::unbounded()] {
        let mut producers = Vec::new();
        for p in 0..3u64 {
            let tx = tx.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..5_000 {
                    tx.send_async(p * 5_000 + i).await.unwrap();
                }
            }));
        }
        drop(tx);
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Ok(v) = rx.recv_async().await {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.await.unwrap();
        }
        let mut all = Vec::new();
        for c in consumers {
            all.extend(c.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..15_000).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_async_ends_mix() {
    let (tx, rx) = channel::bounded::<u32>(2).unwrap();
    // A blocking thread sends; an async task receives.
    let sync_sender = {
        let tx = tx.clone();
        std::thread::spawn(move || (0..5_000).for_each(|i| tx.send(i).unwrap()))
    };
    // An async task sends; a blocking thread receives.
    let async_sender = tokio::spawn(async move {
        for i in 5_000..10_000 {
            tx.send_async(i).await.unwrap();
        }
    });
    let sync_receiver = {
        let rx = rx.clone();
        std::thread::spawn(move || rx.iter().take(3_000).count())
    };
    let mut got = 0;
    while got < 7_000 {
        rx.recv_async().await.unwrap();
        got += 1;
    }
    sync_sender.join().unwrap();
    async_sender.await.unwrap();
    assert_eq!(sync_receiver.join().unwrap(), 3_000);
    assert_eq!(rx.try_recv().ok(), None);
    assert_eq!(rx.stats().received, 10_000);
}

#[test]
fn dropped_recv_future_loses_nothing_and_hands_on_its_wakeup() {
    let (tx, rx) = channel::bounded::<u32>(4).unwrap();
    let (first_wakes, first_waker) = counting_waker();
    let (second_wakes, second_waker) = counting_waker();
    let mut first = rx.recv_async();
    let mut second = rx.recv_async();
    assert!(poll_once(&mut first, &first_waker).is_pending());
    assert!(poll_once(&mut second, &second_waker).is_pending());

    tx.send(7).unwrap();
    // The longest waiter is notified; it is cancelled before it runs.
    assert_eq!(first_wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(second_wakes.0.load(Ordering::SeqCst), 0);
    drop(first);
    // Its notification moved on, and the message is still there.
    assert_eq!(second_wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(&mut second, &second_waker), Poll::Ready(Ok(7)));
}

#[test]
fn dropped_pending_send_future_sends_nothing() {
    let (tx, rx) = channel::bounded::<Arc<()>>(1).unwrap();
    let token = Arc::new(());
    tx.send(token.clone()).unwrap();
    let (_, waker) = counting_waker();
    let mut pending = tx.send_async(token.clone());
    assert!(poll_once(&mut pending, &waker).is_pending());
    assert_eq!(Arc::strong_count(&token), 3);
    drop(pending); // the value goes with it
    assert_eq!(Arc::strong_count(&token), 2);
    assert_eq!(rx.len(), 1);
    rx.recv().unwrap();
    assert!(rx.is_empty());
    assert_eq!(rx.stats().sent, 1);
}

#[test]
fn woken_then_dropped_send_future_hands_on_its_wakeup() {
    let (tx, rx) = channel::bounded::<u32>(1).unwrap();
    tx.send(0).unwrap();
    let (a_wakes, a_waker) = counting_waker();
    let (b_wakes, b_waker) = counting_waker();
    let mut a = tx.send_async(1);
    let mut b = tx.send_async(2);
    assert!(poll_once(&mut a, &a_waker).is_pending());
    assert!(poll_once(&mut b, &b_waker).is_pending());
    assert_eq!(rx.recv(), Ok(0));
    assert_eq!(a_wakes.0.load(Ordering::SeqCst), 1);
    drop(a);
    assert_eq!(b_wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(&mut b, &b_waker), Poll::Ready(Ok(())));
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2]);
}

#[test]
fn completed_send_future_sent_exactly_once() {
    let (tx, rx) = channel::bounded::<u32>(1).unwrap();
    let (_, waker) = counting_waker();
    let mut f = tx.send_async(5);
    assert_eq!(poll_once(&mut f, &waker), Poll::Ready(Ok(())));
    drop(f);
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [5]);
}

#[tokio::test(start_paused = true)]
async fn select_with_timeouts_loses_and_duplicates_nothing() {
    // recv races a timer over and over; whichever wins, the recv future is dropped half the
    // time. Every message must still arrive exactly once.
    let (tx, rx) = channel::bounded::<u32>(2).unwrap();
    let producer = tokio::spawn(async move {
        for i in 0..500 {
            tx.send_async(i).await.unwrap();
            if i % 3 == 0 {
                sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut got = Vec::new();
    loop {
        tokio::select! {
            r = rx.recv_async() => match r {
                Ok(v) => got.push(v),
                Err(RecvError) => break,
            },
            () = sleep(Duration::from_millis(1)) => {}
        }
    }
    producer.await.unwrap();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
}

#[tokio::test]
async fn close_wakes_pending_futures() {
    let (tx, rx) = channel::bounded::<u32>(1).unwrap();
    let waiting_receivers: Vec<_> = (0..3)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move { rx.recv_async().await })
        })
        .collect();
    tokio::task::yield_now().await;
    tx.close();
    for r in waiting_receivers {
        assert_eq!(r.await.unwrap(), Err(RecvError));
    }

    let (tx, rx) = channel::bounded::<u32>(1).unwrap();
    tx.send(0).unwrap();
    let waiting_senders: Vec<_> = (1..4)
        .map(|i| {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send_async(i).await })
        })
        .collect();
    tokio::task::yield_now().await;
    drop(rx); // the last receiver closes the channel
    for s in waiting_senders {
        assert!(s.await.unwrap().unwrap_err().is_closed());
    }
}

#[tokio::test]
async fn async_policies() {
    let (tx, rx) = Builder::bounded(1).overflow(OverflowPolicy::Reject).build::<u32>().unwrap();
    tx.send_async(1).await.unwrap();
    assert_eq!(tx.send_async(2).await, Err(SendError::Rejected(2)));
    assert_eq!(rx.stats().rejected, 1);

    let (tx, rx) = Builder::bounded(1).overflow(OverflowPolicy::DropOldest).build::<u32>().unwrap();
    tx.send_async(1).await.unwrap();
    tx.send_async(2).await.unwrap();
    assert_eq!(rx.recv_async().await, Ok(2));
    assert_eq!(rx.stats().dropped, 1);
}
