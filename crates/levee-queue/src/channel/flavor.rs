//! The two storage flavours behind one interface.

use levee_core::ConfigError;

use super::array::Array;
use super::list::List;

/// Why a push handed the value back.
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

/// Why a pop returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PopError {
    Empty,
    Closed,
}

/// Bounded ring or unbounded block list. The match on every call is one well-predicted branch.
pub(crate) enum Flavor<T> {
    Array(Array<T>),
    List(List<T>),
}

impl<T> Flavor<T> {
    pub(crate) fn new(capacity: Option<usize>) -> Result<Self, ConfigError> {
        Ok(match capacity {
            Some(cap) => Self::Array(Array::new(cap)?),
            None => Self::List(List::new()),
        })
    }

    #[inline]
    pub(crate) fn push(&self, value: T) -> Result<(), PushError<T>> {
        match self {
            Self::Array(a) => a.push(value),
            Self::List(l) => l.push(value),
        }
    }

    #[inline]
    pub(crate) fn pop(&self) -> Result<T, PopError> {
        match self {
            Self::Array(a) => a.pop(),
            Self::List(l) => l.pop(),
        }
    }

    pub(crate) fn close(&self) -> bool {
        match self {
            Self::Array(a) => a.close(),
            Self::List(l) => l.close(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Self::Array(a) => a.is_closed(),
            Self::List(l) => l.is_closed(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Array(a) => a.len(),
            Self::List(l) => l.len(),
        }
    }

    /// `(sent, taken)`: messages ever accepted and ever taken out (by receivers or eviction).
    pub(crate) fn counts(&self) -> (u64, u64) {
        match self {
            Self::Array(a) => a.counts(),
            Self::List(l) => l.counts(),
        }
    }

    /// Messages taken out so far: a cheaper [`counts`](Self::counts)`.1` for a sender that
    /// waits for room.
    #[inline]
    pub(crate) fn taken(&self) -> u64 {
        match self {
            Self::Array(a) => a.taken(),
            Self::List(l) => l.counts().1,
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        match self {
            Self::Array(a) => Some(a.capacity()),
            Self::List(_) => None,
        }
    }
}
