//! The simulated payment provider: a remote service the shop does not control, whose latency
//! and failure rate the admin API changes at run time.
//!
//! It is idempotent on the order id, as real providers are on an idempotency key: charging an
//! order twice returns the first charge. Half of the injected failures happen after the charge
//! was made (the answer is "lost"), so the shop's retries must rely on that idempotency.
//!
//! The shop calls it in one of two ways ([`Provider`]): in this process (the default), or
//! over HTTP through levee's service client ([`RemoteProvider`], `provider.urls`), where
//! it runs as its own process (`reference-shop serve --service provider`, [`server`]) and
//! its faults are real network faults. Replicas of the provider process that share a
//! ledger directory are one provider (`ledger.rs`).

mod ledger;
mod remote;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::faults::Faults;
use ledger::Ledger;
pub use remote::{ProviderEndpointStatus, RemoteProvider};
pub use server::{ProviderStartError, RunningProvider};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderStats {
    /// Calls received.
    pub calls: u64,
    /// Distinct charges made (by this process: a repeat of another replica's charge is a
    /// repeat).
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

/// The simulated provider.
#[derive(Debug)]
pub struct PaymentProvider {
    faults: Arc<Faults>,
    ledger: Ledger,
    calls: AtomicU64,
    charges: AtomicU64,
    repeats: AtomicU64,
    failures: AtomicU64,
    declines: AtomicU64,
    refunds: AtomicU64,
}

impl PaymentProvider {
    /// A provider whose behaviour follows `faults`, its charges in memory.
    #[must_use]
    pub fn new(faults: Arc<Faults>) -> Self {
        Self::with_ledger(faults, Ledger::memory())
    }

    /// A provider whose charges live in `dir` (created if missing), shared with the other
    /// replicas given the same directory: an order one of them charged is a repeat for all.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn on_disk(faults: Arc<Faults>, dir: PathBuf) -> std::io::Result<Self> {
        Ok(Self::with_ledger(faults, Ledger::dir(dir)?))
    }

    fn with_ledger(faults: Arc<Faults>, ledger: Ledger) -> Self {
        Self {
            faults,
            ledger,
            calls: AtomicU64::new(0),
            charges: AtomicU64::new(0),
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
    /// [`ProviderError::Unavailable`] as injected (or when the ledger on disk fails),
    /// [`ProviderError::Declined`] for [`DECLINED_CARD`].
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
        let fresh =
            format!("ch_{order_id}_{:08x}_{amount_cents}", levee::core::random::next_u64() as u32);
        let (id, new) = self.ledger.charge(order_id, fresh).await.map_err(|e| {
            tracing::error!(order_id, error = %e, "the provider's ledger failed");
            ProviderError::Unavailable
        })?;
        let counter = if new { &self.charges } else { &self.repeats };
        counter.fetch_add(1, Ordering::Relaxed);
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
        let refunded = self.ledger.refund(order_id).await.map_err(|e| {
            tracing::error!(order_id, error = %e, "the provider's ledger failed");
            ProviderError::Unavailable
        })?;
        if refunded {
            self.refunds.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Charges made for `order_id` (0 or 1: the provider never charges an order twice).
    #[must_use]
    pub fn charges_for(&self, order_id: i64) -> u64 {
        u64::from(self.ledger.contains(order_id))
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> ProviderStats {
        ProviderStats {
            calls: self.calls.load(Ordering::Relaxed),
            charges: self.charges.load(Ordering::Relaxed),
            repeats: self.repeats.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            declines: self.declines.load(Ordering::Relaxed),
            refunds: self.refunds.load(Ordering::Relaxed),
        }
    }
}

/// The provider the payment service calls: in this process, or remote replicas.
#[derive(Debug)]
pub enum Provider {
    /// The simulated provider in this process (the default).
    Local(Arc<PaymentProvider>),
    /// Provider processes over HTTP (`provider.urls`).
    Remote(RemoteProvider),
}

impl Provider {
    /// Charges `amount_cents` to `card` for `order_id`, once per order.
    ///
    /// # Errors
    /// As [`PaymentProvider::charge`]; remote, any call that got no charge and no decline
    /// back is [`ProviderError::Unavailable`].
    pub async fn charge(
        &self,
        order_id: i64,
        amount_cents: i64,
        card: &str,
    ) -> Result<String, ProviderError> {
        match self {
            Self::Local(p) => p.charge(order_id, amount_cents, card).await,
            Self::Remote(p) => p.charge(order_id, amount_cents, card).await,
        }
    }

    /// Refunds the charge of `order_id`.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] when the provider did not confirm it.
    pub async fn refund(&self, order_id: i64) -> Result<(), ProviderError> {
        match self {
            Self::Local(p) => p.refund(order_id).await,
            Self::Remote(p) => p.refund(order_id).await,
        }
    }

    /// Charges the in-process provider made for `order_id` (0 or 1); always 0 for a remote
    /// one (its `/stats` and ledger know).
    #[must_use]
    pub fn charges_for(&self, order_id: i64) -> u64 {
        match self {
            Self::Local(p) => p.charges_for(order_id),
            Self::Remote(_) => 0,
        }
    }

    /// The in-process provider's counters; all zero for a remote one (each replica's
    /// `/stats` has them; [`endpoints`](Self::endpoints) has the shop's view).
    #[must_use]
    pub fn stats(&self) -> ProviderStats {
        match self {
            Self::Local(p) => p.stats(),
            Self::Remote(_) => ProviderStats::default(),
        }
    }

    /// Each remote replica as the shop's client sees it; `None` in-process.
    #[must_use]
    pub fn endpoints(&self) -> Option<Vec<ProviderEndpointStatus>> {
        match self {
            Self::Local(_) => None,
            Self::Remote(p) => Some(p.endpoints()),
        }
    }
}
