//! The single-flight bookkeeping loads share: deciding a miss (answer, join the running
//! load, or lead a new one), finishing a load, and forgetting one whose loader panicked or
//! was abandoned. Apart because the sync and async loading front ends both build on it.

use levee_core::Clock;
use levee_core::sync::Arc;
use std::hash::Hash;

use super::{Inner, Want};
use crate::flight::Flight;
use crate::lock::Tally;
use crate::store::{FlightSlot, Slot};

/// What a miss decided under the write lock.
pub(crate) enum Claim<O, V, X> {
    /// Someone stored an answer meanwhile.
    Hit(O),
    /// A load of this key is running: wait for it.
    Join(Arc<Flight<Slot<V>>>),
    /// This caller leads the load `id`; `X` is what the flight maker returned.
    Lead(u64, Arc<Flight<Slot<V>>>, X),
    /// A refresh was asked for but a load is already running.
    Busy,
}

impl<K, V, C> Inner<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Decides a miss under the write lock: answer, join, or lead (then `lead(id)` makes the
    /// flight). With `refresh_of`, the caller refreshes that entry and only leads.
    pub(crate) fn claim<W: Want<V>, X>(
        &self,
        hash: u64,
        key: &K,
        now: u64,
        refresh_of: Option<u64>,
        lead: impl FnOnce(u64) -> (Arc<Flight<Slot<V>>>, X),
    ) -> Claim<W::Out, V, X> {
        let config = &self.config;
        if refresh_of.is_none() {
            // Most callers of a burst find the load already running: joining it needs only the
            // read side; the write side is for the one that leads.
            let running = self.shard(hash).read(|shard| {
                let flight = shard
                    .find_flight(hash, key)
                    .filter(|slot| slot.flight.is_running())
                    .map(|slot| slot.flight.clone());
                (flight, Tally::Nothing)
            });
            if let Some(flight) = running {
                return Claim::Join(flight);
            }
        }
        let (claim, stale) = self.shard(hash).write(|shard| {
            let usable = match refresh_of {
                None => shard
                    .find(hash, key)
                    .filter(|e| !e.is_dead(now, config.tti) && now < e.expires_at()),
                Some(_) => None,
            };
            if let Some(e) = usable {
                if let Some(out) = W::accept(e.slot()) {
                    e.touch();
                    return (Claim::Hit(out), None);
                }
            }
            let mut stale = None;
            if let Some(slot) = shard.find_flight(hash, key) {
                if slot.flight.is_running() {
                    let claim = if refresh_of.is_some() {
                        Claim::Busy
                    } else {
                        Claim::Join(slot.flight.clone())
                    };
                    return (claim, None);
                }
                // A finished flight whose slot was not yet removed: replace it (and drop it
                // outside the lock).
                stale = shard.detach_flight(hash, key);
            }
            let id = shard.next_id();
            let (flight, x) = lead(id);
            shard.flights.insert_unique(
                hash,
                FlightSlot { key: key.clone(), hash, id, refresh_of, flight: flight.clone() },
                |s| s.hash,
            );
            (Claim::Lead(id, flight, x), stale)
        });
        drop(stale);
        claim
    }

    /// Finishes load `id`: records it and stores the result unless it went stale.
    pub(crate) fn complete(&self, hash: u64, key: K, id: u64, slot: Slot<V>, started: u64) {
        self.record_load(matches!(slot, Slot::Failed(_)), started);
        self.finish_load(hash, key, id, slot, started);
    }

    /// Stores the result of load `id` unless it went stale.
    pub(crate) fn finish_load(&self, hash: u64, key: K, id: u64, slot: Slot<V>, started: u64) {
        let now = self.clock.now();
        let deadlines = self.deadlines(&key, &slot, None);
        self.store(hash, key, slot, deadlines, now, now.saturating_sub(started), Some(id));
    }

    /// Counts one loader call.
    pub(crate) fn record_load(&self, failed: bool, started: u64) {
        self.counters.loads.incr();
        self.counters.latency.record_nanos(self.clock.now().saturating_sub(started));
        if failed {
            self.counters.load_errors.incr();
        }
    }

    /// Forgets load `id` after its loader panicked or every caller left it.
    pub(crate) fn abandon(&self, hash: u64, id: u64, panicked: bool) {
        if panicked {
            self.counters.load_panics.incr();
        } else {
            self.counters.abandoned_loads.incr();
        }
        let slot = self.shard(hash).write(|shard| {
            let slot = shard.take_flight(hash, id);
            let refreshed = slot.as_ref().and_then(|s| s.refresh_of);
            if let Some(e) = refreshed.and_then(|id| shard.find_id(hash, id)) {
                e.end_refresh();
            }
            slot
        });
        drop(slot);
    }
}
