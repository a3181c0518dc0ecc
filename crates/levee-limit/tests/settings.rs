//! Settings as data (feature `serde`): quotas, windows and bulkheads read durations in levee's
//! one format (`"250ms"`, `"1s"`, or milliseconds), write them back the same way, and build.
#![cfg(feature = "serde")]

use std::time::Duration;

use levee_limit::{BulkheadSettings, Jitter, KeyedRateLimiter, Quota, WindowQuota};

#[test]
fn a_quota_reads_and_writes_durations_with_a_unit() {
    let quota: Quota =
        serde_json::from_str(r#"{"count": 100, "period": "1s", "burst": 20}"#).unwrap();
    assert_eq!(quota, Quota::per_second(100).with_burst(20));
    assert_eq!(serde_json::to_string(&quota).unwrap(), r#"{"count":100,"period":"1s","burst":20}"#);
    // A bare number is milliseconds; the burst may be left out.
    let quota: Quota = serde_json::from_str(r#"{"count": 1, "period": 250}"#).unwrap();
    assert_eq!(quota, Quota::new(1, Duration::from_millis(250)));
    assert_eq!(quota.burst(), 1);
    let err = serde_json::from_str::<Quota>(r#"{"count": 1, "period": "soon"}"#).unwrap_err();
    assert!(err.to_string().contains("duration"), "{err}");
    // What a file holds builds a limiter.
    let limiter = KeyedRateLimiter::<u32>::new(quota).unwrap();
    assert!(limiter.check(&1).is_ok());
    assert!(limiter.check(&1).is_err());
}

#[test]
fn windows_and_jitter_use_the_same_format() {
    let window: WindowQuota = serde_json::from_str(r#"{"limit": 600, "window": "1m"}"#).unwrap();
    assert_eq!(window, WindowQuota::per_minute(600));
    assert_eq!(serde_json::to_string(&window).unwrap(), r#"{"limit":600,"window":"1m"}"#);
    let jitter = Jitter::up_to(Duration::from_millis(10));
    let text = serde_json::to_string(&jitter).unwrap();
    assert_eq!(text, r#"{"min":"0s","max":"10ms"}"#);
    assert_eq!(serde_json::from_str::<Jitter>(&text).unwrap(), jitter);
}

#[test]
fn bulkhead_settings_load_build_and_name_bad_values() {
    let settings: BulkheadSettings =
        serde_json::from_str(r#"{"max_concurrent": 8, "max_queue": 16, "max_wait": "50ms"}"#)
            .unwrap();
    assert_eq!(
        settings,
        BulkheadSettings::new(8).max_queue(16).max_wait(Duration::from_millis(50))
    );
    let bulkhead = settings.build().unwrap();
    assert_eq!((bulkhead.limit(), bulkhead.available()), (8, 8));
    let again: BulkheadSettings =
        serde_json::from_str(&serde_json::to_string(&settings).unwrap()).unwrap();
    assert_eq!(again, settings);
    // Only the limit is required.
    let small: BulkheadSettings = serde_json::from_str(r#"{"max_concurrent": 1}"#).unwrap();
    assert_eq!(small, BulkheadSettings::new(1));
    let b = small.build().unwrap();
    let _held = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err(), "no queue: refused at once");
    assert!(serde_json::from_str::<BulkheadSettings>(r#"{"max_concurent": 1}"#).is_err());
    let zero_wait: BulkheadSettings =
        serde_json::from_str(r#"{"max_concurrent": 1, "max_wait": "0s"}"#).unwrap();
    assert_eq!(zero_wait.build().unwrap_err().setting, "max_wait");
}
