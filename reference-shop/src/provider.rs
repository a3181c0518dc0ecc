//! The simulated payment provider: a remote service the shop does not control, whose latency
//! and failure rate the admin API changes at run time.
//!
//! It is idempotent on the order id, as real providers are on an idempotency key: charging an
//! order twice returns the first charge. Half of the injected failures happen after the charge
//! was made (the answer is "lost"), so the shop's retries must rely on that idempotency.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::faults::Faults;

/// The card token that is always declined.
pub const DECLINED_CARD: &str = "tok_declined";

/// Why a provider call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider is down or overloaded: try again later.
    #[error("payment provider unavailable")]
    Unavailable,
    /// The provider refused the charge for good.
    #[error("declined: {0}")]
    Declined(String),
}

impl ProviderError {
    /// Whether this is a provider fault (retry, count against the breaker) rather than an
    /// answer.
    #[must_use]
    pub fn is_fault(&self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

/// Counters of the provider.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct ProviderStats {
    /// Calls received.
    pub calls: u64,
    /// Distinct charges made.
    pub charges: u64,
    /// Calls answered with an earlier charge (idempotent repeats).
    pub repeats: u64,
    /// Injected failures.
    pub failures: u64,
    /// Declines.
    pub declines: u64,
    /// Refunds.
    pub refunds: u64,
}

#[derive(Debug, Clone)]
struct Charge {
    id: String,
    refunded: bool,
}

/// The simulated provider.
#[derive(Debug)]
pub struct PaymentProvider {
    faults: Arc<Faults>,
    charges: Mutex<HashMap<i64, Charge>>,
    calls: AtomicU64,
    repeats: AtomicU64,
    failures: AtomicU64,
    declines: AtomicU64,
    refunds: AtomicU64,
}

impl PaymentProvider {
    /// A provider whose behaviour follows `faults`.
    #[must_use]
    pub fn new(faults: Arc<Faults>) -> Self {
        Self {
            faults,
            charges: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
            repeats: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            declines: AtomicU64::new(0),
            refunds: AtomicU64::new(0),
        }
    }

    /// Charges `amount_cents` to `card` for `order_id`, once: a repeat returns the same
    /// charge id.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] as injected, [`ProviderError::Declined`] for
    /// [`DECLINED_CARD`].
    pub async fn charge(
        &self,
        order_id: i64,
        amount_cents: i64,
        card: &str,
    ) -> Result<String, ProviderError> {
        self.faults.provider_delay().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let fail = levee::core::random::next_f64() < self.faults.get().provider_failure_rate;
        if fail && levee::core::random::below(2) == 0 {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(ProviderError::Unavailable);
        }
        if card == DECLINED_CARD {
            self.declines.fetch_add(1, Ordering::Relaxed);
            return Err(ProviderError::Declined("card declined".to_owned()));
        }
        let id = {
            let mut charges = self.charges.lock();
            if let Some(c) = charges.get(&order_id) {
                self.repeats.fetch_add(1, Ordering::Relaxed);
                c.id.clone()
            } else {
                let id = format!(
                    "ch_{order_id}_{:08x}_{amount_cents}",
                    levee::core::random::next_u64() as u32
                );
                charges.insert(order_id, Charge { id: id.clone(), refunded: false });
                id
            }
        };
        if fail {
            // Charged, but the answer is lost on the way back.
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(ProviderError::Unavailable);
        }
        Ok(id)
    }

    /// Refunds the charge of `order_id` (idempotent; nothing to do without a charge).
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] as injected.
    pub async fn refund(&self, order_id: i64) -> Result<(), ProviderError> {
        self.faults.provider_delay().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        if levee::core::random::next_f64() < self.faults.get().provider_failure_rate {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(ProviderError::Unavailable);
        }
        if let Some(c) = self.charges.lock().get_mut(&order_id)
            && !c.refunded
        {
            c.refunded = true;
            self.refunds.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Charges made for `order_id` (0 or 1: the provider never charges an order twice).
    #[must_use]
    pub fn charges_for(&self, order_id: i64) -> u64 {
        u64::from(self.charges.lock().contains_key(&order_id))
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> ProviderStats {
        ProviderStats {
            calls: self.calls.load(Ordering::Relaxed),
            charges: self.charges.lock().len() as u64,
            repeats: self.repeats.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            declines: self.declines.load(Ordering::Relaxed),
            refunds: self.refunds.load(Ordering::Relaxed),
        }
    }
}
