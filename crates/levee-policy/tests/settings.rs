//! Settings load from TOML and JSON, build into working pipelines, and reject bad values by
//! name.
#![cfg(feature = "serde")]

use std::time::Duration;

use levee_policy::{Backoff, HedgeDelay, PipelineSettings, RetrySettings};

const FILE: &str = r#"
timeout = "2s"
attempt_timeout = 500

[retry]
max_attempts = 4
max_retry_after = "3s"
backoff = { type = "decorrelated_jitter", base = "20ms", max = "1s" }
budget = { ratio = 0.1, min_per_sec = 5, window = "30s" }

[hedge]
max_hedges = 1
delay = { type = "percentile", quantile = 0.95, initial = "150ms" }
"#;

#[test]
fn a_toml_file_loads_and_round_trips() {
    let settings: PipelineSettings = toml::from_str(FILE).unwrap();
    assert_eq!(settings.timeout, Some(Duration::from_secs(2)));
    assert_eq!(settings.attempt_timeout, Some(Duration::from_millis(500)));
    let retry = settings.retry.as_ref().unwrap();
    assert_eq!(retry.max_attempts, 4);
    assert_eq!(
        retry.backoff,
        Backoff::DecorrelatedJitter {
            base: Duration::from_millis(20),
            max: Duration::from_secs(1)
        }
    );
    assert_eq!(retry.budget.unwrap().window, Duration::from_secs(30));
    assert!(matches!(
        settings.hedge.unwrap().delay,
        HedgeDelay::Percentile { min_samples: 100, refresh_every: 100, .. }
    ));
    let again: PipelineSettings = toml::from_str(&toml::to_string(&settings).unwrap()).unwrap();
    assert_eq!(again, settings);
    let json: PipelineSettings =
        serde_json::from_str(&serde_json::to_string(&settings).unwrap()).unwrap();
    assert_eq!(json, settings);
}

#[tokio::test(start_paused = true)]
async fn loaded_settings_build_a_working_pipeline() {
    let pipeline = toml::from_str::<PipelineSettings>(FILE).unwrap().build().unwrap();
    let out = pipeline
        .execute(|ctx| async move {
            assert!(ctx.remaining().unwrap() <= Duration::from_millis(500));
            if ctx.attempt() == 0 { Err("flaky") } else { Ok(ctx.attempt()) }
        })
        .await;
    assert_eq!(out, Ok(1));
}

#[test]
fn json_works_too_and_everything_is_optional() {
    let s: PipelineSettings = serde_json::from_str(r#"{"retry": {"max_attempts": 2}}"#).unwrap();
    assert_eq!(s.retry, Some(RetrySettings { max_attempts: 2, ..RetrySettings::default() }));
    let empty: PipelineSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(empty.build().unwrap().call(|_| Ok::<_, ()>(3)), Ok(3));
}

#[test]
fn bad_files_fail_with_the_setting_named() {
    let err = toml::from_str::<PipelineSettings>("timeout = \"fast\"").unwrap_err();
    assert!(err.to_string().contains("not a duration"), "{err}");
    let err = toml::from_str::<PipelineSettings>("timout = \"1s\"").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");

    let parsed: PipelineSettings = toml::from_str(
        r#"
        [retry]
        backoff = { type = "exponential", base = "1s", max = "10ms" }
        "#,
    )
    .unwrap();
    assert_eq!(parsed.build().unwrap_err().setting, "backoff.max");
    let parsed: PipelineSettings = toml::from_str("[retry]\nbudget = { ratio = -1.0 }").unwrap();
    assert_eq!(parsed.build().unwrap_err().setting, "ratio");
    let parsed: PipelineSettings =
        toml::from_str("[hedge]\nmax_hedges = 0\ndelay = { type = \"fixed\", delay = \"1ms\" }")
            .unwrap();
    assert_eq!(parsed.build().unwrap_err().setting, "max_hedges");
}

#[tokio::test(start_paused = true)]
async fn breaker_limiter_and_bulkhead_load_from_the_file_too() {
    let settings: PipelineSettings = toml::from_str(
        r#"
        timeout = "1s"
        [retry]
        max_attempts = 2
        backoff = { type = "constant", delay = "10ms" }
        [breaker]
        window = { type = "count", size = 20 }
        minimum_calls = 10
        failure_rate_threshold = 50.0
        open_wait = { type = "fixed", wait = "30s" }
        [rate_limit]
        count = 100
        period = "1s"
        burst = 10
        [bulkhead]
        max_concurrent = 8
        max_queue = 16
        max_wait = "50ms"
        "#,
    )
    .unwrap();
    let pipeline = settings.build().unwrap();
    assert_eq!(pipeline.execute(|_| async { Ok::<_, ()>(1) }).await, Ok(1));
    assert_eq!(pipeline.bulkhead().unwrap().limit(), 8);
    assert_eq!(pipeline.rate_limiter().unwrap().quota().burst(), 10);
    assert!(pipeline.breaker().is_some());
    assert!(pipeline.retry_budget().is_none());
    let again: PipelineSettings = toml::from_str(&toml::to_string(&settings).unwrap()).unwrap();
    assert_eq!(again, settings);

    let bad: PipelineSettings = toml::from_str("[rate_limit]\ncount = 0").unwrap();
    assert_eq!(bad.build().unwrap_err().setting, "quota.count");
    let bad: PipelineSettings = toml::from_str("[bulkhead]\nmax_concurrent = 0").unwrap();
    assert!(bad.build().is_err());
    let bad: PipelineSettings =
        toml::from_str("[breaker]\nfailure_rate_threshold = 150.0").unwrap();
    assert_eq!(bad.build().unwrap_err().setting, "failure_rate_threshold");
}

/// `build_with_clock` puts every stateful policy, and the pipeline's own timeouts, on the
/// clock given.
#[tokio::test(start_paused = true)]
async fn a_settings_pipeline_runs_on_the_clock_it_is_given() {
    use levee_core::{Clock, ManualClock};
    let settings: PipelineSettings = toml::from_str(
        r#"
        timeout = "1s"
        rate_limit = { count = 1, period = "1s" }
        [breaker]
        "#,
    )
    .unwrap();
    let clock = ManualClock::new();
    let pipeline = settings.build_with_clock(clock.clone()).unwrap();
    assert_eq!(pipeline.call(|_| Ok::<_, ()>(1)), Ok(1));
    assert!(pipeline.call(|_| Ok::<_, ()>(2)).is_err(), "the limiter reads the manual clock");
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(pipeline.call(|_| Ok::<_, ()>(3)), Ok(3));
    clock.advance(std::time::Duration::from_secs(1));
    let slow = pipeline
        .execute(|_| async {
            std::future::pending::<()>().await;
            Ok::<_, ()>(())
        })
        .await;
    assert!(matches!(slow, Err(levee_policy::Error::Timeout { .. })));
    assert_eq!(clock.now(), 3_000_000_000, "the timeout slept on the manual clock");
    assert!(pipeline.breaker().is_some());
}
