//! Payments: charges orders that have a card through the breaker + timeout + retry pipeline
//! ([`PaymentGuard`]) against the payment provider, and announces the outcome; refunds
//! charges of orders cancelled first.

use std::sync::Arc;
use std::time::Duration;

use levee::prelude::PolicyError;

use super::Infra;
use crate::bus::EventBus;
use crate::clock::ShopClock;
use crate::domain::ShopEvent;
use crate::guard::{BreakerStatus, Guarded, PaymentGuard, PipelineStatus};
use crate::metrics::{OutcomeLabel, ShopCounters};
use crate::provider::{Provider, ProviderEndpointStatus, ProviderError, ProviderStats};
use crate::store::Store;

/// What a payment attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Charged: the provider's charge id.
    Paid(String),
    /// Declined for good, with the provider's reason.
    Declined(String),
    /// No answer (the last fault, a timeout, or the open breaker): the payment must be tried
    /// again later.
    Pending {
        /// Why there was no answer (also recorded as the order's `payment_error`).
        error: String,
        /// The open breaker's wait before it may let a call through, when it refused.
        retry_after: Option<Duration>,
    },
}

/// The payment service.
#[derive(Debug)]
pub struct Payments {
    store: Arc<Store>,
    bus: EventBus,
    clock: ShopClock,
    counters: ShopCounters,
    guard: PaymentGuard,
    provider: Provider,
}

impl Payments {
    /// Payments over `infra`, calling `provider` (in this process or remote) through `guard`.
    #[must_use]
    pub fn new(infra: &Infra, guard: PaymentGuard, provider: Provider) -> Self {
        Self {
            store: Arc::clone(&infra.store),
            bus: infra.bus.clone(),
            clock: infra.clock.clone(),
            counters: infra.counters.clone(),
            guard,
            provider,
        }
    }

    /// Handles an order event (subscription `payment` of topic `orders`): charges an order
    /// that was placed with a card or asked to be paid, and announces the outcome.
    ///
    /// # Errors
    /// No answer from the provider (the last fault, a timeout, or the open breaker), or a
    /// store failure: the event is redelivered later.
    pub async fn on_order_event(&self, event: ShopEvent) -> Result<(), String> {
        let (ShopEvent::OrderPlaced { order_id } | ShopEvent::PaymentRequested { order_id }) =
            event
        else {
            return Ok(());
        };
        let Some((card, amount)) = self.store.payable(order_id).await.map_err(|e| e.to_string())?
        else {
            return Ok(()); // paid, cancelled, or no card yet
        };
        let result = self
            .guard
            .call(|| self.provider.charge(order_id, amount, &card), ProviderError::is_fault)
            .await;
        match self.settle(order_id, result).await {
            Settlement::Pending { error, .. } => Err(error),
            Settlement::Paid(_) | Settlement::Declined(_) => Ok(()),
        }
    }

    /// Charges `amount` to `card` for `order_id` while a customer waits (the synchronous
    /// checkout): through the guard's waiting pipeline ([`PaymentGuard::call_waiting`], its
    /// deadlines `payment.checkout`, the shared retry budget and breaker), or bare with
    /// protections off. The outcome is announced as the queued path announces it; on
    /// [`Settlement::Pending`] the caller hands the payment to the queue. The provider is
    /// idempotent on the order id, so a payment the queue also makes charges once.
    pub async fn charge_waiting(&self, order_id: i64, amount: i64, card: &str) -> Settlement {
        let result = self
            .guard
            .call_waiting(|| self.provider.charge(order_id, amount, card), ProviderError::is_fault)
            .await;
        self.settle(order_id, result).await
    }

    /// Counts and announces a payment's outcome; records why there was none.
    async fn settle(&self, order_id: i64, result: Guarded<String, ProviderError>) -> Settlement {
        let (error, retry_after) = match result {
            Ok(Ok(charge_id)) => {
                let event = ShopEvent::PaymentSucceeded { order_id, charge_id: charge_id.clone() };
                match self.bus.announce(event, self.clock.now_ms()).await {
                    Ok(()) => {
                        self.outcome("succeeded");
                        return Settlement::Paid(charge_id);
                    }
                    // Charged but not recorded: pending, so the queue charges again (the
                    // provider answers an order's second charge with its first) and announces.
                    Err(e) => (format!("charged, but the outcome was not recorded: {e}"), None),
                }
            }
            Ok(Err(ProviderError::Declined(reason))) => {
                let event = ShopEvent::PaymentFailed { order_id, reason: reason.clone() };
                match self.bus.announce(event, self.clock.now_ms()).await {
                    Ok(()) => {
                        self.outcome("declined");
                        return Settlement::Declined(reason);
                    }
                    Err(e) => (format!("declined, but the outcome was not recorded: {e}"), None),
                }
            }
            // No answer: the last fault, a timeout, or the open breaker (with its
            // retry-after).
            Ok(Err(fault)) => (fault.to_string(), None),
            Err(e @ PolicyError::CircuitOpen { retry_after }) => (e.to_string(), retry_after),
            Err(e) => (e.to_string(), None),
        };
        self.outcome("retry");
        let _ = self.store.set_payment_error(order_id, &error).await;
        Settlement::Pending { error, retry_after }
    }

    /// Refunds the charge of `order_id` (cancelled before its payment arrived) and announces
    /// it.
    ///
    /// # Errors
    /// No answer from the provider: the caller's event is redelivered later.
    pub async fn refund(&self, order_id: i64, charge_id: String) -> Result<(), String> {
        self.guard
            .call(|| self.provider.refund(order_id), ProviderError::is_fault)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.bus.announce(ShopEvent::Refunded { order_id, charge_id }, self.clock.now_ms()).await
    }

    fn outcome(&self, outcome: &'static str) {
        self.counters.payments.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Charges the in-process provider made for `order_id` (0 or 1: it never charges an
    /// order twice); 0 with a remote provider.
    #[must_use]
    pub fn charges_for(&self, order_id: i64) -> u64 {
        self.provider.charges_for(order_id)
    }

    /// The payment breaker's settings now.
    #[must_use]
    pub fn breaker_settings(&self) -> levee::breaker::BreakerSettings {
        self.guard.breaker_settings()
    }

    /// Changes the payment breaker's settings; it keeps its state and window.
    ///
    /// # Errors
    /// The first invalid setting (or a different `window`); nothing changes.
    pub fn reconfigure_breaker(
        &self,
        settings: levee::breaker::BreakerSettings,
    ) -> Result<(), levee::core::ConfigError> {
        self.guard.reconfigure_breaker(settings)
    }

    /// The breaker now.
    #[must_use]
    pub fn breaker_status(&self) -> BreakerStatus {
        self.guard.breaker_status()
    }

    /// The payment pipeline's counters now.
    #[must_use]
    pub fn pipeline_status(&self) -> PipelineStatus {
        self.guard.pipeline_status()
    }

    /// The in-process provider's counters now (zero with a remote provider).
    #[must_use]
    pub fn provider_stats(&self) -> ProviderStats {
        self.provider.stats()
    }

    /// Each remote provider replica as the shop's client sees it; `None` in-process.
    #[must_use]
    pub fn provider_endpoints(&self) -> Option<Vec<ProviderEndpointStatus>> {
        self.provider.endpoints()
    }
}
