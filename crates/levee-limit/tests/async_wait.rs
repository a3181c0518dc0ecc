//! Waiting, pacing and queueing under `tokio::time::pause()` with a `ManualClock`: the two
//! clocks move together, so every wait is exact and no test sleeps for real.

use std::sync::Arc;
use std::time::Duration;

use levee_core::{Clock, ManualClock};
use levee_limit::{
    Bulkhead, BulkheadError, Jitter, KeyedRateLimiter, Pacer, Quota, RateLimiter, WarmUpLimiter,
};
use tokio::time::{Instant, sleep, timeout};

const MS: u64 = 1_000_000;

fn limiter(quota: Quota) -> (ManualClock, Arc<RateLimiter<ManualClock>>) {
    let clock = ManualClock::new();
    (clock.clone(), Arc::new(RateLimiter::with_clock(quota, clock).unwrap()))
}

#[tokio::test(start_paused = true)]
async fn until_ready_waits_exactly_the_retry_time() {
    let (clock, limiter) = limiter(Quota::per_second(10).with_burst(1));
    let start = Instant::now();
    limiter.until_ready().await; // free: no wait
    assert_eq!(start.elapsed(), Duration::ZERO);
    limiter.until_ready().await;
    assert_eq!(clock.now(), 100 * MS);
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    let stats = limiter.stats();
    assert_eq!((stats.waited, stats.rejected), (1, 0), "a wait is not a rejection");
}

