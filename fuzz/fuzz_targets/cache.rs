//! Drives a `Cache` (1 to 8 shards, a capacity that forces eviction, optionally a weigher, a
//! time to live and a time to idle) with arbitrary sequences of inserts (with and without
//! their own time to live, zero and "never" included), reads, loads that succeed and fail,
//! invalidations, cleanups and clock moves, against a model of what the cache holds.
//!
//! The model learns of every removal from the cache's own events (each value that leaves is
//! reported with its cause), so it holds exactly the values the cache holds and can demand:
//! - a read returns exactly the model's value when it is fresh, and nothing otherwise: never a
//!   removed or expired value, never an older value than the last one stored for the key;
//! - a removal event names a value the cache held, and a rejection a value heavier than a
//!   shard; an invalidation leaves nothing of the key, a cleanup nothing expired;
//! - the number of entries and their weight match, and never exceed the capacity.
//!
//! Idle expiry is measured to within 1/256 of the time to idle (as documented); near that
//! boundary either answer is accepted, and the model follows the cache's.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::Arbitrary;
use levee_cache::{Cache, CacheEvent, RemovalCause};
use levee_core::{Clock, ManualClock};
use libfuzzer_sys::fuzz_target;

/// A value: a unique id (so each stored value can be told apart) and its weight.
type Value = (u32, u8);

#[derive(Debug, Arbitrary)]
struct Case {
    capacity: u8,
    /// log2 of the shard count.
    shards: u8,
    weighted: bool,
    /// Milliseconds.
    ttl_ms: Option<u16>,
    tti_ms: Option<u16>,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Ttl {
    Zero,
    Never,
    Millis(u16),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Insert(u8, u8),
    InsertWithTtl(u8, u8, Ttl),
    Get(u8),
    ContainsKey(u8),
    GetWith(u8, u8),
    FailedLoad(u8),
    Invalidate(u8),
    InvalidateAll,
    Cleanup,
    /// Milliseconds.
    Advance(u16),
}

#[derive(Debug, Clone, Copy)]
struct Held {
    value: Value,
    expires_at: u64,
    /// The cache's last access lies in `idle_from..=idle_to` (it is kept to within 1/256 of
    /// the time to idle).
    idle_from: u64,
    idle_to: u64,
    /// Seen dead by idleness (in the uncertain band): stays dead.
    idle_dead: bool,
}

#[derive(Debug, PartialEq)]
enum Fresh {
    Yes(Value),
    No,
    /// Within the idle measurement band: either answer.
    Either(Value),
}

struct Model {
    held: HashMap<u8, Held>,
    /// The value an operation just replaced, which the cache may report as `Replaced`.
    replaced: Option<(u8, Value)>,
    tti: u64,
    ttl: Option<u64>,
}

impl Model {
    fn fresh(&self, k: u8, now: u64) -> Fresh {
        let Some(h) = self.held.get(&k) else { return Fresh::No };
        if now >= h.expires_at || h.idle_dead {
            return Fresh::No;
        }
        if self.tti == 0 || now.saturating_sub(h.idle_from) < self.tti {
            return Fresh::Yes(h.value);
        }
        if now.saturating_sub(h.idle_to) >= self.tti {
            return Fresh::No;
        }
        Fresh::Either(h.value)
    }

    /// A read at `now` answered `got`: checks it and follows it.
    fn read(&mut self, k: u8, now: u64, got: Option<Value>, touch: bool) {
        let tti = self.tti;
        match (self.fresh(k, now), got) {
            (Fresh::No, None) => {}
            (Fresh::Yes(v) | Fresh::Either(v), Some(g)) if v == g => {
                if touch && tti != 0 {
                    let h = self.held.get_mut(&k).expect("fresh");
                    h.idle_from = h.idle_from.max(now.saturating_sub(tti >> 8));
                    h.idle_to = now;
                }
            }
            (Fresh::Either(_), None) => self.held.get_mut(&k).expect("held").idle_dead = true,
            (want, got) => panic!("read of key {k} at {now}: cache {got:?}, model {want:?}"),
        }
    }

    fn store(&mut self, k: u8, value: Value, now: u64, ttl: Option<u64>) {
        let old = match ttl {
            Some(0) => self.held.remove(&k),
            _ => {
                let expires_at = ttl.map_or(u64::MAX, |t| now.saturating_add(t));
                let held =
                    Held { value, expires_at, idle_from: now, idle_to: now, idle_dead: false };
                self.held.insert(k, held)
            }
        };
        self.replaced = old.map(|h| (k, h.value));
    }

