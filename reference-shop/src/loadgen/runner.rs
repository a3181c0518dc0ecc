//! The two ways of pacing requests.
//!
//! **Open loop** (the default): request `k` is due at its slot of the [`Schedule`] and is sent
//! then, whether or not earlier requests were answered; its latency runs from that intended
//! time, so time a request spent waiting because the shop (or the generator) was behind
//! counts. If the generator itself falls behind, the overdue requests go out at once and the
//! lag is reported. A request due while `max_in_flight` are outstanding is not sent and
//! counts as dropped (an error), which keeps the generator's memory bounded without hiding
//! the overload.
//!
//! **Closed loop** (`--closed-loop N`): N clients, each sending its next request when the
//! previous one is answered. Its latencies run from the actual send, so a stalled shop
//! slows the senders and the stall shows up as one slow request per client instead of a
//! queue: kept for comparison, not for verdicts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::driver::Driver;
use super::scenario::{Phase, Scenario};
use super::schedule::Schedule;
use super::stats::Stats;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each request at its scheduled time, whatever happened to the others.
    Open,
    /// `clients` clients, each waiting for its answer before sending again.
    Closed {
        /// How many.
        clients: usize,
    },
}

/// A request to stop early (Ctrl-C): set once, seen by every part of the run.
#[derive(Debug, Clone)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    pub(crate) fn new(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once a stop is requested (never, if the sender is gone without one).
    pub(crate) async fn requested(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What a pacing loop works with.
pub(crate) struct Load<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) driver: Arc<Driver>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) start: Instant,
    pub(crate) max_requests: u64,
    pub(crate) stop: Stop,
}

/// The phase that `t` (from the start of the run) falls in; the last one past the end.
pub(crate) fn phase_at(phases: &[Phase], t: Duration) -> usize {
    phases.iter().position(|p| t < p.end()).unwrap_or(phases.len().saturating_sub(1))
}

/// Sends on the schedule until it ends, `max_requests` were due, or a stop; then waits for
/// the requests still out (each bounded by the request timeout).
pub(crate) async fn open_loop(load: Load<'_>) {
    let Load { scenario, driver, stats, start, max_requests, mut stop } = load;
    let slots = Arc::new(Semaphore::new(scenario.max_in_flight()));
    let mut tasks = JoinSet::new();
    let mix = scenario.mix();
    for slot in
        Schedule::new(scenario.phases()).take(usize::try_from(max_requests).unwrap_or(usize::MAX))
    {
        let intended = start + slot.at;
        if intended > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(intended) => {}
                () = stop.requested() => break,
            }
        }
        if stop.is_set() {
            break;
        }
        let op = mix.draw();
        match Arc::clone(&slots).try_acquire_owned() {
            Err(_) => stats.record_dropped(slot.phase, op),
            Ok(permit) => {
                let (driver, stats) = (Arc::clone(&driver), Arc::clone(&stats));
                stats.sending(Instant::now().saturating_duration_since(intended));
                tasks.spawn(async move {
                    let sent = Instant::now();
                    let outcome = driver.send(op).await;
                    let done = Instant::now();
                    stats.record(slot.phase, op, outcome, done - intended, done - sent);
                    drop(permit);
                });
            }
        }
        // Reap what finished, so the set holds only what is in flight.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// `clients` clients send back to back until the scenario's duration has passed,
/// `max_requests` were sent, or a stop.
pub(crate) async fn closed_loop(load: Load<'_>, clients: usize) {
    let Load { scenario, driver, stats, start, max_requests, stop } = load;
    let deadline = start + scenario.duration();
    let phases: Arc<[Phase]> = scenario.phases().into();
    let mix = scenario.mix().clone();
    let budget = Arc::new(AtomicU64::new(max_requests));
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (driver, stats, phases, mix, budget, stop) = (
            Arc::clone(&driver),
            Arc::clone(&stats),
            Arc::clone(&phases),
            mix.clone(),
            Arc::clone(&budget),
            stop.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < deadline
                && !stop.is_set()
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let sent = Instant::now();
                let phase = phase_at(&phases, sent - start);
                let op = mix.draw();
                stats.sending(Duration::ZERO);
                let outcome = driver.send(op).await;
                let took = sent.elapsed();
                stats.record(phase, op, outcome, took, took);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_fall_in_their_phase_and_past_the_end_in_the_last() {
        let s = Scenario::from_toml(
            "[[phase]]\nname = \"a\"\nduration = \"1s\"\nrate = 1\n\
             [[phase]]\nname = \"b\"\nduration = \"2s\"\nrate = 1\n",
        )
        .unwrap();
        let at = |ms| phase_at(s.phases(), Duration::from_millis(ms));
        assert_eq!([at(0), at(999), at(1000), at(2999), at(3000), at(60_000)], [0, 0, 1, 1, 1, 1]);
    }
}
