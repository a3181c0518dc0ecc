//! `Retained<T>`: a value that can be replaced through `&self` while readers hold references
//! to it, without a lock and without reference counts on the read path. The storage behind
//! live reconfiguration: a primitive keeps its settings (and the state tied to them) in one
//! `Retained`, readers take the current version with one acquire load, and a change
//! publishes a new version.
//!
//! **Protocol.** Versions are boxed nodes linked newest-first; `current` points at the
//! newest. A node is never freed or changed while the `Retained` is shared: only `Drop`
//! (through `&mut self`) frees the chain.
//!
//! ```text
//!   publisher (any number, lock-free)            reader
//!   P1: box the node {value, prev = current}     R1: load current          (Acquire)
//!   P2: CAS current: prev -> node  (Release)     R2: read the node's value and prev
//! ```
//!
//! If `R1` reads `P2`'s pointer, `P1`'s writes happen before `R2`. A failed `P2` re-reads
//! `current` and relinks (Acquire on failure, so the relinked `prev` is a published node).
//! Every reference handed out borrows `&self`, and nodes live until `Drop`, so no reference
//! outlives its node.
//!
//! **The price, and the limit.** Nothing is reclaimed before the `Retained` is dropped: each
//! publication keeps one node (the value plus a pointer) until then. That is the right trade
//! for settings an operator changes a few times a day (a reader pays one load, never a
//! reference count), and the wrong one for a value replaced thousands of times a second.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ptr;

use super::{AtomicPtr, Ordering};

struct Node<T> {
    value: T,
    /// The version this one replaced; null for the first.
    prev: *const Node<T>,
}

/// A value replaceable through `&self`; every version stays readable until the `Retained`
/// is dropped (module docs of `sync::retained`).
///
/// ```
/// use levee_core::sync::Retained;
///
/// let settings = Retained::new(10);
/// let before = settings.load();
/// settings.publish(20);
/// assert_eq!((*before, *settings.load()), (10, 20));
/// assert_eq!(settings.load().previous().map(|v| *v), Some(10));
/// ```
pub struct Retained<T> {
    current: AtomicPtr<Node<T>>,
    /// `Retained` owns the chain of boxed nodes.
    _owns: PhantomData<Box<Node<T>>>,
}

// SAFETY: a `Retained<T>` hands out `&T` to any thread (so `T: Sync`) and moves values in
// from any thread and drops them on the one that drops it (so `T: Send`); the raw pointers
// are owned boxes, as `PhantomData<Box<Node<T>>>` says.
unsafe impl<T: Send + Sync> Send for Retained<T> {}
// SAFETY: as above: shared access only ever reads published, never-freed nodes.
unsafe impl<T: Send + Sync> Sync for Retained<T> {}

/// One version of a [`Retained`] value, borrowed from it: derefs to the value.
///
/// ```
/// use levee_core::sync::Retained;
///
/// let limits = Retained::new("v1");
/// let old = limits.load(); // a version stays readable after newer ones are published
/// limits.publish("v2");
/// assert_eq!((*old, *limits.load()), ("v1", "v2"));
/// ```
pub struct Version<'a, T> {
    node: &'a Node<T>,
}

impl<T> Clone for Version<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Version<'_, T> {}

impl<'a, T> Version<'a, T> {
    /// The value of this version, for as long as the `Retained` is borrowed.
    #[inline]
    #[must_use]
    pub fn get(self) -> &'a T {
        &self.node.value
    }

    /// The version this one replaced, if any.
    #[must_use]
    pub fn previous(self) -> Option<Version<'a, T>> {
        // SAFETY: `prev` is null or a node published before this one; nodes are freed only
        // by `Drop`, which needs `&mut Retained`, while `'a` borrows it shared.
        unsafe { self.node.prev.as_ref() }.map(|node| Version { node })
    }

    /// Whether two versions are the same publication (not merely equal values).
    #[must_use]
    pub fn same(self, other: Version<'_, T>) -> bool {
        ptr::eq(self.node, other.node)
    }
}

impl<T> std::ops::Deref for Version<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.node.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Version<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.node.value.fmt(f)
    }
}

impl<T> Retained<T> {
    /// A `Retained` holding `value` as its first version.
    pub fn new(value: T) -> Self {
        let node = Box::into_raw(Box::new(Node { value, prev: ptr::null() }));
        Self { current: AtomicPtr::new(node), _owns: PhantomData }
    }

    /// The current version: one acquire load.
    #[inline]
    pub fn load(&self) -> Version<'_, T> {
        // Acquire: pairs with the Release CAS of `publish` (R1/P2 in the module docs).
        let node = self.current.load(Ordering::Acquire);
        // SAFETY: `current` always points at a published node (never null), freed only by
        // `Drop` (`&mut self`), while the returned version borrows `&self`.
        Version { node: unsafe { &*node } }
    }

    /// Makes `value` the current version and returns it. Readers that loaded an older
    /// version keep reading it; it stays valid until the `Retained` is dropped.
    pub fn publish(&self, value: T) -> Version<'_, T> {
        let node = Box::into_raw(Box::new(Node { value, prev: ptr::null() }));
        // Acquire: the node we link behind must be published to us too (module docs).
        let mut prev = self.current.load(Ordering::Acquire);
        loop {
            // SAFETY: `node` is ours alone until the CAS below publishes it.
            unsafe { (*node).prev = prev };
            // Release on success publishes the node (P2); Acquire on failure as above.
            match self.current.compare_exchange_weak(
                prev,
                node,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // SAFETY: published just now; freed only by `Drop` (see `load`).
                Ok(_) => return Version { node: unsafe { &*node } },
                Err(actual) => prev = actual,
            }
        }
    }

    /// How many versions have been published, the first included (walks the chain).
    pub fn versions(&self) -> usize {
        std::iter::successors(Some(self.load()), |v| v.previous()).count()
    }
}

impl<T> Drop for Retained<T> {
    fn drop(&mut self) {
        let mut node = self.current.load(Ordering::Acquire);
        while !node.is_null() {
            // SAFETY: `&mut self`: no reader or publisher is left; each node was made by
            // `Box::into_raw` and appears once in the chain.
            let boxed = unsafe { Box::from_raw(node) };
            node = boxed.prev.cast_mut();
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Retained<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Retained").field(&self.load()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn versions_stay_readable_and_are_freed_on_drop() {
        let shared = std::sync::Arc::new(());
        let retained = Retained::new(shared.clone());
        let first = retained.load();
        for _ in 0..3 {
            retained.publish(shared.clone());
        }
        assert!(
            first.same(retained.load().previous().unwrap().previous().unwrap().previous().unwrap())
        );
        assert_eq!(retained.versions(), 4);
        assert_eq!(std::sync::Arc::strong_count(&shared), 5);
        drop(retained);
        assert_eq!(std::sync::Arc::strong_count(&shared), 1, "every version dropped");
    }
}
