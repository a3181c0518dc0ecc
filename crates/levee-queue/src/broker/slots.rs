//! An arena of in-flight deliveries addressed by `(slot, token)`.
//!
//! Every delivery gets a fresh token, so a stale handle (a delivery whose lease expired, a
//! receipt settled twice) never reaches a slot's next occupant.
//!
//! A slot belongs to its delivery *handle* until the handle is done with it, not merely until
//! the delivery is settled: when a lease expires, or a receipt settles the delivery, the
//! occupant leaves but the slot stays reserved, remembering how it ended, because the handle
//! may still come back with a verb. The handle gives the slot up with its own verb or when it
//! is dropped (a [`Slots::remove`] by [`Holder::Handle`]); only then is the slot reused. So a
//! handle's verb always finds its own slot and learns exactly how its delivery ended, however
//! many deliveries came and went meanwhile; the memory this costs is one entry per handle the
//! application still holds. A freed slot keeps answering for its last token until it is
//! reused; after that (only a [`Receipt`](super::Receipt) can outlive its handle) the answer
//! is [`Stale::Unknown`].

/// How a slot's occupant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Acked, nacked, terminated or dropped.
    Settled,
    /// Its lease ran out.
    Expired,
}

/// Why a `(slot, token)` pair no longer names an occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stale {
    /// It left this way.
    Ended(Ended),
    /// The slot has been reused since; how it left is forgotten.
    Unknown,
}

/// Who gives up the slot when its occupant leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The delivery handle itself: it will not come back, so the slot is free at once.
    Handle,
    /// Someone else (a receipt, a lease expiry): the handle may still come back, so the slot
    /// stays reserved until the handle's own `remove`.
    Other,
}

#[derive(Debug)]
enum State<V> {
    Occupied(V),
    /// The occupant left; its handle still holds the slot.
    Reserved(Ended),
    /// Free for reuse; still answers for its last token.
    Free(Ended),
}

#[derive(Debug)]
struct Entry<V> {
    token: u64,
    state: State<V>,
}

#[derive(Debug)]
pub(crate) struct Slots<V> {
    entries: Vec<Entry<V>>,
    free: Vec<u32>,
    len: usize,
}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Self { entries: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<V> Slots<V> {
    /// Occupied slots.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots in use: occupied, or reserved for a handle that has not come back yet.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub(crate) fn insert(&mut self, token: u64, value: V) -> u32 {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            let e = &mut self.entries[slot as usize];
            e.token = token;
            e.state = State::Occupied(value);
            slot
        } else {
            self.entries.push(Entry { token, state: State::Occupied(value) });
            // More than u32::MAX deliveries in flight at once cannot fit in memory anyway.
            (self.entries.len() - 1) as u32
        }
    }

    fn entry(&self, slot: u32, token: u64) -> Result<&Entry<V>, Stale> {
        match self.entries.get(slot as usize) {
            Some(e) if e.token == token => Ok(e),
            _ => Err(Stale::Unknown),
        }
    }

    pub(crate) fn get(&self, slot: u32, token: u64) -> Result<&V, Stale> {
        match &self.entry(slot, token)?.state {
            State::Occupied(v) => Ok(v),
            State::Reserved(ended) | State::Free(ended) => Err(Stale::Ended(*ended)),
        }
    }

    pub(crate) fn get_mut(&mut self, slot: u32, token: u64) -> Result<&mut V, Stale> {
        self.entry(slot, token)?;
        match &mut self.entries[slot as usize].state {
            State::Occupied(v) => Ok(v),
            State::Reserved(ended) | State::Free(ended) => Err(Stale::Ended(*ended)),
        }
    }

    /// Takes the occupant out, noting that it `ended` this way. When the `holder` is the
    /// handle itself the slot is freed, whether the occupant was still there or had already
    /// left (the handle is done with it either way); otherwise it stays reserved for the handle.
    pub(crate) fn remove(
        &mut self,
        slot: u32,
        token: u64,
        ended: Ended,
        holder: Holder,
    ) -> Result<V, Stale> {
        let e = match self.entries.get_mut(slot as usize) {
            Some(e) if e.token == token => e,
            _ => return Err(Stale::Unknown),
        };
        let next = match holder {
            Holder::Handle => State::Free(ended),
            Holder::Other => State::Reserved(ended),
        };
        match std::mem::replace(&mut e.state, next) {
            State::Occupied(v) => {
                self.len -= 1;
                if holder == Holder::Handle {
                    self.free.push(slot);
                }
                Ok(v)
            }
            // The handle is back after its occupant left: it gives the slot up now.
            State::Reserved(ended) if holder == Holder::Handle => {
                e.state = State::Free(ended);
                self.free.push(slot);
                Err(Stale::Ended(ended))
            }
            left @ (State::Reserved(ended) | State::Free(ended)) => {
                e.state = left;
                Err(Stale::Ended(ended))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_tokens_never_reach_a_new_occupant() {
        let mut s = Slots::default();
        let a = s.insert(1, "a");
        assert_eq!(s.get(a, 1), Ok(&"a"));
        assert_eq!(s.remove(a, 1, Ended::Settled, Holder::Handle), Ok("a"));
        assert_eq!(s.get(a, 1), Err(Stale::Ended(Ended::Settled)));
        let b = s.insert(2, "b");
        assert_eq!(a, b, "slot reused");
        assert_eq!(s.remove(b, 1, Ended::Settled, Holder::Handle), Err(Stale::Unknown));
        assert_eq!(s.get_mut(b, 2).map(|v| *v), Ok("b"));
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(99, 1), Err(Stale::Unknown));
    }

    #[test]
    fn a_slot_left_by_someone_else_waits_for_its_handle() {
        let mut s = Slots::default();
        let a = s.insert(1, "a");
        assert_eq!(s.remove(a, 1, Ended::Expired, Holder::Other), Ok("a"));
        assert_eq!((s.len(), s.in_use()), (0, 1));
        // Not reused while the handle may come back: it keeps learning how its delivery ended.
        let b = s.insert(2, "b");
        assert_ne!(a, b);
        assert_eq!(s.get(a, 1), Err(Stale::Ended(Ended::Expired)));
        assert_eq!(
            s.remove(a, 1, Ended::Settled, Holder::Other),
            Err(Stale::Ended(Ended::Expired))
        );
        assert_eq!(s.in_use(), 2, "still reserved");
        // The handle comes back: told how it ended, and the slot is free.
        assert_eq!(
            s.remove(a, 1, Ended::Settled, Holder::Handle),
            Err(Stale::Ended(Ended::Expired))
        );
        assert_eq!(s.in_use(), 1);
        assert_eq!(s.get(a, 1), Err(Stale::Ended(Ended::Expired)), "remembered until reuse");
        assert_eq!(s.insert(3, "c"), a);
        assert_eq!(s.get(a, 1), Err(Stale::Unknown));
    }
}
