//! The endpoint set and how one endpoint is picked for an attempt: priority groups, ejection
//! by breaker, and power of two choices on peak-EWMA load.
//!
//! Power of two choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
//! Balancing", 2001): pick two endpoints at random and send to the less loaded one. It
//! needs no shared ordering of endpoints, spreads load nearly as well as always picking the
//! least loaded one, and never herds every caller onto the one endpoint that looked best
//! a moment ago. The load is the endpoint's [`PeakEwma`].
//!
//! **Priority groups.** Endpoints sit in groups by priority (0 = primaries, 1 = standbys,
//! ...). An attempt picks in the first group that has an eligible endpoint: healthy, its
//! breaker not open (or open with its wait over, so a trial call may go), and not already
//! tried by this call if another one is left. So a group fails over to the next only when
//! every endpoint in it is ejected or unhealthy, and traffic returns as soon as one
//! primary's breaker lets a trial through and the trial passes.
//!
//! **Ejection** is the endpoint's breaker: picking takes a permit, and a refusal (the
//! breaker is open, or half-open with every trial permit out) makes the pick move on to
//! another endpoint. A refusal's "open until" is kept beside the endpoint, so later picks
//! skip it without asking its breaker until then.
//!
//! The selection itself is synchronous and takes the time and the random source as
//! arguments, so the model test drives it deterministically.

use std::sync::Arc;

use levee_breaker::{BreakerEvent, BreakerSettings, CircuitBreaker, OwnedPermit, State};
use levee_core::sync::{AtomicBool, AtomicU64, Mutex, Ordering, RwLock};
use levee_core::{Clock, Counter, EventHook};
use tokio::sync::watch;

use crate::Endpoint;
use crate::error::Error;
use crate::ewma::{EwmaSettings, PeakEwma};

/// One endpoint and everything the client keeps about it.
#[derive(Debug)]
pub(crate) struct EndpointState<C: Clock> {
    pub(crate) endpoint: Endpoint,
    /// Unique in its set: the bit `id % 64` marks it tried in a call's mask.
    pub(crate) id: u64,
    pub(crate) breaker: Arc<CircuitBreaker<C>>,
    pub(crate) load: PeakEwma,
    /// Until when its open breaker refuses (a clock reading), learnt from a refusal.
    ejected_until: AtomicU64,
    healthy: AtomicBool,
    pub(crate) requests: Counter,
    pub(crate) failures: Counter,
}

impl<C: Clock> EndpointState<C> {
    /// Whether a pick at `now` may choose it (its breaker may still refuse).
    #[inline]
    pub(crate) fn eligible(&self, now: u64) -> bool {
        // Relaxed: health and the ejection time are hints; the breaker decides.
        self.healthy.load(Ordering::Relaxed)
            && match self.breaker.state() {
                State::Closed | State::Disabled | State::HalfOpen => true,
                State::Open => now >= self.ejected_until.load(Ordering::Relaxed),
                State::ForcedOpen => false,
            }
    }

