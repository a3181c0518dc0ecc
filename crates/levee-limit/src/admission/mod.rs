//! Adaptive admission control: shed load before latency collapses, from what the process
//! measures itself.
//!
//! **The rule** (after the BBR-style shedders of Kratos and go-zero and Sentinel's adaptive
//! system rule, themselves after TCP BBR's bandwidth-delay product): a service that
//! completes at most `T` requests per second and needs at least `L` per request can work on
//! `T x L` requests at once (Little's law); more in flight only wait in a queue. So
//!
//! ```text
//! capacity = max throughput (most completions in one bucket, per second, over the window)
//!          x min latency    (smallest mean latency of one bucket over the window)
//!          x headroom       (1.25 by default, see below)
//! shed a request  iff  in_flight > max(capacity, min_in_flight)   [and the CPU gate is open]
//! ```
//!
//! Both figures come from the closed buckets of a sliding window (10 s of 100 buckets by
//! default); the bucket still filling is never read. With no completion in the window there
//! is no estimate and nothing is shed.
//!
//! **How it works.** Admitting is one clock read and one `fetch_add` on the in-flight count
//! (undone by a `fetch_sub` when the request is shed); the estimate is cached in one atomic
//! word per bucket, recomputed by the first request of a bucket that is over `min_in_flight`
//! (a scan of the window's buckets, once per bucket). The permit's drop reads the clock,
//! adds the completion and its latency to the current bucket (a CAS each, on words that carry
//! their bucket, see `window.rs`), and leaves the in-flight count. No locks, no allocation.
//!
//! **The headroom.** The min of many noisy bucket means reads below the true mean latency
//! (with service times spread evenly over ±50 % and 20 completions a bucket, about 15 %
//! below), and an estimate that admits fewer than the service's own concurrency starves its
//! workers, lowers the next max throughput, and spirals down. The headroom covers that
//! bias; the drain bucket keeps the extra it admits from compounding.
//!
//! **The drain bucket** (after TCP BBR's ProbeRTT): once per window, for one bucket, the
//! capacity is halved (counted from the bucket the controller was built in, so replicas
//! started at different times drain at different times, and a clock's origin does not move
//! it). The estimate is self-referential: if a queue formed (the max throughput of a bucket
//! reads high when completions bunch, and every request admitted over the service's true
//! concurrency waits), each bucket's mean latency includes it, the min latency with it, and
//! the next estimate admits the same queue again, or more. Halving the admission for one
//! bucket lets that queue drain, so the window always holds a bucket measured without it.
//! It costs at most half a bucket's admissions per window (0.5 % with the default 100
//! buckets), and only when in flight exceeds half the estimate.
//!
//! **The CPU gate** (optional, off by default): with [`AdmissionSettings::cpu_threshold`]
//! and a [`CpuSource`], the rule sheds only while CPU usage is at or over the threshold, or
//! within [`AdmissionSettings::cool_down`] of the last shed, so shedding does not flap as
//! usage crosses the threshold. The source is read only when the in-flight rule would shed.
//!
//! **Limits**, worth knowing before relying on it:
//! - The estimate learns from admitted traffic. After a quiet window the max throughput is
//!   the quiet rate, so a sudden burst is held near it, and capacity grows from bucket to
//!   bucket by the headroom (each bucket admits more than the last one completed, which
//!   completes more). The CPU gate is the remedy: it sheds only when the machine is busy.
//! - The min latency is a bucket's *mean*, not the fastest request, so one fast request (a
//!   cache hit, an error) does not shrink the estimate; queueing inside the service counts
//!   as service time until the drain bucket measures without it. Release requests whose
//!   latency says nothing about capacity with [`AdmissionPermit::ignore`].
//! - The more latency varies, the lower the min of bucket means reads: with a coefficient
//!   of variation near 1 (exponential service times) raise the headroom or lengthen the
//!   buckets (more completions per bucket, less noise in each mean).
//! - Buckets should be longer than most requests take (the default 100 ms buckets suit
//!   services answering in tens of milliseconds): a request's latency is recorded in the
//!   bucket it completes in, and the drain bucket drains only what completes within it.
//! - One controller measures one kind of work: mixing 1 ms reads and 1 s reports in one
//!   controller takes the reads' latency with the reports' throughput.
//! - It bounds concurrency, not rate: it does not replace a rate limit per client.

