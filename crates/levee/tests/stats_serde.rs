//! Every primitive's statistics serialize (feature `serde`), with durations in levee-core's
//! one format (`"250ms"`), so a service can export them as they are (an admin endpoint, a
//! log line). Read from live primitives, not built by hand.

use std::time::Duration;

use levee::breaker::CircuitBreaker;
use levee::cache::Cache;
use levee::core::ManualClock;
use levee::limit::{Bulkhead, KeyedRateLimiter, Quota, RateLimiter};
use levee::queue::broker::{InProcessBroker, Message, SubscriptionConfig};
use levee::queue::channel;
use levee::timer::TimerService;
use serde_json::{Value, json};

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("stats serialize")
}

#[test]
fn rate_limiter_stats() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::per_second(1), clock).unwrap();
    limiter.check().unwrap();
    limiter.check().unwrap_err();
    let json = to_json(&limiter.stats());
    assert_eq!(json["rejected"], 1);
    assert!(json.get("admitted").is_some());
}

#[test]
fn keyed_and_bulkhead_stats() {
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_second(1))
        .clock(ManualClock::new())
        .build()
        .unwrap();
    keyed.check(&7).unwrap();
    keyed.check(&7).unwrap_err();
    let json = to_json(&keyed.stats());
    assert_eq!((json["keys"].clone(), json["rejected"].clone()), (json!(1), json!(1)));

    let bulkhead = Bulkhead::new(2).unwrap();
    let _permit = bulkhead.try_acquire().unwrap();
    let json = to_json(&bulkhead.stats());
    assert_eq!((json["in_flight"].clone(), json["limit"].clone()), (json!(1), json!(2)));
}

#[test]
fn breaker_metrics_name_state_and_durations() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder().name("payments").clock(clock.clone()).build().unwrap();
    clock.advance(Duration::from_millis(1500));
    let json = to_json(&breaker.metrics());
    assert_eq!(json["name"], "payments");
    assert_eq!(json["state"], "closed");
    assert_eq!(json["time_in_state"], "1500ms");
}

#[test]
fn cache_stats_with_load_latency() {
    let cache: Cache<u64, String> = Cache::builder().max_capacity(10).build().unwrap();
    let value = cache.get_with(1, || "one".to_owned());
    assert_eq!(value, "one");
    let json = to_json(&cache.stats());
    assert_eq!(json["loads"], 1);
    assert!(json["load_latency"]["p99"].is_string(), "{json}");
}

#[tokio::test(start_paused = true)]
async fn timer_stats_with_lateness() {
    let timers = TimerService::<u32>::builder().build().unwrap();
    timers.schedule_after(Duration::from_millis(5), 1).unwrap();
    let json = to_json(&timers.stats());
    assert_eq!(json["pending"], 1);
    assert!(json["lateness"]["max"].is_string(), "{json}");
}

#[test]
fn channel_topic_and_subscription_stats() {
    let (tx, _rx) = channel::bounded::<u64>(4).unwrap();
    tx.try_send(1).unwrap();
    assert!(to_json(&tx.stats()).is_object());

    let broker = InProcessBroker::<u32>::new();
    let sub = broker.subscribe("jobs", SubscriptionConfig::new("workers")).unwrap();
    broker.try_publish("jobs", Message::new(1)).unwrap();
    assert_eq!(to_json(&sub.stats())["depth"], 1);
    let topic = broker.topic("jobs").unwrap();
    assert!(to_json(&topic.stats()).is_object());
}
