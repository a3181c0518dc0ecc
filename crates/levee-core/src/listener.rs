//! Event hooks: how a primitive tells the outside world that something notable happened.
//!
//! Each primitive defines its own event type (a breaker's state change, a limiter's
//! rejection, a cache load, a queue redelivery) and calls a [`Listener`] for it. Primitives hold
//! listeners in an [`EventHook`], whose unused form is a `None` check the branch predictor
//! always gets right, and which only builds the event when someone listens.
//!
//! Listeners run on the thread that caused the event, so they must be quick: count, log, or
//! hand the event to a channel.

use std::fmt;

// std `Arc` even under loom: listeners are not part of any modelled protocol, and loom's
// `Arc` cannot hold unsized values.
use std::sync::Arc;

/// Receives events of type `E` from a primitive.
///
/// Any `Fn(&E) + Send + Sync` closure is a listener.
///
/// ```
/// use levee_core::{EventHook, Listener};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// #[derive(Debug)]
/// enum DoorEvent { Opened, Closed }
///
/// let opened = Arc::new(AtomicUsize::new(0));
/// let counter = opened.clone();
/// let hook = EventHook::new(move |e: &DoorEvent| {
///     if matches!(e, DoorEvent::Opened) {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// hook.emit(|| DoorEvent::Opened);
/// hook.emit(|| DoorEvent::Closed);
/// assert_eq!(opened.load(Ordering::Relaxed), 1);
/// ```
pub trait Listener<E>: Send + Sync {
    /// Called once per event, on the thread that caused it.
    fn on_event(&self, event: &E);
}

impl<E, F> Listener<E> for F
where
    F: Fn(&E) + Send + Sync,
{
    #[inline]
    fn on_event(&self, event: &E) {
        self(event);
    }
}

/// A listener that ignores everything; zero-sized, so a primitive generic over its listener
/// pays nothing for it.
///
/// ```
/// use levee_core::{Listener, NoopListener};
/// NoopListener.on_event(&"ignored");
/// assert_eq!(std::mem::size_of::<NoopListener>(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoopListener;

impl<E> Listener<E> for NoopListener {
    #[inline(always)]
    fn on_event(&self, _event: &E) {}
}

/// Two listeners called in order: `(first, second)`.
impl<E, A: Listener<E>, B: Listener<E>> Listener<E> for (A, B) {
    #[inline]
    fn on_event(&self, event: &E) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}

/// Where a primitive keeps its listeners: none by default, any number added at build time.
///
/// Cloning shares the listeners.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_core::EventHook;
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let sink = log.clone();
/// let hook = EventHook::none().with(move |e: &u32| sink.lock().unwrap().push(*e));
/// assert_eq!(hook.len(), 1);
/// hook.emit(|| 42);
/// assert_eq!(*log.lock().unwrap(), [42]);
/// ```
pub struct EventHook<E> {
    listeners: Option<Arc<[Arc<dyn Listener<E>>]>>,
}

impl<E> Clone for EventHook<E> {
    fn clone(&self) -> Self {
        Self { listeners: self.listeners.clone() }
    }
}

impl<E> Default for EventHook<E> {
    fn default() -> Self {
        Self::none()
    }
}

impl<E> fmt::Debug for EventHook<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHook").field("listeners", &self.len()).finish()
    }
}

impl<E> EventHook<E> {
    /// A hook with no listener: emitting is a single branch.
    #[must_use]
    pub const fn none() -> Self {
        Self { listeners: None }
    }

    /// A hook with one listener.
    #[must_use]
    pub fn new(listener: impl Listener<E> + 'static) -> Self {
        Self::none().with(listener)
    }

    /// Adds a listener; they are called in the order added.
    #[must_use]
    pub fn with(self, listener: impl Listener<E> + 'static) -> Self {
        self.with_shared(Arc::new(listener))
    }

    /// Adds a listener that is shared with other hooks.
    #[must_use]
    pub fn with_shared(self, listener: Arc<dyn Listener<E>>) -> Self {
        let mut all: Vec<Arc<dyn Listener<E>>> =
            self.listeners.as_deref().map(<[_]>::to_vec).unwrap_or_default();
        all.push(listener);
        Self { listeners: Some(all.into()) }
    }

    /// True when no listener is registered (so events need not be built at all).
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.listeners.is_none()
    }

    /// Number of listeners.
    #[must_use]
    pub fn len(&self) -> usize {
        self.listeners.as_deref().map_or(0, <[_]>::len)
    }

    /// Builds the event with `make` and delivers it, only if someone listens.
    #[inline]
    pub fn emit(&self, make: impl FnOnce() -> E) {
        if let Some(listeners) = &self.listeners {
            let event = make();
            for l in listeners.iter() {
                l.on_event(&event);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn no_listener_never_builds_the_event() {
        let hook: EventHook<u32> = EventHook::none();
        hook.emit(|| panic!("event built without a listener"));
        assert!(hook.is_empty());
    }

    #[test]
    fn listeners_run_in_order_and_clones_share_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (seen.clone(), seen.clone());
        let hook = EventHook::new(move |e: &u32| a.lock().unwrap().push(("a", *e)))
            .with(move |e: &u32| b.lock().unwrap().push(("b", *e)));
        hook.clone().emit(|| 7);
        assert_eq!(*seen.lock().unwrap(), vec![("a", 7), ("b", 7)]);
        assert_eq!(hook.len(), 2);
    }

    #[test]
    fn pair_and_noop_listeners() {
        let count = Arc::new(Mutex::new(0));
        let c = count.clone();
        let pair = (NoopListener, move |_: &&str| *c.lock().unwrap() += 1);
        pair.on_event(&"x");
        assert_eq!(*count.lock().unwrap(), 1);
    }
}
