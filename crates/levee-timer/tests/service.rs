//! `TimerService` on a `ManualClock`: sleep/timeout semantics, drop cancels, delivery to the
//! stream and callbacks, bounds, statistics and events. Under paused tokio time the manual
//! clock follows tokio's auto-advance (the driver's sleep is a sleep on the clock); a test can
//! also move the clock by hand and the driver fires what became due at once. No test sleeps
//! in real time.
#![cfg(not(loom))]

use std::future::{Future, pending};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use levee_core::{ManualClock, nanos};
use levee_timer::{Precision, TimerError, TimerEvent, TimerService};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// A service on the test's own manual clock, which starts an hour in (so that "a moment ago"
/// is a valid reading).
type Timers<T = ()> = TimerService<T, ManualClock>;

fn clock() -> ManualClock {
    ManualClock::starting_at(3_600_000_000_000)
}

fn service<T: Send + 'static>() -> Timers<T> {
    TimerService::builder().shards(4).clock(clock()).build().unwrap()
}

/// The service clock's reading `d` from now.
fn after<T>(timers: &Timers<T>, d: Duration) -> u64 {
    timers.now() + nanos(d)
}

/// Polls a future once with a no-op waker.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn sleep_completes_at_its_deadline_not_before() {
    let timers: Timers = service();
    for d in [1u64, 7, 64, 1000, 65_537] {
        let start = Instant::now();
        timers.sleep(Duration::from_millis(d)).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(d), "{d} ms sleep took {took:?}");
        assert!(took <= Duration::from_millis(d + 2), "{d} ms sleep took {took:?}");
    }
    // A past deadline is ready at once.
    let mut past = timers.sleep_until(timers.now() - nanos(MS));
    assert!(past.is_elapsed());
    assert_eq!(poll_once(&mut past), Poll::Ready(()));
}

#[tokio::test]
async fn sleep_is_pending_until_time_passes() {
    let timers: Timers = service();
    let mut sleep = timers.sleep(10 * MS);
    assert_eq!(poll_once(&mut sleep), Poll::Pending);
    timers.clock().advance(9 * MS);
    tokio::task::yield_now().await; // let the driver run
    assert_eq!(poll_once(&mut sleep), Poll::Pending);
    timers.clock().advance(2 * MS);
    tokio::task::yield_now().await; // let the driver run
    assert_eq!(poll_once(&mut sleep), Poll::Ready(()));
    assert!(sleep.is_elapsed());
}