#[tokio::test(start_paused = true)]
async fn until_n_ready_refuses_more_than_the_burst_at_once() {
    let (clock, limiter) = limiter(Quota::per_second(10).with_burst(3));
    let err = limiter.until_n_ready(4).await.unwrap_err();
    assert_eq!((err.requested, err.burst), (4, 3));
    limiter.until_n_ready(3).await.unwrap();
    limiter.until_n_ready(2).await.unwrap();
    assert_eq!(clock.now(), 200 * MS, "two cells' worth of refill");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_consumes_nothing() {
    let (clock, limiter) = limiter(Quota::per_second(10).with_burst(1));
    limiter.check().unwrap();
    // Give up after 50 ms of a 100 ms wait.
    assert!(timeout(Duration::from_millis(50), limiter.until_ready()).await.is_err());
    // The manual clock did not move (the sleep never finished), and nothing was taken.
    assert_eq!(clock.now(), 0);
    assert_eq!(limiter.check().unwrap_err().retry_after(), Duration::from_millis(100));
    limiter.until_ready().await;
    assert_eq!(clock.now(), 100 * MS);
    assert!(limiter.check().is_err(), "exactly one cell was taken by the completed wait");
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_are_admitted_one_interval_apart() {
    let (clock, limiter) = limiter(Quota::per_second(10).with_burst(1));
    limiter.check().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (limiter, clock) = (limiter.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            limiter.until_ready().await;
            clock.now()
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.push(t.await.unwrap() / MS);
    }
    times.sort_unstable();
    assert_eq!(times, vec![100, 200, 300, 400, 500]);
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_the_wake_up() {
    let (clock, limiter) = limiter(Quota::per_second(10).with_burst(1));
    limiter.check().unwrap();
    limiter.until_ready_with_jitter(Jitter::up_to(Duration::from_millis(10))).await;
    let now = clock.now();
    assert!((100 * MS..=110 * MS).contains(&now), "{now}");
    let err = limiter.until_n_ready_with_jitter(2, Jitter::NONE).await.unwrap_err();
    assert_eq!(err.burst, 1);
}

#[tokio::test(start_paused = true)]
async fn pacer_spaces_requests_and_bounds_queueing() {
    let clock = ManualClock::new();
    let pacer = Arc::new(
        Pacer::builder(Quota::per_second(10).with_burst(1))
            .max_queueing(Duration::from_millis(250))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (pacer, clock) = (pacer.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            pacer.acquire().await.unwrap();
            clock.now() / MS
        }));
    }
    tokio::task::yield_now().await;
    // The fourth would wait 300 ms: refused at once.
    let refused = pacer.acquire().await.unwrap_err();
    assert_eq!(refused.retry_after(), Duration::from_millis(50));
    let mut times = Vec::new();
    for t in tasks {
        times.push(t.await.unwrap());
    }
    times.sort_unstable();
    assert_eq!(times, vec![0, 100, 200]);
    assert_eq!(pacer.stats().rejected, 1);
    assert_eq!(pacer.max_queueing(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_pacer_wait_gives_its_slot_back() {
    let clock = ManualClock::new();
    let pacer = Pacer::builder(Quota::per_second(10).with_burst(1))
        .max_queueing(Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let first = pacer.try_reserve().unwrap();
    assert_eq!(first.wait(), Duration::ZERO);
    assert!(timeout(Duration::from_millis(10), pacer.acquire()).await.is_err());
    // The cancelled 100 ms slot was the last one: it is free again.
    assert_eq!(pacer.queueing_time(), Duration::from_millis(100));
    let next = pacer.try_reserve().unwrap();
    assert_eq!(next.wait(), Duration::from_millis(100));
    // A reservation with a later one behind it cannot be given back: it stays a gap.
    let later = pacer.try_reserve().unwrap();
    assert!(!pacer.cancel(next));
    assert!(pacer.cancel(later));
}

#[tokio::test(start_paused = true)]
async fn warm_up_ramps_from_the_cold_rate_to_the_full_rate() {
    let clock = ManualClock::new();
    // 100/s warm (10 ms apart); cold factor 4: 40 ms apart; warm-up 2 s.
    let limiter = WarmUpLimiter::builder(Quota::per_second(100).with_burst(1))
        .warm_up(Duration::from_secs(2))
        .cold_factor(4.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut admitted = Vec::new();
    while clock.now() < 6_000 * MS {
        limiter.until_ready().await;
        admitted.push(clock.now());
    }
    let gaps: Vec<u64> = admitted.windows(2).map(|w| w[1] - w[0]).collect();
    let first = gaps[0] as f64 / MS as f64;
    assert!((36.0..=40.0).contains(&first), "cold spacing {first} ms");
    let last = *gaps.last().unwrap() as f64 / MS as f64;
    assert!((10.0..=10.1).contains(&last), "warm spacing {last} ms");
    // Spacing only shrinks while warming, and is never below the full rate's.
    assert!(gaps.windows(2).all(|w| w[1] <= w[0] + 1));
    assert!(gaps.iter().all(|&g| g >= 10 * MS));
    // Warm within the warm-up period of full demand (give or take one cold step).
    let warm_at = admitted[gaps.iter().position(|&g| g < 10 * MS + MS / 10).unwrap()];
    assert!(warm_at <= 2_050 * MS, "warm after {} ms", warm_at / MS);
    // After a long rest it is cold again.
    clock.advance(Duration::from_secs(60));
    assert!(limiter.current_rate() < 26.0, "{}", limiter.current_rate());
}

#[tokio::test(start_paused = true)]
async fn keyed_until_key_ready_waits_per_key() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<&'static str>::builder(Quota::per_second(2).with_burst(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    keyed.until_key_ready(&"a").await;
    keyed.until_key_ready(&"b").await;
    assert_eq!(clock.now(), 0, "independent keys do not wait for each other");
    keyed.until_key_ready(&"a").await;
    assert_eq!(clock.now(), 500 * MS);
    assert_eq!(keyed.stats().waited, 1);
}

fn bulkhead(
    limit: usize,
    queue: usize,
    wait: Option<u64>,
) -> (ManualClock, Arc<Bulkhead<ManualClock>>) {
    let clock = ManualClock::new();
    let mut b = Bulkhead::builder(limit).max_queue(queue).clock(clock.clone());
    if let Some(ms) = wait {
        b = b.max_wait(Duration::from_millis(ms));
    }
    (clock, Arc::new(b.build().unwrap()))
}

#[tokio::test(start_paused = true)]
async fn bulkhead_waiters_get_permits_in_order() {
    let (_clock, bulkhead) = bulkhead(1, 10, None);
    let held = bulkhead.try_acquire_owned().unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (bulkhead, order) = (bulkhead.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let permit = bulkhead.acquire_owned().await.unwrap();
            order.lock().unwrap().push(i);
            sleep(Duration::from_millis(10)).await;
            drop(permit);
        }));
        tokio::task::yield_now().await; // queue in spawn order
    }
    assert_eq!(bulkhead.queued(), 3);
    assert!(matches!(bulkhead.try_acquire(), Err(BulkheadError::Full { limit: 1 })));
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    let stats = bulkhead.stats();
    assert_eq!((stats.in_flight, stats.queued, stats.waited), (0, 0, 3));
}

#[tokio::test(start_paused = true)]
async fn bulkhead_times_out_and_bounds_its_queue() {
    let (clock, bulkhead) = bulkhead(1, 1, Some(50));
    let _held = bulkhead.try_acquire().unwrap();
    let waiter = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move { bulkhead.acquire_owned().await.map(drop) })
    };
    tokio::task::yield_now().await;
    assert!(matches!(bulkhead.acquire().await, Err(BulkheadError::QueueFull { queued: 1 })));
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(err, BulkheadError::TimedOut { waited: Duration::from_millis(50) });
    assert_eq!(clock.now(), 50 * MS);
    let stats = bulkhead.stats();
    assert_eq!((stats.queued, stats.timed_out, stats.rejected), (0, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn cancelled_waiters_leave_the_queue_and_pass_granted_permits_on() {
    let (_clock, bulkhead) = bulkhead(1, 10, None);
    let held = bulkhead.try_acquire().unwrap();
    // A waiter that gives up leaves the queue.
    assert!(timeout(Duration::from_millis(5), bulkhead.acquire()).await.is_err());
    assert_eq!(bulkhead.queued(), 0);

    // A waiter granted a permit but dropped before it runs again passes the permit on.
    let mut first = Box::pin(bulkhead.acquire());
    assert!(futures::poll!(first.as_mut()).is_pending());
    let second = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire_owned().await.map(drop) }
    });
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.queued(), 2);
    drop(held); // granted to `first`
    assert_eq!(bulkhead.queued(), 1);
    assert_eq!(bulkhead.in_flight(), 1);
    drop(first); // never polled again: its permit goes to `second`
    second.await.unwrap().unwrap();
    assert_eq!(bulkhead.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_wakes_waiters() {
    let (_clock, bulkhead) = bulkhead(1, 10, None);
    let _held = bulkhead.try_acquire().unwrap();
    let waiter = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire_owned().await.map(drop) }
    });
    tokio::task::yield_now().await;
    bulkhead.set_limit(2);
    waiter.await.unwrap().unwrap();
    assert_eq!(bulkhead.limit(), 2);
}