    #[inline]
    pub(crate) fn tried_bit(&self) -> u64 {
        1 << (self.id % 64)
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub(crate) fn ejected_until(&self) -> Option<u64> {
        (self.breaker.state() == State::Open)
            .then(|| self.ejected_until.load(Ordering::Relaxed))
            .filter(|&t| t > 0)
    }
}

/// A group of endpoints of one priority.
#[derive(Debug)]
pub(crate) struct Group<C: Clock> {
    pub(crate) priority: u8,
    pub(crate) endpoints: Vec<Arc<EndpointState<C>>>,
}

/// The endpoints at one moment, groups by ascending priority.
#[derive(Debug)]
pub(crate) struct Snapshot<C: Clock> {
    pub(crate) groups: Vec<Group<C>>,
}

/// The endpoint an attempt goes to, with the breaker's permission.
pub(crate) struct Pick<C: Clock> {
    pub(crate) state: Arc<EndpointState<C>>,
    pub(crate) permit: OwnedPermit<C>,
}

/// The most refusals one pick takes in a group before it moves on (each refusal also
/// records the ejection, so the next pick skips that endpoint without asking).
const MAX_REFUSALS: usize = 8;

impl<C: Clock> Snapshot<C> {
    /// Picks an endpoint for an attempt at `now`, preferring ones not in `tried` (a mask
    /// of [`EndpointState::tried_bit`]s), and takes its breaker's permit. `random(n)` is
    /// uniform in `0..n`.
    ///
    /// # Errors
    /// [`Error::NoEndpoints`] for an empty set, [`Error::AllEjected`] when every endpoint
    /// is ineligible or refused.
    pub(crate) fn pick(
        &self,
        now: u64,
        tried: u64,
        random: &mut impl FnMut(u64) -> u64,
    ) -> Result<Pick<C>, Error> {
        if self.groups.is_empty() {
            return Err(Error::NoEndpoints);
        }
        for group in &self.groups {
            let mut refused = [usize::MAX; MAX_REFUSALS];
            let mut refusals = 0;
            loop {
                let ok = |i: usize, untried: bool| {
                    let e = &group.endpoints[i];
                    !refused[..refusals].contains(&i)
                        && (!untried || tried & e.tried_bit() == 0)
                        && e.eligible(now)
                };
                let Some(i) = p2c(group, now, random, |i| ok(i, true))
                    .or_else(|| p2c(group, now, random, |i| ok(i, false)))
                else {
                    break;
                };
                let state = &group.endpoints[i];
                match state.breaker.try_acquire_owned() {
                    Ok(permit) => return Ok(Pick { state: state.clone(), permit }),
                    Err(open) => {
                        if let (State::Open, Some(until)) = (open.state(), open.until()) {
                            state.ejected_until.store(until, Ordering::Relaxed);
                        }
                        if refusals == MAX_REFUSALS {
                            break;
                        }
                        refused[refusals] = i;
                        refusals += 1;
                    }
                }
            }
        }
        Err(Error::AllEjected { retry_after: self.first_return(now) })
    }

    /// How long until the first ejected endpoint may take a trial call.
    fn first_return(&self, now: u64) -> Option<std::time::Duration> {
        self.groups
            .iter()
            .flat_map(|g| &g.endpoints)
            .filter(|e| e.is_healthy())
            .filter_map(|e| e.ejected_until())
            .min()
            .map(|until| std::time::Duration::from_nanos(until.saturating_sub(now)))
    }
}

/// Power of two choices among the endpoints of `group` that `ok` accepts: two random draws
/// first (the common case, every endpoint eligible, costs two loads of each), a scan when
/// either draw is not accepted.
#[inline]
fn p2c<C: Clock>(
    group: &Group<C>,
    now: u64,
    random: &mut impl FnMut(u64) -> u64,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let n = group.endpoints.len();
    if n == 1 {
        return ok(0).then_some(0);
    }
    let a = random(n as u64) as usize;
    let b = {
        let b = random(n as u64 - 1) as usize;
        if b >= a { b + 1 } else { b }
    };
    if ok(a) && ok(b) {
        return Some(cheaper(group, now, a, b));
    }
    // Some endpoints are not eligible: draw two among those that are.
    let eligible = (0..n).filter(|&i| ok(i)).count();
    match eligible {
        0 => None,
        1 => (0..n).find(|&i| ok(i)),
        k => {
            let ra = random(k as u64) as usize;
            let rb = {
                let r = random(k as u64 - 1) as usize;
                if r >= ra { r + 1 } else { r }
            };
            let mut ranked = (0..n).filter(|&i| ok(i));
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            let first = ranked.nth(lo)?;
            let second = ranked.nth(hi - lo - 1)?;
            Some(cheaper(group, now, first, second))
        }
    }
}

#[inline]
fn cheaper<C: Clock>(group: &Group<C>, now: u64, a: usize, b: usize) -> usize {
    let (la, lb) = (group.endpoints[a].load.load(now), group.endpoints[b].load.load(now));
    if lb < la { b } else { a }
}

/// How new endpoints are set up.
pub(crate) struct StateFactory<C: Clock> {
    pub(crate) clock: C,
    pub(crate) breaker: BreakerSettings,
    pub(crate) breaker_hook: EventHook<BreakerEvent>,
    pub(crate) ewma: EwmaSettings,
}

/// The live endpoint set: a snapshot behind a read-mostly lock, replaced as a whole when
/// the list changes, and the `watch` it follows, if any.
pub(crate) struct EndpointSet<C: Clock> {
    snapshot: RwLock<Arc<Snapshot<C>>>,
    watch: Option<Mutex<watch::Receiver<Vec<Endpoint>>>>,
    factory: StateFactory<C>,
    next_id: AtomicU64,
}

impl<C: Clock + Clone> EndpointSet<C> {
    pub(crate) fn new(
        factory: StateFactory<C>,
        initial: &[Endpoint],
        watch: Option<watch::Receiver<Vec<Endpoint>>>,
    ) -> Self {
        let set = Self {
            snapshot: RwLock::new(Arc::new(Snapshot { groups: Vec::new() })),
            watch: None,
            factory,
            next_id: AtomicU64::new(0),
        };
        match watch {
            Some(mut rx) => {
                let list = rx.borrow_and_update().clone();
                set.replace(&list);
                Self { watch: Some(Mutex::new(rx)), ..set }
            }
            None => {
                set.replace(initial);
                set
            }
        }
    }