#[tokio::test(start_paused = true)]
async fn timeout_semantics() {
    let timers: Timers = service();
    assert_eq!(timers.timeout(10 * MS, async { 5 }).await, Ok(5));

    let start = Instant::now();
    let err = timers.timeout(10 * MS, pending::<()>()).await.unwrap_err();
    assert_eq!(err.to_string(), "deadline has elapsed");
    assert!(start.elapsed() >= 10 * MS && start.elapsed() <= 12 * MS);

    // The inner future wins when it finishes first.
    let inner = timers.sleep(5 * MS);
    assert_eq!(timers.timeout(10 * MS, inner).await, Ok(()));
    let inner = timers.sleep(15 * MS);
    assert!(timers.timeout(10 * MS, inner).await.is_err());

    // A future that completed leaves no timer behind once the Timeout is dropped.
    tokio::task::yield_now().await;
    assert_eq!(timers.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_sleep_or_timeout_cancels_its_timer() {
    let timers: Timers = service();
    {
        let mut sleep = timers.sleep(Duration::from_secs(60));
        assert_eq!(poll_once(&mut sleep), Poll::Pending);
        let _never_polled = timers.sleep(Duration::from_secs(60));
        let mut t = pin!(timers.timeout(Duration::from_secs(60), pending::<()>()));
        assert!(t.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(timers.pending(), 3);
    }
    let stats = timers.stats();
    assert_eq!((stats.pending, stats.cancelled, stats.fired), (0, 3, 0));
}

#[tokio::test(start_paused = true)]
async fn sleep_reset_moves_the_deadline() {
    let timers: Timers = service();
    let start = Instant::now();
    let mut sleep = pin!(timers.sleep(Duration::from_secs(10)));
    sleep.as_mut().reset(after(&timers, 20 * MS));
    sleep.as_mut().await;
    assert!(start.elapsed() >= 20 * MS && start.elapsed() < 30 * MS);
    // A completed sleep re-arms.
    sleep.as_mut().reset(after(&timers, 5 * MS));
    assert!(!sleep.is_elapsed());
    sleep.as_mut().await;
    assert!(start.elapsed() >= 25 * MS);
}

#[tokio::test(start_paused = true)]
async fn items_fire_in_order_and_cancelled_ones_never_do() {
    let timers: Timers<u32> = service();
    let mut due = timers.expirations().unwrap();
    assert!(timers.expirations().is_none(), "the stream is handed out once");
    let mut handles = Vec::new();
    for i in 0..100u32 {
        handles.push(
            timers.schedule_after(Duration::from_millis(u64::from(i % 10) * 100 + 1), i).unwrap(),
        );
    }
    for (i, h) in handles.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(timers.cancel(*h), Some(i as u32));
        }
    }
    let start = Instant::now();
    let mut got = Vec::new();
    let mut last_due = Duration::ZERO;
    while got.len() < 66 {
        let (h, i) = due.recv().await.unwrap();
        let deadline = Duration::from_millis(u64::from(i % 10) * 100 + 1);
        assert!(start.elapsed() >= deadline, "item {i} early");
        assert!(deadline >= last_due, "out of order");
        last_due = deadline;
        assert_eq!(timers.cancel(h), None, "a fired item cannot be cancelled");
        got.push(i);
    }
    got.sort_unstable();
    assert_eq!(got, (0..100).filter(|i| i % 3 != 0).collect::<Vec<_>>());
    let stats = timers.stats();
    assert_eq!((stats.pending, stats.fired, stats.cancelled, stats.backlog), (0, 66, 34, 0));
    assert_eq!(stats.lateness.count, 66);
    assert!(stats.lateness.max <= 2 * MS, "lateness {:?}", stats.lateness.max);
}

#[tokio::test(start_paused = true)]
async fn an_earlier_timer_wakes_a_sleeping_driver() {
    let timers: Timers<&str> = service();
    let mut due = timers.expirations().unwrap();
    timers.schedule_after(Duration::from_secs(3600), "late").unwrap();
    tokio::task::yield_now().await; // the driver now sleeps until the hour
    let start = Instant::now();
    timers.schedule_after(5 * MS, "soon").unwrap();
    assert_eq!(due.recv().await.unwrap().1, "soon");
    assert!(start.elapsed() < 10 * MS, "woke after {:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn reset_moves_an_item() {
    let timers: Timers<u8> = service();
    let mut due = timers.expirations().unwrap();
    let h = timers.schedule_after(Duration::from_secs(3600), 1).unwrap();
    let start = Instant::now();
    timers.reset(h, after(&timers, 3 * MS)).unwrap();
    assert_eq!(due.recv().await.unwrap(), (h, 1));
    assert!(start.elapsed() < 5 * MS);
    assert_eq!(timers.reset(h, timers.now()), Err(TimerError::StaleKey));
}

#[tokio::test(start_paused = true)]
async fn callback_delivery() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let timers: Timers<u32> = TimerService::builder()
        .on_expired(move |_, item| sink.lock().unwrap().push(item))
        .clock(clock())
        .build()
        .unwrap();
    assert!(timers.expirations().is_none());
    timers.schedule_after(2 * MS, 2).unwrap();
    timers.schedule_after(MS, 1).unwrap();
    timers.sleep(5 * MS).await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn full_service_refuses_and_sheds() {
    let timers: Timers<u32> =
        TimerService::builder().shards(2).max_pending(4).clock(clock()).build().unwrap();
    for i in 0..4 {
        timers.schedule_after(Duration::from_secs(60), i).unwrap();
    }
    match timers.schedule_after(Duration::from_secs(60), 9) {
        Err(TimerError::Full { value, max_pending }) => assert_eq!((value, max_pending), (9, 4)),
        other => panic!("expected Full, got {other:?}"),
    }
    let sleep = timers.sleep(Duration::from_secs(1));
    assert!(sleep.is_rejected());
    let start = Instant::now();
    assert!(timers.timeout(Duration::from_secs(1), pending::<()>()).await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO, "a rejected timeout fails at once");
    assert_eq!(timers.stats().rejected, 3);
}

#[tokio::test(start_paused = true)]
async fn listener_sees_fired_cancelled_and_rejected() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let timers: Timers<u8> = TimerService::builder()
        .max_pending(1)
        .shards(1)
        .listener(move |e: &TimerEvent| sink.lock().unwrap().push(e.clone()))
        .clock(clock())
        .build()
        .unwrap();
    let mut due = timers.expirations().unwrap();
    let h = timers.schedule_after(MS, 1).unwrap();
    assert!(timers.schedule_after(MS, 2).is_err());
    due.recv().await.unwrap();
    let h2 = timers.schedule_after(MS, 3).unwrap();
    timers.cancel(h2);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], TimerEvent::Rejected { max_pending: 1 });
    assert!(matches!(events[1], TimerEvent::Fired { handle, .. } if handle == h));
    assert_eq!(events[2], TimerEvent::Cancelled { handle: h2 });
}