mod builder;
mod cpu;
mod error;
mod permit;
mod settings;
mod stats;
mod window;

pub use builder::AdmissionBuilder;
pub use cpu::{CpuGauge, CpuSource};
pub use error::Shed;
pub use permit::{AdmissionPermit, OwnedAdmissionPermit};
pub use settings::{AdmissionSettings, MAX_ADMISSION_BUCKETS};
pub use stats::{AdmissionEvent, AdmissionStats};

use std::fmt;
use std::sync::Arc;

use levee_core::sync::{AtomicU64, AtomicUsize, CachePadded, Ordering};
use levee_core::{Clock, Counter, EventHook, FastClock, StripedCounter};

use window::Window;

/// Sheds requests while more are in flight than the process's estimated capacity (module
/// docs: the rule, how it works, its limits).
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{AdmissionController, AdmissionSettings};
///
/// let clock = ManualClock::new();
/// let controller = AdmissionController::builder()
///     .settings(AdmissionSettings::new().window(Duration::from_secs(1), 10))
///     .clock(clock.clone())
///     .build()?;
///
/// // One bucket (100 ms) of 20 requests, 2 at a time, 10 ms each: 200/s x 10 ms = 2 in flight.
/// for _ in 0..10 {
///     let (a, b) = (controller.try_acquire()?, controller.try_acquire()?);
///     clock.advance(Duration::from_millis(10));
///     drop((a, b));
/// }
/// clock.advance(Duration::from_millis(1)); // the bucket closes
/// // The default headroom (x 1.25) allows at least one more than the estimate.
/// assert_eq!(controller.capacity(), Some(3));
///
/// let held = [controller.try_acquire()?, controller.try_acquire()?, controller.try_acquire()?];
/// let shed = controller.try_acquire().unwrap_err();
/// assert_eq!((shed.in_flight, shed.capacity), (4, 3));
/// drop(held);
/// assert_eq!(controller.stats().shed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AdmissionController<C = FastClock> {
    in_flight: CachePadded<AtomicUsize>,
    /// The capacity estimate of one bucket (see [`Cached`]).
    cached: CachePadded<AtomicU64>,
    window: Window,
    /// `bucket % buckets` of the drain bucket: the bucket the controller was built in, so the
    /// drain comes once a window counted from its start, whatever the clock's origin.
    drain_phase: u64,
    /// Clock reading of the last shed, 0 for never (a shed at 0 is stored as 1).
    last_shed: AtomicU64,
    min_in_flight: usize,
    cool_down: u64,
    cpu: Option<CpuGate>,
    settings: AdmissionSettings,
    clock: C,
    admitted: StripedCounter,
    shed: Counter,
    hook: EventHook<AdmissionEvent>,
}

/// The CPU gate: shed only while `source` reads at least `threshold`.
struct CpuGate {
    source: Arc<dyn CpuSource>,
    threshold: f64,
}

impl<C> fmt::Debug for AdmissionController<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionController")
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The cached estimate: `bucket tag (24 bits) | value (40 bits)`, value 0 for "not computed
/// yet", [`Cached::NONE`] for "no estimate", else capacity + 1 (capped). A word left from
/// exactly a multiple of 2^24 buckets ago would be taken for the current bucket's for that
/// one bucket (no request over `min_in_flight` for 19 days at 100 ms buckets).
struct Cached;

impl Cached {
    const TAG_BITS: u32 = 24;
    const VALUE_BITS: u32 = 64 - Self::TAG_BITS;
    const NONE: u64 = (1 << Self::VALUE_BITS) - 1;
    const TAG_MASK: u64 = (1 << Self::TAG_BITS) - 1;

    fn pack(bucket: u64, capacity: Option<u64>) -> u64 {
        let value = capacity.map_or(Self::NONE, |c| c.min(Self::NONE - 2) + 1);
        ((bucket & Self::TAG_MASK) << Self::VALUE_BITS) | value
    }