#[tokio::test(start_paused = true)]
async fn window_limiters_wait_for_room() {
    use levee_limit::{FixedWindowLimiter, SlidingWindowLimiter, WindowQuota};
    let clock = ManualClock::new();
    let fixed = FixedWindowLimiter::builder(WindowQuota::per_second(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        fixed.until_ready().await;
    }
    assert_eq!(clock.now(), 1_000 * MS, "the third waits for the next window");
    assert_eq!(fixed.until_n_ready(3).await.unwrap_err().requested, 3);
    let stats = fixed.stats();
    assert_eq!((stats.waited, stats.rejected), (1, 0));

    let sliding = SlidingWindowLimiter::builder(WindowQuota::per_second(2))
        .buckets(4)
        .clock(clock.clone())
        .build()
        .unwrap();
    sliding.until_n_ready(2).await.unwrap();
    clock.advance(Duration::from_millis(300));
    sliding.until_ready().await;
    assert_eq!(clock.now(), 2_000 * MS, "waits until the first bucket leaves the window");
}

/// A limiter on the coarse clock admits its burst and then refuses, like any other, and a wait
/// on it sleeps on tokio's timer for the time its reading still lacks, plus one resolution
/// (by which the lagging reading has caught up).
#[tokio::test(start_paused = true)]
async fn the_coarse_clock_drives_a_limiter() {
    let clock = levee_core::CoarseClock::new().unwrap();
    let limiter = RateLimiter::with_clock(Quota::per_hour(1).with_burst(3), clock).unwrap();
    for _ in 0..3 {
        assert!(limiter.check().is_ok());
    }
    let refusal = limiter.check().unwrap_err();
    assert!(refusal.retry_after() > Duration::from_secs(19 * 60));

    let start = Instant::now();
    clock.sleep_until(clock.now() + 5_000_000).await;
    // At most the 5 ms asked for plus one resolution, in paused time.
    assert!(start.elapsed() <= Duration::from_millis(5) + clock.resolution());
    assert!(start.elapsed() >= clock.resolution());
}