    /// The current snapshot (after applying a pending update of the watched list).
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Snapshot<C>) -> R) -> R {
        self.refresh();
        f(&self.snapshot.read())
    }

    /// Applies the watched list if it changed (one atomic load when it did not).
    #[inline]
    fn refresh(&self) {
        let Some(watch) = &self.watch else { return };
        if let Some(mut rx) = watch.try_lock() {
            // A closed channel keeps the last list.
            if rx.has_changed().unwrap_or(false) {
                let list = rx.borrow_and_update().clone();
                self.replace(&list);
            }
        }
    }

    /// Makes `list` the endpoint set. Endpoints already known (same scheme and authority)
    /// keep their breaker, latency estimate and counters; health and priority follow the
    /// list. A repeated endpoint counts once (the first).
    pub(crate) fn replace(&self, list: &[Endpoint]) {
        let current = self.snapshot.read().clone();
        let known: Vec<&Arc<EndpointState<C>>> =
            current.groups.iter().flat_map(|g| &g.endpoints).collect();
        let mut groups: Vec<Group<C>> = Vec::new();
        let mut seen: Vec<&Endpoint> = Vec::new();
        for endpoint in list {
            if seen.iter().any(|s| s.same_replica(endpoint)) {
                continue;
            }
            seen.push(endpoint);
            let state = match known.iter().find(|s| s.endpoint.same_replica(endpoint)) {
                Some(state) => Arc::clone(state),
                None => Arc::new(self.make(endpoint)),
            };
            state.set_healthy(endpoint.is_healthy());
            match groups.iter_mut().find(|g| g.priority == endpoint.priority()) {
                Some(group) => group.endpoints.push(state),
                None => {
                    groups.push(Group { priority: endpoint.priority(), endpoints: vec![state] })
                }
            }
        }
        groups.sort_by_key(|g| g.priority);
        *self.snapshot.write() = Arc::new(Snapshot { groups });
    }

    fn make(&self, endpoint: &Endpoint) -> EndpointState<C> {
        let f = &self.factory;
        let breaker = CircuitBreaker::builder()
            .settings(f.breaker.clone())
            .name(endpoint.to_string())
            .hook(f.breaker_hook.clone())
            .clock(f.clock.clone())
            .build()
            // The settings were validated when the client was built.
            .unwrap_or_else(|_| unreachable!("breaker settings are validated by the builder"));
        EndpointState {
            endpoint: endpoint.clone(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            breaker: Arc::new(breaker),
            load: PeakEwma::new(f.ewma, f.clock.now()),
            ejected_until: AtomicU64::new(0),
            healthy: AtomicBool::new(endpoint.is_healthy()),
            requests: Counter::new(),
            failures: Counter::new(),
        }
    }

    /// Every endpoint with its priority, in group order.
    pub(crate) fn all(&self) -> Vec<(u8, Arc<EndpointState<C>>)> {
        self.with(|s| {
            s.groups
                .iter()
                .flat_map(|g| g.endpoints.iter().map(|e| (g.priority, e.clone())))
                .collect()
        })
    }
}

