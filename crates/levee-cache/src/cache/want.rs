//! How each kind of loading call (`get_with`, `get_optional_with`, `try_get_with`) reads a
//! stored slot and stores its own loader's result. Apart because lookups, claims and loads
//! are generic over it: one code path serves all three kinds of call.

use crate::ErasedError;
use crate::store::Slot;

/// How one kind of call reads a stored slot, and stores its own loader's result.
pub(crate) trait Want<V>: 'static {
    /// What the call returns.
    type Out: Send + 'static;
    /// The call's answer from this slot, or `None` if the slot is no answer for it (a
    /// remembered miss for a call that wants a value): then it loads.
    fn accept(slot: &Slot<V>) -> Option<Self::Out>;
    /// How the call's own loader result is stored and shared.
    fn to_slot(out: &Self::Out) -> Slot<V>;
}

/// `get_with`: a value.
pub(crate) struct WantValue;

impl<V: Clone + Send + 'static> Want<V> for WantValue {
    type Out = V;
    #[inline]
    fn accept(slot: &Slot<V>) -> Option<V> {
        match slot {
            Slot::Value(v) => Some(v.clone()),
            _ => None,
        }
    }
    fn to_slot(out: &V) -> Slot<V> {
        Slot::Value(out.clone())
    }
}

/// `get_optional_with`: a value or a (remembered) absence.
pub(crate) struct WantOption;

impl<V: Clone + Send + 'static> Want<V> for WantOption {
    type Out = Option<V>;
    fn accept(slot: &Slot<V>) -> Option<Option<V>> {
        match slot {
            Slot::Value(v) => Some(Some(v.clone())),
            Slot::Missing => Some(None),
            Slot::Failed(_) => None,
        }
    }
    fn to_slot(out: &Option<V>) -> Slot<V> {
        out.as_ref().map_or(Slot::Missing, |v| Slot::Value(v.clone()))
    }
}

/// `try_get_with`: a value or an error of type `E`.
pub(crate) struct WantResult<E>(std::marker::PhantomData<fn() -> E>);

impl<V: Clone + Send + 'static, E: Send + Sync + 'static> Want<V> for WantResult<E> {
    type Out = Result<V, std::sync::Arc<E>>;
    fn accept(slot: &Slot<V>) -> Option<Self::Out> {
        match slot {
            Slot::Value(v) => Some(Ok(v.clone())),
            Slot::Failed(e) => ErasedError::clone(e).downcast::<E>().ok().map(Err),
            Slot::Missing => None,
        }
    }
    fn to_slot(out: &Self::Out) -> Slot<V> {
        match out {
            Ok(v) => Slot::Value(v.clone()),
            Err(e) => Slot::Failed(std::sync::Arc::new(e.clone() as ErasedError)),
        }
    }
}