    /// Applies the events an operation caused; `weight` is the weigher.
    fn removed(
        &mut self,
        events: Vec<CacheEvent<u8, Value>>,
        max_entry_weight: u64,
        weight: impl Fn(Value) -> u32,
    ) {
        for event in events {
            match event {
                CacheEvent::Removed { key, value, cause } => {
                    if cause == RemovalCause::Replaced && self.replaced == Some((key, value)) {
                        self.replaced = None;
                        continue;
                    }
                    let held = self.held.get(&key).map(|h| h.value);
                    assert_eq!(held, Some(value), "{cause:?} removal of key {key}: not held");
                    self.held.remove(&key);
                }
                CacheEvent::Rejected { key, weight: weight_of } => {
                    let heavy = u64::from(weight_of) > max_entry_weight;
                    assert!(heavy, "rejected weight {weight_of}, a shard holds {max_entry_weight}");
                    let held = self.held.remove(&key).expect("a rejected value was just stored");
                    assert_eq!(weight(held.value), weight_of);
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        self.replaced = None;
    }
}

fuzz_target!(|case: Case| {
    let clock = ManualClock::starting_at(1);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let capacity = u64::from(case.capacity % 48);
    let mut builder = Cache::<u8, Value>::builder()
        .max_capacity(capacity)
        .shards(1 << (case.shards % 4))
        .listener(move |e: &CacheEvent<u8, Value>| sink.lock().unwrap().push(e.clone()));
    if case.weighted {
        builder = builder.weigher(|_, v: &Value| u32::from(v.1));
    }
    let ms = |n: u16| u64::from(n) * 1_000_000;
    if let Some(t) = case.ttl_ms {
        builder = builder.time_to_live(Duration::from_millis(u64::from(t) + 1));
    }
    if let Some(t) = case.tti_ms {
        builder = builder.time_to_idle(Duration::from_millis(u64::from(t) + 1));
    }
    let cache = builder.clock(clock.clone()).build().expect("valid settings");
    let mut m = Model {
        held: HashMap::new(),
        replaced: None,
        tti: case.tti_ms.map_or(0, |t| ms(t) + 1_000_000),
        ttl: case.ttl_ms.map(|t| ms(t) + 1_000_000),
    };
    let weight = |v: Value| if case.weighted { u32::from(v.1) } else { 1 };
    let mut next_id = 0u32;
    let mut value = |w: u8| {
        next_id += 1;
        (next_id, if case.weighted { w % 8 } else { w })
    };

    for op in case.ops.iter().take(1_000) {
        let now = clock.now();
        match *op {
            Op::Insert(k, w) => {
                let v = value(w);
                cache.insert(k, v);
                m.store(k, v, now, m.ttl);
            }
            Op::InsertWithTtl(k, w, ref ttl) => {
                let v = value(w);
                let (d, t) = match *ttl {
                    Ttl::Zero => (Duration::ZERO, Some(0)),
                    Ttl::Never => (Duration::MAX, None),
                    Ttl::Millis(n) => (Duration::from_millis(u64::from(n)), Some(ms(n))),
                };
                cache.insert_with_ttl(k, v, d);
                m.store(k, v, now, t);
            }
            Op::Get(k) => m.read(k, now, cache.get(&k), true),
            Op::ContainsKey(k) => {
                let want = m.fresh(k, now);
                let got = cache.contains_key(&k);
                match want {
                    Fresh::Yes(_) => assert!(got, "contains_key({k}) at {now}"),
                    Fresh::No => assert!(!got, "contains_key({k}) at {now}"),
                    Fresh::Either(_) => {}
                }
            }
            Op::GetWith(k, w) => {
                let v = value(w);
                let mut loaded = false;
                let got = cache.get_with(k, || {
                    loaded = true;
                    v
                });
                if loaded {
                    assert_eq!(got, v);
                    assert!(!matches!(m.fresh(k, now), Fresh::Yes(_)), "loaded a fresh key {k}");
                    m.store(k, v, now, m.ttl);
                } else {
                    m.read(k, now, Some(got), true);
                }
            }
            Op::FailedLoad(k) => {
                let mut loaded = false;
                let got = cache.try_get_with(k, || {
                    loaded = true;
                    Err::<Value, u8>(k)
                });
                match got {
                    Ok(v) => {
                        assert!(!loaded);
                        m.read(k, now, Some(v), true);
                    }
                    Err(e) => {
                        assert!(loaded && *e == k, "the loader's own error");
                        assert!(
                            !matches!(m.fresh(k, now), Fresh::Yes(_)),
                            "loaded a fresh key {k}"
                        );
                    }
                }
            }
            Op::Invalidate(k) => cache.invalidate(&k),
            Op::InvalidateAll => cache.invalidate_all(),
            Op::Cleanup => cache.cleanup(),
            Op::Advance(n) => {
                clock.advance_nanos(ms(n));
            }
        }
        let happened = std::mem::take(&mut *events.lock().unwrap());
        m.removed(happened, cache.max_entry_weight(), weight);
        match *op {
            Op::Invalidate(k) => assert!(!m.held.contains_key(&k), "invalidate({k}) left a value"),
            Op::InvalidateAll => assert!(m.held.is_empty(), "invalidate_all left values"),
            Op::Cleanup => {
                for (&k, _) in m.held.iter() {
                    assert_ne!(m.fresh(k, now), Fresh::No, "cleanup left expired key {k}");
                }
            }
            _ => {}
        }
        let weight_held: u64 = m.held.values().map(|h| u64::from(weight(h.value))).sum();
        assert_eq!(cache.len(), m.held.len() as u64, "entries");
        assert_eq!(cache.weighted_size(), weight_held, "weight");
        assert!(weight_held <= capacity, "weight {weight_held} over capacity {capacity}");
    }
});