#[cfg(all(test, not(loom)))]
mod model {
    //! `pick` against the rule written plainly: the first priority group with an eligible
    //! endpoint (healthy, breaker neither open nor forced open), an untried one if that
    //! group has one, `AllEjected` when there is none anywhere.
    use super::*;
    use levee_core::ManualClock;
    use proptest::prelude::*;

    /// One endpoint of a generated set: priority, healthy, breaker (0 closed, 1 open,
    /// 2 forced open), requests in flight, tried by the call.
    type Spec = (u8, bool, u8, u8, bool);

    fn set(specs: &[Spec]) -> (EndpointSet<ManualClock>, Vec<Endpoint>) {
        let clock = ManualClock::new();
        let factory = StateFactory {
            clock,
            breaker: crate::default_endpoint_breaker(),
            breaker_hook: EventHook::none(),
            ewma: EwmaSettings::default(),
        };
        let list: Vec<Endpoint> = specs
            .iter()
            .enumerate()
            .map(|(i, &(priority, healthy, ..))| {
                Endpoint::new(&format!("http://e{i}:80"))
                    .unwrap()
                    .with_priority(priority)
                    .healthy(healthy)
            })
            .collect();
        (EndpointSet::new(factory, &list, None), list)
    }

    proptest! {
        #[test]
        fn picks_as_the_rule_says(
            specs in proptest::collection::vec((0u8..3, any::<bool>(), 0u8..3, 0u8..3, any::<bool>()), 0..10),
            seeds in proptest::collection::vec(any::<u64>(), 64),
        ) {
            let (set, list) = set(&specs);
            let all = set.all();
            let mut tried = 0u64;
            for (i, spec) in specs.iter().enumerate() {
                let state = &all.iter().find(|(_, s)| s.endpoint.same_replica(&list[i])).unwrap().1;
                match spec.2 {
                    1 => state.breaker.trip(),
                    2 => state.breaker.force_open(),
                    _ => {}
                }
                for _ in 0..spec.3 {
                    state.load.start();
                }
                if spec.4 {
                    tried |= state.tried_bit();
                }
            }
            let eligible = |i: usize| specs[i].1 && specs[i].2 == 0;
            let mut draws = seeds.into_iter().cycle();
            let mut random = |n: u64| draws.next().unwrap_or(0) % n;
            let picked = set.with(|s| s.pick(0, tried, &mut random));
            let first_group = (0u8..3).find(|p| (0..specs.len()).any(|i| specs[i].0 == *p && eligible(i)));
            match (picked, first_group) {
                (Ok(pick), Some(group)) => {
                    let i = list.iter().position(|e| e.same_replica(&pick.state.endpoint)).unwrap();
                    prop_assert!(eligible(i), "picked an ineligible endpoint");
                    prop_assert_eq!(specs[i].0, group, "picked outside the first eligible group");
                    let untried_left = (0..specs.len()).any(|j| specs[j].0 == group && eligible(j) && !specs[j].4);
                    // Ids are distinct below 64, so the mask is exact here.
                    prop_assert!(!untried_left || !specs[i].4, "picked a tried endpoint with an untried one left");
                }
                (Err(Error::NoEndpoints), _) => prop_assert!(specs.is_empty()),
                (Err(Error::AllEjected { .. }), None) => prop_assert!(!specs.is_empty()),
                (other, group) => prop_assert!(false, "{:?} with first group {group:?}", other.map(|p| p.state.endpoint.clone())),
            }
        }
    }
}
