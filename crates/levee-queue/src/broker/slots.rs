//! An arena of in-flight deliveries addressed by `(slot, token)`.
//!
//! A slot is reused once freed; every delivery gets a fresh token, so a stale handle (a
//! delivery whose lease expired, a receipt settled twice) never reaches the slot's next
//! occupant. A freed slot remembers how its last occupant ended, so the common stale cases
//! get a precise error.

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

#[derive(Debug)]
struct Entry<V> {
    token: u64,
    value: Option<V>,
    ended: Ended,
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
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, token: u64, value: V) -> u32 {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            let e = &mut self.entries[slot as usize];
            e.token = token;
            e.value = Some(value);
            slot
        } else {
            self.entries.push(Entry { token, value: Some(value), ended: Ended::Settled });
            // More than u32::MAX deliveries in flight at once cannot fit in memory anyway.
            (self.entries.len() - 1) as u32
        }
    }

    fn check(&self, slot: u32, token: u64) -> Result<(), Stale> {
        match self.entries.get(slot as usize) {
            Some(e) if e.token == token && e.value.is_some() => Ok(()),
            Some(e) if e.token == token => Err(Stale::Ended(e.ended)),
            _ => Err(Stale::Unknown),
        }
    }

    pub(crate) fn get(&self, slot: u32, token: u64) -> Result<&V, Stale> {
        self.check(slot, token)?;
        Ok(self.entries[slot as usize].value.as_ref().expect("checked occupied"))
    }

    pub(crate) fn get_mut(&mut self, slot: u32, token: u64) -> Result<&mut V, Stale> {
        self.check(slot, token)?;
        Ok(self.entries[slot as usize].value.as_mut().expect("checked occupied"))
    }

    pub(crate) fn remove(&mut self, slot: u32, token: u64, ended: Ended) -> Result<V, Stale> {
        self.check(slot, token)?;
        let e = &mut self.entries[slot as usize];
        e.ended = ended;
        self.free.push(slot);
        self.len -= 1;
        Ok(e.value.take().expect("checked occupied"))
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
        assert_eq!(s.remove(a, 1, Ended::Expired), Ok("a"));
        assert_eq!(s.get(a, 1), Err(Stale::Ended(Ended::Expired)));
        let b = s.insert(2, "b");
        assert_eq!(a, b, "slot reused");
        assert_eq!(s.remove(b, 1, Ended::Settled), Err(Stale::Unknown));
        assert_eq!(s.get_mut(b, 2).map(|v| *v), Ok("b"));
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(99, 1), Err(Stale::Unknown));
    }
}
