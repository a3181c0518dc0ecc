//! The admission permits: guards that, when dropped, record the request's latency and
//! completion in the window and leave the in-flight count. Borrowed ([`AdmissionPermit`]) or
//! owning a handle to the controller ([`OwnedAdmissionPermit`], for tasks and response
//! futures).

use std::fmt;
use std::sync::Arc;

use levee_core::{Clock, FastClock};

use super::AdmissionController;

/// An admitted request; its completion is recorded when dropped.
///
/// ```
/// use levee_limit::AdmissionController;
///
/// let controller = AdmissionController::new()?;
/// {
///     let _permit = controller.try_acquire()?; // refused with `Shed` when over capacity
///     // ... handle the request ...
/// } // dropped: its latency and completion feed the capacity estimate
/// assert_eq!(controller.stats().in_flight, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the request counts as complete as soon as the permit is dropped"]
pub struct AdmissionPermit<'a, C: Clock = FastClock> {
    pub(super) controller: &'a AdmissionController<C>,
    /// When the request was admitted; `None` once released.
    pub(super) start: Option<u64>,
}

impl<C: Clock> AdmissionPermit<'_, C> {
    /// Releases the permit without recording a completion: for requests whose latency says
    /// nothing about capacity (refused by validation, answered from a cache), so they neither
    /// lower the min latency nor raise the max throughput.
    pub fn ignore(mut self) {
        if self.start.take().is_some() {
            self.controller.leave();
        }
    }
}

impl<C: Clock> fmt::Debug for AdmissionPermit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionPermit").field("start", &self.start).finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for AdmissionPermit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if let Some(start) = self.start.take() {
            self.controller.complete(start);
        }
    }
}

/// An admitted request holding its own handle to the controller; its completion is recorded
/// when dropped.
///
/// ```
/// use std::sync::Arc;
/// use levee_limit::AdmissionController;
///
/// let controller = Arc::new(AdmissionController::new()?);
/// let permit = controller.try_acquire_owned().unwrap(); // 'static: can move into a task
/// assert_eq!(controller.in_flight(), 1);
/// drop(permit); // the request completed: its latency feeds the capacity estimate
/// assert_eq!((controller.in_flight(), controller.stats().admitted), (0, 1));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[must_use = "the request counts as complete as soon as the permit is dropped"]
pub struct OwnedAdmissionPermit<C: Clock = FastClock> {
    pub(super) controller: Arc<AdmissionController<C>>,
    pub(super) start: Option<u64>,
}

impl<C: Clock> OwnedAdmissionPermit<C> {
    /// As [`AdmissionPermit::ignore`].
    pub fn ignore(mut self) {
        if self.start.take().is_some() {
            self.controller.leave();
        }
    }

    /// The controller this permit belongs to.
    #[must_use]
    pub fn controller(&self) -> &Arc<AdmissionController<C>> {
        &self.controller
    }
}

impl<C: Clock> fmt::Debug for OwnedAdmissionPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedAdmissionPermit").field("start", &self.start).finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for OwnedAdmissionPermit<C> {
    #[inline]
    fn drop(&mut self) {
        if let Some(start) = self.start.take() {
            self.controller.complete(start);
        }
    }
}
