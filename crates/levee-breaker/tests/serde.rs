//! Settings as config files.
#![cfg(not(loom))]

use std::time::Duration;

use levee_breaker::{
    BreakerOverrides, BreakerRegistry, BreakerSettings, OpenWait, RegistrySettings, SlidingWindow,
};

#[test]
fn settings_round_trip_through_toml_and_json() {
    let settings = BreakerSettings {
        window: SlidingWindow::Time { length: Duration::from_secs(30), buckets: 15 },
        failure_rate_threshold: 25.5,
        slow_call_rate_threshold: 80.0,
        slow_call_duration: Some(Duration::from_millis(1500)),
        slow_success_is_failure: true,
        minimum_calls: 7,
        failure_count_threshold: Some(3),
        open_wait: OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(120))
            .jitter(0.2),
        half_open_calls: 4,
        half_open_max_wait: Some(Duration::from_secs(30)),
    };
    let text = toml::to_string(&settings).unwrap();
    assert!(text.contains(r#"slow_call_duration = "1500ms""#), "{text}");
    assert_eq!(toml::from_str::<BreakerSettings>(&text).unwrap(), settings);
    let json = serde_json::to_string(&settings).unwrap();
    assert_eq!(serde_json::from_str::<BreakerSettings>(&json).unwrap(), settings);
}

#[test]
fn missing_fields_take_defaults_and_numbers_are_milliseconds() {
    let s: BreakerSettings =
        serde_json::from_str(r#"{"open_wait": {"type": "fixed", "wait": 2500}}"#).unwrap();
    assert_eq!(s.open_wait, OpenWait::fixed(Duration::from_millis(2500)));
    assert_eq!(s.minimum_calls, BreakerSettings::default().minimum_calls);
    let s: BreakerSettings = toml::from_str("window = { type = \"count\", size = 20 }").unwrap();
    assert_eq!(s.window, SlidingWindow::count(20));
}

#[test]
fn typos_and_bad_durations_are_rejected() {
    assert!(toml::from_str::<BreakerSettings>("failure_rate_treshold = 20.0").is_err());
    let err =
        toml::from_str::<BreakerSettings>(r#"slow_call_duration = "2 fortnights""#).unwrap_err();
    assert!(err.to_string().contains("unknown unit"), "{err}");
}

#[test]
fn values_that_parse_are_still_validated() {
    let s: BreakerSettings = toml::from_str("failure_rate_threshold = 150.0").unwrap();
    assert_eq!(s.validate().unwrap_err().setting, "failure_rate_threshold");
    let r: RegistrySettings = toml::from_str("[breakers.db]\nhalf_open_calls = 0").unwrap();
    assert_eq!(BreakerRegistry::from_settings(r).unwrap_err().setting, "half_open_calls");
}

#[test]
fn registry_settings_apply_overrides_over_shared_defaults() {
    let r: RegistrySettings = toml::from_str(
        r#"
        [defaults]
        minimum_calls = 20
        failure_rate_threshold = 40.0

        [breakers.payments]
        failure_rate_threshold = 10.0
        open_wait = { type = "fixed", wait = "5s" }
        "#,
    )
    .unwrap();
    assert_eq!(
        r.breakers["payments"],
        BreakerOverrides {
            failure_rate_threshold: Some(10.0),
            open_wait: Some(OpenWait::fixed(Duration::from_secs(5))),
            ..Default::default()
        }
    );
    let registry = BreakerRegistry::from_settings(r.clone()).unwrap();
    let payments = registry.settings_for("payments");
    assert_eq!((payments.minimum_calls, payments.failure_rate_threshold), (20, 10.0));
    assert_eq!(registry.settings_for("search").failure_rate_threshold, 40.0);
    let back: RegistrySettings = toml::from_str(&toml::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}
