//! `CacheSettings` from a settings file (feature `serde`): durations in levee's one format,
//! every setting but the capacity optional, unknown settings refused, and what loads builds a
//! cache that behaves as the settings say.
#![cfg(feature = "serde")]

use std::time::Duration;

use levee_cache::{Cache, CacheSettings};
use levee_core::ManualClock;

#[test]
fn settings_load_round_trip_and_build() {
    let settings: CacheSettings = serde_json::from_str(
        r#"{"max_capacity": 100, "time_to_live": "1m", "negative_ttl": 5000, "ttl_jitter": 0.0}"#,
    )
    .unwrap();
    assert_eq!(
        settings,
        CacheSettings::new(100)
            .time_to_live(Duration::from_secs(60))
            .negative_ttl(Duration::from_secs(5))
    );
    let text = serde_json::to_string(&settings).unwrap();
    assert!(text.contains(r#""time_to_live":"1m""#), "{text}");
    assert_eq!(serde_json::from_str::<CacheSettings>(&text).unwrap(), settings);

    // The time to live and the negative time to live run on the clock given.
    let clock = ManualClock::new();
    let cache: Cache<u32, &str, ManualClock> = settings.build_with_clock(clock.clone()).unwrap();
    cache.insert(1, "one");
    assert_eq!(cache.get_optional_with(2, || None), None);
    let mut loads = 0;
    assert_eq!(
        cache.get_optional_with(2, || {
            loads += 1;
            Some("two")
        }),
        None,
        "the absence is remembered"
    );
    assert_eq!(loads, 0);
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.get_optional_with(2, || Some("two")), Some("two"));
    clock.advance(Duration::from_secs(55));
    assert_eq!(cache.get(&1), None, "expired after its time to live");
}

#[test]
fn only_the_capacity_is_required_and_bad_values_are_named() {
    let small: CacheSettings = serde_json::from_str(r#"{"max_capacity": 10}"#).unwrap();
    assert_eq!(small, CacheSettings::new(10));
    assert!(serde_json::from_str::<CacheSettings>("{}").is_err());
    assert!(serde_json::from_str::<CacheSettings>(r#"{"max_capacity": 1, "ttl": "1s"}"#).is_err());
    let stale_without_ttl: CacheSettings =
        serde_json::from_str(r#"{"max_capacity": 1, "stale_while_revalidate": "1s"}"#).unwrap();
    assert_eq!(stale_without_ttl.build::<u8, u8>().unwrap_err().setting, "stale_while_revalidate");
    let zero: CacheSettings =
        serde_json::from_str(r#"{"max_capacity": 1, "time_to_live": "0s"}"#).unwrap();
    assert_eq!(zero.build::<u8, u8>().unwrap_err().setting, "time_to_live");
}