    /// The capacity a word holds for `bucket`: `None` if it is not that bucket's, `Some(None)`
    /// for "no estimate".
    fn unpack(word: u64, bucket: u64) -> Option<Option<u64>> {
        let value = word & Self::NONE;
        if word >> Self::VALUE_BITS != bucket & Self::TAG_MASK || value == 0 {
            None
        } else if value == Self::NONE {
            Some(None)
        } else {
            Some(Some(value - 1))
        }
    }
}

impl<C: Clock> AdmissionController<C> {
    /// Admits the request, or sheds it by the rule (module docs).
    ///
    /// # Errors
    /// [`Shed`] with the in-flight count and the capacity it was over.
    #[inline]
    pub fn try_acquire(&self) -> Result<AdmissionPermit<'_, C>, Shed> {
        let start = self.admit()?;
        Ok(AdmissionPermit { controller: self, start: Some(start) })
    }

    /// As [`try_acquire`](Self::try_acquire), for a permit owning a handle to the controller
    /// (for tasks and response futures).
    ///
    /// # Errors
    /// As [`try_acquire`](Self::try_acquire).
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedAdmissionPermit<C>, Shed> {
        let start = self.admit()?;
        Ok(OwnedAdmissionPermit { controller: Arc::clone(self), start: Some(start) })
    }

    /// The settings the controller was built with.
    #[must_use]
    pub fn settings(&self) -> &AdmissionSettings {
        &self.settings
    }

    /// Takes a place in flight or sheds; returns the admission time.
    #[inline]
    fn admit(&self) -> Result<u64, Shed> {
        let now = self.clock.now();
        // Relaxed: a count; its read-modify-writes are totally ordered on their own, which
        // keeps it exact (tests/loom_admission.rs), and it guards no other memory.
        let in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        if in_flight > self.min_in_flight {
            if let Some(capacity) = self.capacity_at(now) {
                if in_flight > capacity && self.gate_open(now) {
                    self.in_flight.fetch_sub(1, Ordering::Relaxed);
                    return Err(self.shed(now, in_flight, capacity));
                }
            }
        }
        self.admitted.incr();
        Ok(now)
    }

    #[cold]
    fn shed(&self, now: u64, in_flight: usize, capacity: usize) -> Shed {
        // Relaxed: read only by the cool-down check, a heuristic.
        self.last_shed.store(now.max(1), Ordering::Relaxed);
        self.shed.incr();
        let shed = Shed { in_flight, capacity };
        self.hook.emit(|| AdmissionEvent::Shed(shed));
        shed
    }

    /// Records a completion admitted at `start` and leaves the in-flight count.
    #[inline]
    fn complete(&self, start: u64) {
        let now = self.clock.now();
        self.window.record(self.window.bucket(now), now.saturating_sub(start));
        self.leave();
    }

    #[inline]
    fn leave(&self) {
        // Relaxed: see `admit`.
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The capacity for the bucket of `now`, from the cache or computed once per bucket.
    fn capacity_at(&self, now: u64) -> Option<usize> {
        let bucket = self.window.bucket(now);
        // Relaxed: the word is self-contained (tag and value); two threads computing it for
        // the same bucket store the same figures, up to a completion that raced the scan.
        let cached = match Cached::unpack(self.cached.load(Ordering::Relaxed), bucket) {
            Some(cached) => cached,
            None => {
                let mut capacity = self
                    .window
                    .estimate(bucket)
                    .map(|e| e.capacity(self.window.bucket_nanos(), self.settings.headroom));
                if bucket % self.window.buckets() as u64 == self.drain_phase {
                    // The drain bucket, once per window (module docs).
                    capacity = capacity.map(|c| c / 2);
                }
                self.cached.store(Cached::pack(bucket, capacity), Ordering::Relaxed);
                capacity
            }
        };
        cached.map(|c| usize::try_from(c).unwrap_or(usize::MAX))
    }

    /// Whether the rule may shed now: always without a CPU gate; with one, while CPU usage
    /// is at or over the threshold or within the cool-down of the last shed.
    fn gate_open(&self, now: u64) -> bool {
        let Some(gate) = &self.cpu else { return true };
        if gate.source.usage() >= gate.threshold {
            return true;
        }
        let last = self.last_shed.load(Ordering::Relaxed);
        last != 0 && now.saturating_sub(last) < self.cool_down
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
