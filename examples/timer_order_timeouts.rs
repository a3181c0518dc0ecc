//! Unpaid orders are cancelled after 30 minutes: one timer per order on a `TimerService`,
//! cancelled when the order is paid; a checkout call runs under a `timeout` on the same
//! wheels. Time is a `ManualClock` that follows tokio's paused clock, so the simulated hour
//! passes at once.
//!
//! `cargo run --example timer_order_timeouts`

use std::time::Duration;

use levee_core::{Clock, ManualClock};
use levee_timer::{TimerEvent, TimerService, TimingWheel};

const ORDER_TTL: Duration = Duration::from_secs(30 * 60);

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    rt.block_on(shop());
    plain_wheel();
}

async fn shop() {
    let clock = ManualClock::new();
    let timers: TimerService<u32, ManualClock> = TimerService::builder()
        .listener(|event: &TimerEvent| {
            if let TimerEvent::Fired { lateness, .. } = event {
                assert!(*lateness <= Duration::from_millis(2));
            }
        })
        .clock(clock.clone())
        .build()
        .expect("valid settings");
    let mut expired = timers.expirations().expect("the stream is ours");

    // 1000 orders placed a second apart; every third one is paid within ten minutes.
    let mut handles = Vec::new();
    for order in 0..1000u32 {
        handles.push(timers.schedule_after(ORDER_TTL, order).expect("room for the timer"));
        clock.sleep(Duration::from_secs(1)).await;
    }
    let mut paid = 0;
    for (order, handle) in handles.iter().enumerate() {
        if order % 3 == 0 && timers.cancel(*handle).is_some() {
            paid += 1;
        }
    }

    // A checkout call to a slow payment provider, bounded by a timer on the same wheels.
    let slow_provider = clock.sleep(Duration::from_secs(5));
    let checkout = timers.timeout(Duration::from_secs(2), slow_provider).await;
    println!("checkout against a 5 s provider with a 2 s timeout: {checkout:?}");

    let mut cancelled_for_non_payment = 0;
    while cancelled_for_non_payment < 1000 - paid {
        let (_, order) = expired.recv().await.expect("service alive");
        assert_ne!(order % 3, 0, "paid order {order} was cancelled");
        cancelled_for_non_payment += 1;
    }
    let stats = timers.stats();
    println!(
        "orders: {paid} paid, {cancelled_for_non_payment} cancelled unpaid; timers fired {}, \
         cancelled {}, pending {}; lateness p99 {:?}, max {:?}",
        stats.fired, stats.cancelled, stats.pending, stats.lateness.p99, stats.lateness.max
    );
}

/// The same wheel as a plain data structure: the owner passes the time.
fn plain_wheel() {
    let mut wheel = TimingWheel::new();
    let second = 1_000_000_000u64;
    let cart = wheel.insert(15 * 60 * second, "release cart 4").expect("unbounded");
    wheel.insert(30 * 60 * second, "cancel order 17").expect("unbounded");
    wheel.reset(cart, 20 * 60 * second).expect("pending");
    while let Some(at) = wheel.next_deadline() {
        for (_, what) in wheel.advance(at) {
            println!("at {:>4} s: {what}", at / second);
        }
    }
}
