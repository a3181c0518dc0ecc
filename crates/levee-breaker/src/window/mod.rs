//! Sliding windows: the closed state's memory of recent calls.
//!
//! Both kinds are lock-free and keep their aggregates (calls, failures, slow calls) up to date
//! on every record (subtract-on-evict), so judging the window costs the same whatever its size.
//! Both belong to one generation of the breaker at a time: every counter carries the generation
//! that wrote it, so a new closed generation starts from an empty window without anyone
//! clearing it, and a late writer from an old generation can neither add to the new window nor
//! corrupt its totals. See `count.rs` and `time.rs` for how each one works.

mod count;
mod stripe;
mod tagged;
mod time;

pub(crate) use count::CountWindow;
pub(crate) use time::TimeWindow;

use crate::settings::SlidingWindow;

/// One recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

/// What a window holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failed: u64,
    pub(crate) slow: u64,
}

/// The window a breaker was configured with.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow, origin: u64) -> Self {
        match kind {
            SlidingWindow::Count { size } => Self::Count(CountWindow::new(size)),
            SlidingWindow::Time { length, buckets } => {
                Self::Time(TimeWindow::new(levee_core::nanos(length), buckets, origin))
            }
        }
    }

    /// Whether recording needs the current time.
    #[inline]
    pub(crate) const fn needs_time(&self) -> bool {
        matches!(self, Self::Time(_))
    }

    /// Records a call of generation `generation` made at `now` (ignored by a count window).
    /// Returns the window's tally when the record may have changed the verdict, `None` when it
    /// cannot have or the generation is stale. A count window changes only by records, so only
    /// a record that added a failure or slow call, or reached `min_calls`, can change it; a
    /// time window also loses calls as time passes, so every record is judged.
    #[inline]
    pub(crate) fn record(
        &self,
        generation: u32,
        sample: Sample,
        now: u64,
        min_calls: u64,
    ) -> Option<Tally> {
        match self {
            Self::Count(w) => w.record(generation, sample, min_calls),
            Self::Time(w) => w.record(generation, sample, now),
        }
    }

    /// Called by the winner of every transition, with the generation it moved to: keeps the
    /// window's generation tags within reach of the modular comparison (see `state.rs`).
    pub(crate) fn refresh(&self, generation: u32) {
        match self {
            Self::Count(w) => w.refresh(generation),
            Self::Time(w) => w.refresh(generation),
        }
    }

    /// The calls generation `generation` holds at `now`.
    pub(crate) fn tally(&self, generation: u32, now: u64) -> Tally {
        match self {
            Self::Count(w) => w.tally(generation),
            Self::Time(w) => w.tally(generation, now),
        }
    }
}
