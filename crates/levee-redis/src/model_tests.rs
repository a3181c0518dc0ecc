//! The Lua script against levee-limit's in-process GCRA, on a real Redis: random quotas and
//! random sequences of `check_n` and lease requests, each decision replayed on a
//! `RateLimiter` whose manual clock is set to the server time the script decided at. Every
//! grant, refusal and retry-after must be equal to the nanosecond, and the key's expiry must
//! cover its state.
//!
//! Needs `LEVEE_TEST_REDIS_URL` (skipped without it, required under `CI=true`).

use std::time::Duration;

use levee_core::ManualClock;
use levee_limit::{CheckNError, Quota, RateLimiter};
use proptest::prelude::*;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::script::{Args, GcraScript, Reply};

/// One request: `n_min..=n_max` cells (`n_min == n_max`: a `check_n`).
#[derive(Debug, Clone, Copy)]
struct Op {
    n_min: u32,
    n_max: u32,
}

fn op(burst: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..=burst).prop_map(|n| Op { n_min: n, n_max: n }),
        (1..=burst, 0..=burst).prop_map(|(n, extra)| Op { n_min: n, n_max: n + extra }),
    ]
}

fn case() -> impl Strategy<Value = (Quota, Vec<Op>)> {
    // Emission intervals from 20 us to 2 ms: the real time between two round trips on
    // loopback (tens of microseconds) then refills anything from nothing to several cells.
    (1u32..=20, 20u64..=2_000, 1u32..=8).prop_flat_map(|(count, t_us, burst)| {
        let quota =
            Quota::new(count, Duration::from_micros(t_us * u64::from(count))).with_burst(burst);
        (Just(quota), prop::collection::vec(op(burst), 1..80))
    })
}

async fn run_case(conn: &mut MultiplexedConnection, key: &str, quota: Quota, ops: &[Op]) {
    let script = GcraScript::new();
    let gcra = quota.gcra().unwrap();
    let (t, tau) = (gcra.emission_interval(), gcra.tolerance());
    let clock = ManualClock::new();
    let model = RateLimiter::with_clock(quota, clock.clone()).unwrap();
    let mut base = None;
    for (i, op) in ops.iter().enumerate() {
        let args = Args {
            t: levee_core::nanos(t),
            tau: levee_core::nanos(tau),
            n_min: op.n_min,
            n_max: op.n_max,
        };
        // The first call loads the script with EVAL; the rest run it by its hash.
        let cmd = if i == 0 {
            script.eval(key.as_bytes(), args)
        } else {
            script.evalsha(key.as_bytes(), args)
        };
        let value: Value = cmd.query_async(conn).await.unwrap();
        let reply = Reply::decode(&value).unwrap();
        // The model's clock: the server's, from a second before the first decision.
        let base = *base.get_or_insert(reply.server_now - 1_000_000_000);
        clock.set(reply.server_now - base);
        let available = model.available();
        let want = available.min(op.n_max);
        if want >= op.n_min {
            assert_eq!(reply.granted, want, "op {i} {op:?}: cells granted");
            model.check_n(want).unwrap();
            assert_eq!(reply.value, model_tat_ahead(&model, &clock), "op {i}: state after grant");
            // PTTL and the server's clock in one transaction: the expiry is checked against
            // the time that passed since the script ran (a round trip can take many
            // milliseconds on a loaded machine).
            let (pttl, (secs, micros)): (i64, (u64, u64)) = redis::pipe()
                .atomic()
                .cmd("PTTL")
                .arg(key)
                .cmd("TIME")
                .query_async(conn)
                .await
                .unwrap();
            let elapsed_ms = ((secs * 1_000_000_000 + micros * 1_000)
                .saturating_sub(reply.server_now)
                / 1_000_000) as i64;
            let ahead_ms = (reply.value / 1_000_000) as i64;
            let left_ms = ahead_ms - elapsed_ms;
            // A state with a few milliseconds left may be gone by then: PTTL says -2. Redis
            // reads expiries on a cached clock that can lag TIME by a few milliseconds on a
            // loaded machine (a PTTL of 1 was seen with TIME 8 ms past the expiry), so the
            // TTL is checked as of some moment between the script and TIME: never longer
            // than the state's time ahead at the script, never shorter than what is left.
            let gone = pttl == -2 && left_ms <= 2;
            assert!(
                gone || (pttl >= left_ms - 2 && pttl <= ahead_ms + 2),
                "op {i}: PTTL {pttl} for {ahead_ms} ms ahead at the script, {left_ms} ms left \
                 ({elapsed_ms} ms after it)"
            );
        } else {
            assert_eq!(reply.granted, 0, "op {i} {op:?}: refused");
            let refusal = match model.check_n(op.n_min) {
                Err(CheckNError::Throttled(t)) => t,
                other => panic!("op {i}: the model admitted {op:?}: {other:?}"),
            };
            assert_eq!(
                reply.value,
                levee_core::nanos(refusal.retry_after()),
                "op {i}: retry-after"
            );
        }
    }
}

/// How far the model's theoretical arrival time lies ahead of its clock, read through its
/// refusal of a full burst: that conforms when `tat + (burst - 1) t <= now + tau`, i.e. when
/// `tat <= now`, so its earliest time is `tat` itself (and right after a grant `tat > now`,
/// so it is refused). A refusal changes nothing.
fn model_tat_ahead(model: &RateLimiter<ManualClock>, clock: &ManualClock) -> u64 {
    use levee_core::Clock;
    match model.check_n(model.gcra().burst()) {
        Err(CheckNError::Throttled(refusal)) => refusal.earliest() - clock.now(),
        other => panic!("a full burst right after a grant must be refused: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn script_decides_as_levee_limit((quota, ops) in case()) {
        let Some(url) = levee_core::testing::server_url("LEVEE_TEST_REDIS_URL", "redis") else {
            return Ok(());
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let key = format!("levee:test:model:{}:{}", std::process::id(), next_case());
            run_case(&mut conn, &key, quota, &ops).await;
            let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await.unwrap();
        });
    }
}

fn next_case() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CASES: AtomicU64 = AtomicU64::new(0);
    CASES.fetch_add(1, Ordering::Relaxed)
}