#[tokio::test(start_paused = true)]
async fn slack_mode_fires_never_early() {
    let timers: Timers<u64> =
        TimerService::builder().mode(Precision::Slack).clock(clock()).build().unwrap();
    let mut due = timers.expirations().unwrap();
    let start = Instant::now();
    for ms in [3u64, 100, 1000, 60_000] {
        timers.schedule_after(Duration::from_millis(ms), ms).unwrap();
    }
    for _ in 0..4 {
        let (_, ms) = due.recv().await.unwrap();
        let wanted = Duration::from_millis(ms);
        let at = start.elapsed();
        assert!(at >= wanted && at <= wanted + wanted / 7 + 2 * MS, "{ms} ms fired at {at:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_service_ends_the_stream() {
    let timers: Timers<u8> = service();
    let mut due = timers.expirations().unwrap();
    timers.schedule_after(Duration::from_secs(60), 1).unwrap();
    drop(timers);
    assert_eq!(due.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn items_fired_before_the_service_is_dropped_still_come_out() {
    let timers: Timers<u8> = service();
    let mut due = timers.expirations().unwrap();
    timers.schedule_after(MS, 1).unwrap();
    timers.schedule_after(2 * MS, 2).unwrap();
    timers.clock().advance(2 * MS);
    tokio::task::yield_now().await; // let the driver run
    drop(timers);
    assert_eq!(due.recv().await.map(|(_, i)| i), Some(1));
    assert_eq!(due.recv().await.map(|(_, i)| i), Some(2));
    assert_eq!(due.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn backlog_counts_items_until_taken_and_a_dropped_stream_frees_them() {
    let timers: Timers<Arc<()>> = service();
    let mut due = timers.expirations().unwrap();
    let item = Arc::new(());
    for ms in 1..=3 {
        timers.schedule_after(ms * MS, item.clone()).unwrap();
    }
    timers.clock().advance(2 * MS);
    tokio::task::yield_now().await; // let the driver run
    assert_eq!(timers.stats().backlog, 2);
    assert!(due.try_recv().is_some());
    assert_eq!(timers.stats().backlog, 1);
    drop(due);
    assert_eq!(Arc::strong_count(&item), 2, "the untaken item went with the stream");
    timers.clock().advance(MS);
    tokio::task::yield_now().await;
    assert_eq!(Arc::strong_count(&item), 1, "an item firing afterwards is dropped");
    assert_eq!(timers.stats().backlog, 0);
}

#[test]
fn the_stream_is_send_and_sync_for_send_items() {
    fn assert_send_sync<T: Send + Sync>() {}
    // `Cell` is `Send` but not `Sync`, as any item may be.
    assert_send_sync::<levee_timer::Expirations<std::cell::Cell<u8>>>();
}

#[test]
fn build_outside_a_runtime_is_a_config_error() {
    let err = TimerService::<()>::builder().build().unwrap_err();
    assert_eq!(err.setting, "runtime");
    let err = TimerService::<()>::builder().shards(0).build().unwrap_err();
    assert_eq!(err.setting, "runtime", "runtime is checked first");
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let err = TimerService::<()>::builder().runtime(rt.handle().clone()).shards(0).build();
    assert_eq!(err.unwrap_err().setting, "shards");
    let err = TimerService::<()>::builder()
        .runtime(rt.handle().clone())
        .tick(Duration::from_nanos(1))
        .build();
    assert_eq!(err.unwrap_err().setting, "tick");
}

#[test]
fn schedule_and_cancel_from_plain_threads() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let timers: Timers<(usize, usize)> =
        TimerService::builder().runtime(rt.handle().clone()).clock(clock()).build().unwrap();
    let mut due = timers.expirations().unwrap();
    let kept = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let timers = timers.clone();
                let handle = rt.handle().clone();
                s.spawn(move || {
                    let _paused_clock = handle.enter();
                    let mut kept = 0;
                    for i in 0..1000 {
                        let h = timers
                            .schedule_after(Duration::from_millis(1 + i as u64 % 50), (t, i))
                            .unwrap();
                        if i % 2 == 0 {
                            assert_eq!(timers.cancel(h), Some((t, i)));
                        } else {
                            kept += 1;
                        }
                    }
                    kept
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum::<usize>()
    });
    let got = rt.block_on(async {
        let mut got = 0;
        while got < kept {
            let (_, (_, i)) = due.recv().await.unwrap();
            assert_eq!(i % 2, 1, "a cancelled item fired");
            got += 1;
        }
        got
    });
    assert_eq!(got, 2000);
    assert_eq!(timers.stats().cancelled, 2000);
}

/// Moving the clock by hand fires what became due at once, without any tokio time passing:
/// half an hour of order timeouts in no time at all.
#[tokio::test]
async fn moving_the_clock_by_hand_fires_at_once() {
    let clock = clock();
    let timers: Timers<&str> = TimerService::builder().clock(clock.clone()).build().unwrap();
    let mut due = timers.expirations().unwrap();
    timers.schedule_after(Duration::from_secs(30 * 60), "cancel order 7").unwrap();
    timers.schedule_after(Duration::from_secs(45 * 60), "cancel order 8").unwrap();
    tokio::task::yield_now().await; // the driver sleeps on the clock until the first deadline
    assert!(due.try_recv().is_none());
    let start = std::time::Instant::now();
    clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(due.recv().await.unwrap().1, "cancel order 7");
    assert!(due.try_recv().is_none(), "the second is not due yet");
    assert!(start.elapsed() < Duration::from_secs(5), "no real wait: {:?}", start.elapsed());
    let slow = timers.timeout(Duration::from_secs(60), pending::<()>());
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(due.recv().await.unwrap().1, "cancel order 8");
    assert!(slow.await.is_err(), "the timeout elapsed with the clock");
}
