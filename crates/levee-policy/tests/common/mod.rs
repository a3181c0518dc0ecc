//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::new_without_default)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_core::ManualClock;
use levee_policy::Event;
use tokio::time::Instant;

thread_local! {
    /// The test's clock: each test runs on its own thread, and its tokio runtime (paused) on
    /// that thread, so a sleep on this clock follows tokio's auto-advance.
    static CLOCK: ManualClock = ManualClock::new();
}

/// The running test's manual clock (pipelines run on it; operations sleep on it).
pub fn clock() -> ManualClock {
    CLOCK.with(ManualClock::clone)
}

/// Collects every event a pipeline emits.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<Event>>>);

impl Events {
    pub fn listener(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let all = self.0.clone();
        move |e: &Event| all.lock().unwrap().push(e.clone())
    }

    pub fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| f(e)).count()
    }
}

/// Sets its flag when dropped: proves a future was cancelled.
pub struct DropGuard(pub Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Records when each attempt started, relative to `start`.
#[derive(Clone)]
pub struct Attempts {
    start: Instant,
    pub at: Arc<Mutex<Vec<Duration>>>,
    pub n: Arc<AtomicU32>,
}

impl Attempts {
    pub fn new() -> Self {
        Self { start: Instant::now(), at: Arc::default(), n: Arc::default() }
    }

    /// Marks an attempt; returns its index.
    pub fn mark(&self) -> u32 {
        self.at.lock().unwrap().push(self.start.elapsed());
        self.n.fetch_add(1, Ordering::SeqCst)
    }

    pub fn count(&self) -> u32 {
        self.n.load(Ordering::SeqCst)
    }

    pub fn gaps(&self) -> Vec<Duration> {
        let at = self.at.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }

    pub fn times(&self) -> Vec<Duration> {
        self.at.lock().unwrap().clone()
    }
}

pub const MS: Duration = Duration::from_millis(1);
