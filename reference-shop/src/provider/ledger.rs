//! Where the provider keeps its charges: in memory (one process), or in a directory that
//! replicas of the provider process share (`provider.ledger_dir`), so that they are one
//! provider, as a real provider's replicas share its database.
//!
//! On disk each charge is a file `<order id>.charge` holding the charge id. A replica writes
//! its charge id to a temporary file of its own, then hard-links it to the charge's name:
//! `link` never replaces, so of two replicas charging one order at once exactly one link
//! succeeds and the other reads the winner's id: an order is charged once across replicas,
//! and a repeat returns the first charge. The file is complete before it has its name, so a
//! reader never sees half an id. A refund is the file `<order id>.refund`, created only if
//! missing. A replica killed at any point leaves at most a stray temporary file; the page
//! cache keeps what it wrote (this simulates a provider; it makes no promise across a power
//! loss).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use parking_lot::Mutex;

/// The provider's charges.
#[derive(Debug)]
pub(crate) enum Ledger {
    /// In this process: order id to (charge id, refunded).
    Memory(Mutex<HashMap<i64, (String, bool)>>),
    /// In a directory shared by the replicas.
    Dir(PathBuf),
}

impl Ledger {
    /// An empty ledger in memory.
    pub(crate) fn memory() -> Self {
        Self::Memory(Mutex::new(HashMap::new()))
    }

    /// The ledger in `dir`, created if missing.
    pub(crate) fn dir(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self::Dir(dir))
    }

    /// Records `fresh` as the charge of `order_id` unless it has one; returns the order's
    /// charge id and whether it is `fresh` (a new charge).
    pub(crate) async fn charge(&self, order_id: i64, fresh: String) -> io::Result<(String, bool)> {
        match self {
            Self::Memory(charges) => {
                let mut charges = charges.lock();
                if let Some((id, _)) = charges.get(&order_id) {
                    return Ok((id.clone(), false));
                }
                charges.insert(order_id, (fresh.clone(), false));
                Ok((fresh, true))
            }
            Self::Dir(dir) => {
                let path = dir.join(format!("{order_id}.charge"));
                let tmp = dir.join(format!(
                    ".{order_id}.{}.{:x}.tmp",
                    std::process::id(),
                    levee::core::random::next_u64()
                ));
                tokio::fs::write(&tmp, fresh.as_bytes()).await?;
                let linked = tokio::fs::hard_link(&tmp, &path).await;
                let _ = tokio::fs::remove_file(&tmp).await;
                match linked {
                    Ok(()) => Ok((fresh, true)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        Ok((tokio::fs::read_to_string(&path).await?, false))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Marks the charge of `order_id` refunded; true when it had a charge not refunded yet.
    pub(crate) async fn refund(&self, order_id: i64) -> io::Result<bool> {
        match self {
            Self::Memory(charges) => Ok(charges
                .lock()
                .get_mut(&order_id)
                .is_some_and(|(_, refunded)| !std::mem::replace(refunded, true))),
            Self::Dir(dir) => {
                if !tokio::fs::try_exists(dir.join(format!("{order_id}.charge"))).await? {
                    return Ok(false);
                }
                let created = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dir.join(format!("{order_id}.refund")))
                    .await;
                match created {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Whether `order_id` was charged.
    pub(crate) fn contains(&self, order_id: i64) -> bool {
        match self {
            Self::Memory(charges) => charges.lock().contains_key(&order_id),
            Self::Dir(dir) => dir.join(format!("{order_id}.charge")).exists(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(ledger: &Ledger) {
        let (first, new) = ledger.charge(7, "ch_a".into()).await.unwrap();
        assert_eq!((first.as_str(), new), ("ch_a", true));
        let (again, new) = ledger.charge(7, "ch_b".into()).await.unwrap();
        assert_eq!((again.as_str(), new), ("ch_a", false), "a repeat returns the first charge");
        assert!(ledger.contains(7));
        assert!(!ledger.contains(8));
        assert!(!ledger.refund(8).await.unwrap(), "nothing to refund without a charge");
        assert!(ledger.refund(7).await.unwrap());
        assert!(!ledger.refund(7).await.unwrap(), "a refund is made once");
    }

    #[tokio::test]
    async fn a_ledger_charges_an_order_once_and_refunds_it_once() {
        check(&Ledger::memory()).await;
        let dir = tempfile::tempdir().unwrap();
        check(&Ledger::dir(dir.path().join("charges")).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_sharing_a_directory_charge_each_order_once() {
        let dir = tempfile::tempdir().unwrap();
        // Two replicas (two ledgers on one directory) race for the same orders.
        let a = std::sync::Arc::new(Ledger::dir(dir.path().to_path_buf()).unwrap());
        let b = std::sync::Arc::new(Ledger::dir(dir.path().to_path_buf()).unwrap());
        let race = |ledger: std::sync::Arc<Ledger>, name: &'static str| {
            tokio::spawn(async move {
                let mut out = Vec::new();
                for order in 0..50 {
                    out.push(ledger.charge(order, format!("ch_{name}_{order}")).await.unwrap());
                }
                out
            })
        };
        let (ra, rb) = tokio::join!(race(a, "a"), race(b, "b"));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        for (order, ((id_a, new_a), (id_b, new_b))) in ra.iter().zip(&rb).enumerate() {
            assert_eq!(id_a, id_b, "order {order}: one charge id for both replicas");
            assert!(new_a ^ new_b, "order {order}: exactly one replica made the charge");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 50, "one file per charge, no temporary file left: {names:?}");
    }
}
