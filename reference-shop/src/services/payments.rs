//! Payments: charges orders that have a card through the breaker + timeout + retry pipeline
//! ([`PaymentGuard`]) against the payment provider, and announces the outcome; refunds
//! charges of orders cancelled first.

use std::sync::Arc;

use super::Infra;
use crate::bus::EventBus;
use crate::clock::ShopClock;
use crate::domain::ShopEvent;
use crate::guard::{BreakerStatus, PaymentGuard, PipelineStatus};
use crate::metrics::{OutcomeLabel, ShopCounters};
use crate::provider::{PaymentProvider, ProviderError, ProviderStats};
use crate::store::Store;

/// The payment service.
#[derive(Debug)]
pub struct Payments {
    store: Arc<Store>,
    bus: EventBus,
    clock: ShopClock,
    counters: ShopCounters,
    guard: PaymentGuard,
    provider: Arc<PaymentProvider>,
}

impl Payments {
    /// Payments over `infra`, calling `provider` through `guard`.
    #[must_use]
    pub fn new(infra: &Infra, guard: PaymentGuard, provider: Arc<PaymentProvider>) -> Self {
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
        let error = match result {
            Ok(Ok(charge_id)) => {
                self.outcome("succeeded");
                let event = ShopEvent::PaymentSucceeded { order_id, charge_id };
                return self.bus.announce(event, self.clock.now_ms()).await;
            }
            Ok(Err(ProviderError::Declined(reason))) => {
                self.outcome("declined");
                let event = ShopEvent::PaymentFailed { order_id, reason };
                return self.bus.announce(event, self.clock.now_ms()).await;
            }
            // No answer: the last fault, a timeout, or the open breaker (with its
            // retry-after). The event is redelivered later.
            Ok(Err(fault)) => fault.to_string(),
            Err(e) => e.to_string(),
        };
        self.outcome("retry");
        let _ = self.store.set_payment_error(order_id, &error).await;
        Err(error)
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

    /// Charges the provider made for `order_id` (0 or 1: it never charges an order twice).
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

    /// The provider's counters now.
    #[must_use]
    pub fn provider_stats(&self) -> ProviderStats {
        self.provider.stats()
    }
}
