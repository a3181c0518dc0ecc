//! The permits: RAII guards that give their permit back when dropped, borrowed
//! ([`Permit`]) or owning a handle to the bulkhead ([`OwnedPermit`]). Apart because both
//! acquire paths hand them out.

use std::fmt;
use std::sync::Arc;

use levee_core::{Clock, FastClock};

use super::Bulkhead;

/// A bulkhead permit; released when dropped.
///
/// ```
/// use levee_limit::Bulkhead;
///
/// let bulkhead = Bulkhead::new(2)?;
/// {
///     let _permit = bulkhead.try_acquire()?;
///     assert_eq!(bulkhead.available(), 1);
/// } // dropped: the slot is free again
/// assert_eq!(bulkhead.available(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit<'a, C: Clock = FastClock> {
    pub(super) bulkhead: &'a Bulkhead<C>,
}

impl<C: Clock> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for Permit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

/// A bulkhead permit holding its own handle to the bulkhead; released when dropped.
///
/// ```
/// use std::sync::Arc;
/// use levee_limit::Bulkhead;
///
/// let bulkhead = Arc::new(Bulkhead::new(1)?);
/// let permit = bulkhead.try_acquire_owned()?;
/// let task = std::thread::spawn(move || {
///     let _permit = permit; // held by the thread, released when it ends
/// });
/// task.join().unwrap();
/// assert_eq!(bulkhead.stats().in_flight, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedPermit<C: Clock = FastClock> {
    pub(super) bulkhead: Arc<Bulkhead<C>>,
}

impl<C: Clock> OwnedPermit<C> {
    /// The bulkhead this permit belongs to.
    #[must_use]
    pub fn bulkhead(&self) -> &Arc<Bulkhead<C>> {
        &self.bulkhead
    }
}

impl<C: Clock> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit").finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}
