//! The cache against a `HashMap` model on a manual clock: random sequences of inserts, reads,
//! loads, invalidations and time steps.
//!
//! With room for every key, the cache must answer exactly like the model (time to live and
//! time to idle included). With less room it may forget entries, but must never answer a value
//! the model does not hold, nor exceed its capacity. Each runs twice: with a time to live, and
//! without one (a plain cache, whose inserts take the lean path until an `insert_with_ttl`
//! makes it timed).

use std::collections::HashMap;
use std::time::Duration;

use levee_cache::Cache;
use levee_core::{Clock, ManualClock};
use proptest::prelude::*;

const TTL_MS: u64 = 4_000;
const TTI_MS: u64 = 1_500;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u16),
    InsertWithTtl(u8, u16, u16),
    Get(u8),
    GetWith(u8, u16),
    Invalidate(u8),
    InvalidateAll,
    /// Tens of milliseconds.
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..20;
    prop_oneof![
        4 => (key.clone(), any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => (key.clone(), any::<u16>(), 1u16..600).prop_map(|(k, v, t)| Op::InsertWithTtl(k, v, t)),
        4 => key.clone().prop_map(Op::Get),
        3 => (key.clone(), any::<u16>()).prop_map(|(k, v)| Op::GetWith(k, v)),
        1 => key.prop_map(Op::Invalidate),
        1 => Just(Op::InvalidateAll),
        3 => (0u16..200).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Held {
    value: u16,
    expires_at: u64,
    last_access: u64,
}

#[derive(Default)]
struct Model {
    map: HashMap<u8, Held>,
    tti: Option<u64>,
}

impl Model {
    /// The value the model holds for `k` at `now`, if fresh; a read refreshes its idle time.
    fn read(&mut self, k: u8, now: u64) -> Option<u16> {
        let tti = self.tti;
        let held = self.map.get_mut(&k)?;
        let idle = tti.is_some_and(|tti| now - held.last_access >= tti);
        if now >= held.expires_at || idle {
            self.map.remove(&k);
            return None;
        }
        held.last_access = now;
        Some(held.value)
    }

    fn peek(&self, k: u8, now: u64) -> Option<u16> {
        let held = self.map.get(&k)?;
        let idle = self.tti.is_some_and(|tti| now - held.last_access >= tti);
        (now < held.expires_at && !idle).then_some(held.value)
    }

    fn put(&mut self, k: u8, value: u16, now: u64, ttl: u64) {
        let expires_at = now.saturating_add(ttl);
        self.map.insert(k, Held { value, expires_at, last_access: now });
    }
}

fn ms(n: u64) -> u64 {
    n * 1_000_000
}

/// Applies `ops` to a cache and the model; `exact`: the cache has room for every key;
/// `expiring`: it has a time to live (and, when exact, a time to idle), else no expiry at all.
fn check(ops: &[Op], exact: bool, expiring: bool) -> Result<(), TestCaseError> {
    let clock = ManualClock::starting_at(1);
    let capacity = if exact { 64 } else { 8 };
    let mut builder = Cache::builder().max_capacity(capacity).shards(1);
    if expiring {
        builder = builder.time_to_live(Duration::from_millis(TTL_MS));
    }
    let tti = exact && expiring;
    if tti {
        builder = builder.time_to_idle(Duration::from_millis(TTI_MS));
    }
    let cache: Cache<u8, u16, _> = builder.clock(clock.clone()).build().unwrap();
    let mut model = Model { tti: tti.then_some(ms(TTI_MS)), ..Model::default() };
    let ttl = if expiring { ms(TTL_MS) } else { u64::MAX };
    for op in ops {
        let now = clock.now();
        match *op {
            Op::Insert(k, v) => {
                cache.insert(k, v);
                model.put(k, v, now, ttl);
            }
            Op::InsertWithTtl(k, v, t) => {
                cache.insert_with_ttl(k, v, Duration::from_millis(u64::from(t) * 10));
                model.put(k, v, now, ms(u64::from(t) * 10));
            }
            Op::Get(k) => {
                let got = cache.get(&k);
                if exact {
                    prop_assert_eq!(got, model.read(k, now), "get({})", k);
                } else if let Some(v) = got {
                    prop_assert_eq!(Some(v), model.read(k, now), "get({}) invented a value", k);
                }
            }
            Op::GetWith(k, v) => {
                // Whether the loader ran, not whether the answer differs: a load of the value
                // the model holds for an evicted key stores it with a new time to live.
                let mut loaded = false;
                let got = cache.get_with(k, || {
                    loaded = true;
                    v
                });
                let held = if exact { model.read(k, now) } else { model.peek(k, now) };
                match held {
                    Some(h) if exact || !loaded => {
                        prop_assert!(!loaded, "get_with({}) loaded a held key", k);
                        prop_assert_eq!(got, h, "get_with({}) hit", k);
                        if !exact {
                            model.read(k, now);
                        }
                    }
                    _ => {
                        prop_assert!(loaded, "get_with({}) should have loaded", k);
                        prop_assert_eq!(got, v, "get_with({}) should have loaded", k);
                        model.put(k, v, now, ttl);
                    }
                }
            }
            Op::Invalidate(k) => {
                cache.invalidate(&k);
                model.map.remove(&k);
            }
            Op::InvalidateAll => {
                cache.invalidate_all();
                model.map.clear();
            }
            Op::Advance(tens) => {
                clock.advance(Duration::from_millis(u64::from(tens) * 10));
            }
        }
        prop_assert!(cache.len() <= capacity, "len {} over capacity {}", cache.len(), capacity);
    }
    // Finally every key agrees (exact) or is a subset (bounded).
    let now = clock.now();
    for k in 0..20 {
        let got = cache.get(&k);
        if exact {
            prop_assert_eq!(got, model.peek(k, now), "final get({})", k);
        } else if let Some(v) = got {
            prop_assert_eq!(Some(v), model.peek(k, now), "final get({})", k);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn with_room_for_every_key_the_cache_is_the_model(ops in prop::collection::vec(op(), 1..200)) {
        check(&ops, true, true)?;
    }

    #[test]
    fn when_full_the_cache_only_forgets(ops in prop::collection::vec(op(), 1..200)) {
        check(&ops, false, true)?;
    }

    #[test]
    fn without_expiry_and_with_room_the_cache_is_the_model(
        ops in prop::collection::vec(op(), 1..200),
    ) {
        check(&ops, true, false)?;
    }

    #[test]
    fn without_expiry_and_when_full_the_cache_only_forgets(
        ops in prop::collection::vec(op(), 1..200),
    ) {
        check(&ops, false, false)?;
    }
}
