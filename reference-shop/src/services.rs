//! The services' logic: orders (try-confirm-cancel), payment, notification. They talk to each
//! other only through events on the bus, as they would across processes.

use std::sync::Arc;
use std::time::Duration;

use crate::app::Shop;
use crate::bus::HandlerResult;
use crate::domain::{Order, ShopEvent, TOPIC_ORDERS, TOPIC_PAYMENTS};
use crate::provider::ProviderError;
use crate::store::catalog::CartChange;
use crate::store::{NewOrder, PlaceOutcome, StoreError, Transition};
use crate::timeouts::Deadline;

/// Reasons recorded on cancelled orders.
pub mod reasons {
    /// The customer cancelled.
    pub const CUSTOMER: &str = "cancelled_by_customer";
    /// Not paid in time.
    pub const TIMEOUT: &str = "payment_timeout";
    /// The provider declined the payment.
    pub const DECLINED: &str = "payment_declined";
}

impl Shop {
    /// Subscribes the services to their topics.
    pub(crate) fn wire(self: &Arc<Self>) -> Result<(), levee::queue::broker::BrokerError> {
        let shop = Arc::clone(self);
        self.bus.subscribe(TOPIC_ORDERS, "payment", move |e| -> HandlerResult {
            let shop = Arc::clone(&shop);
            Box::pin(async move { shop.on_order_event_pay(e).await })
        })?;
        let shop = Arc::clone(self);
        self.bus.subscribe(TOPIC_PAYMENTS, "orders", move |e| -> HandlerResult {
            let shop = Arc::clone(&shop);
            Box::pin(async move { shop.on_payment_outcome(e).await })
        })?;
        for topic in [TOPIC_ORDERS, TOPIC_PAYMENTS] {
            let shop = Arc::clone(self);
            self.bus.subscribe(
                topic,
                &format!("notification-{topic}"),
                move |e| -> HandlerResult {
                    let shop = Arc::clone(&shop);
                    Box::pin(async move { shop.notify(e).await })
                },
            )?;
        }
        Ok(())
    }

    /// After a start: re-arms the timer of every unpaid order and re-drives the payment of
    /// those with a card (the provider is idempotent, so a payment already made is not
    /// repeated); re-arms the timer of every cart that holds stock. Returns how many unpaid
    /// orders there were.
    ///
    /// # Errors
    /// Database failures.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let pending = self.store.pending_orders().await?;
        for order in &pending {
            self.timers.schedule(Deadline::Order(order.id), order.expires_at_ms);
            if order.has_card {
                self.bus.publish(ShopEvent::PaymentRequested { order_id: order.id });
            }
        }
        for (customer_id, expires_at_ms) in self.store.pending_carts().await? {
            self.timers.schedule(Deadline::Cart(customer_id), expires_at_ms);
        }
        Ok(pending.len())
    }

    /// Sets a cart line, reserving or releasing the stock it holds, and moves the cart's
    /// timer to the end of its extended reservation.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_cart_item(
        &self,
        customer_id: i64,
        product_id: i64,
        quantity: i64,
    ) -> Result<CartChange, StoreError> {
        let expires_at_ms = self.clock.after_ms(self.config.cart_reservation());
        let change = self
            .store
            .set_cart_item(customer_id, product_id, quantity, self.clock.now_ms(), expires_at_ms)
            .await?;
        if let CartChange::Done { stock_changed, expires_at_ms } = change {
            if stock_changed {
                self.cache.invalidate(product_id);
            }
            match expires_at_ms {
                Some(at) => self.timers.schedule(Deadline::Cart(customer_id), at),
                None => self.timers.cancel(Deadline::Cart(customer_id)),
            }
        }
        Ok(change)
    }

    /// Empties a cart and releases its stock.
    ///
    /// # Errors
    /// Database failures.
    pub async fn clear_cart(&self, customer_id: i64) -> Result<(), StoreError> {
        for product in self.store.clear_cart(customer_id, self.clock.now_ms()).await? {
            self.cache.invalidate(product);
        }
        self.timers.cancel(Deadline::Cart(customer_id));
        Ok(())
    }

    /// The cart timer of `customer_id` fired: its reservation ends.
    pub(crate) async fn on_cart_timeout(self: Arc<Self>, customer_id: i64) {
        match self.store.expire_cart(customer_id, self.clock.now_ms()).await {
            Ok(products) if products.is_empty() => {}
            Ok(products) => {
                self.metrics.carts_expired.inc();
                for &p in &products {
                    self.cache.invalidate(p);
                }
                tracing::info!(customer_id, lines = products.len(), "cart reservation expired");
            }
            Err(e) => {
                tracing::warn!(customer_id, error = %e, "cart expiry failed; re-arming");
                self.timers.schedule(
                    Deadline::Cart(customer_id),
                    self.clock.after_ms(Duration::from_secs(5)),
                );
            }
        }
    }

    /// Try: records the order and reserves its stock (or, `from_cart`, takes over what the
    /// cart held), arms its unpaid timer and announces it.
    ///
    /// # Errors
    /// Database failures.
    pub async fn place_order(
        &self,
        customer_id: i64,
        idempotency_key: String,
        lines: Vec<(i64, i64)>,
        card: Option<String>,
        from_cart: bool,
    ) -> Result<PlaceOutcome, StoreError> {
        let now_ms = self.clock.now_ms();
        let new = NewOrder {
            customer_id,
            idempotency_key,
            lines,
            card,
            now_ms,
            expires_at_ms: self.clock.after_ms(self.config.unpaid_timeout()),
            from_cart,
        };
        let outcome = self.store.place_order(&new).await?;
        match &outcome {
            PlaceOutcome::Created(order) => {
                self.metrics.orders_placed.inc();
                for line in &order.lines {
                    self.cache.invalidate(line.product_id);
                }
                self.timers.schedule(Deadline::Order(order.id), order.expires_at_ms);
                self.bus.publish(ShopEvent::OrderPlaced { order_id: order.id });
                // The cart handed its lines over: an empty cart needs no timer.
                if from_cart && self.store.cart(customer_id).await.is_ok_and(|c| c.lines.is_empty())
                {
                    self.timers.cancel(Deadline::Cart(customer_id));
                }
            }
            PlaceOutcome::OutOfStock { .. } => {
                self.metrics.orders_out_of_stock.inc();
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Puts `card` on an unpaid order and asks the payment service to charge it. Returns
    /// `false` when the order is no longer awaiting payment.
    ///
    /// # Errors
    /// Database failures.
    pub async fn pay_order(&self, order: &Order, card: &str) -> Result<bool, StoreError> {
        if !self.store.set_card(order.id, card, self.clock.now_ms()).await? {
            return Ok(false);
        }
        self.bus.publish(ShopEvent::PaymentRequested { order_id: order.id });
        Ok(true)
    }

    /// Cancel: releases an unpaid order's stock. Idempotent.
    ///
    /// # Errors
    /// Database failures.
    pub async fn cancel_order(
        &self,
        order_id: i64,
        reason: &str,
    ) -> Result<Transition, StoreError> {
        let t = self.store.cancel_order(order_id, reason, self.clock.now_ms()).await?;
        if let Transition::Applied(products) = &t {
            self.metrics.orders_cancelled.inc();
            for &p in products {
                self.cache.invalidate(p);
            }
            self.timers.cancel(Deadline::Order(order_id));
            self.bus.publish(ShopEvent::OrderCancelled { order_id, reason: reason.to_owned() });
        }
        Ok(t)
    }

    /// The unpaid timer of `order_id` fired.
    pub(crate) async fn on_unpaid_timeout(self: Arc<Self>, order_id: i64) {
        match self.cancel_order(order_id, reasons::TIMEOUT).await {
            Ok(t) => tracing::info!(order_id, outcome = ?t, "unpaid order timed out"),
            Err(e) => {
                // Try again shortly: the timer must not be lost to a database hiccup.
                tracing::warn!(order_id, error = %e, "timeout cancel failed; re-arming");
                self.timers.schedule(
                    Deadline::Order(order_id),
                    self.clock.after_ms(Duration::from_secs(5)),
                );
            }
        }
    }

    /// Payment service: charges orders that have a card, through breaker + timeout + retry.
    async fn on_order_event_pay(&self, event: ShopEvent) -> Result<(), String> {
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
                self.metrics.payments.get_or_create(&outcome("succeeded")).inc();
                self.bus.publish(ShopEvent::PaymentSucceeded { order_id, charge_id });
                return Ok(());
            }
            Ok(Err(ProviderError::Declined(reason))) => {
                self.metrics.payments.get_or_create(&outcome("declined")).inc();
                self.bus.publish(ShopEvent::PaymentFailed { order_id, reason });
                return Ok(());
            }
            // No answer: the last fault, a timeout, or the open breaker (with its
            // retry-after). The event is redelivered later.
            Ok(Err(fault)) => fault.to_string(),
            Err(e) => e.to_string(),
        };
        self.metrics.payments.get_or_create(&outcome("retry")).inc();
        let _ = self.store.set_payment_error(order_id, &error).await;
        Err(error)
    }

    /// Order service: confirms paid orders, cancels declined ones, refunds a payment that
    /// arrived after the order was cancelled.
    async fn on_payment_outcome(&self, event: ShopEvent) -> Result<(), String> {
        let now = self.clock.now_ms();
        match event {
            ShopEvent::PaymentSucceeded { order_id, charge_id } => {
                let t = self
                    .store
                    .confirm_order(order_id, &charge_id, now)
                    .await
                    .map_err(|e| e.to_string())?;
                match t {
                    Transition::Applied(products) => {
                        self.metrics.orders_paid.inc();
                        self.timers.cancel(Deadline::Order(order_id));
                        for p in products {
                            self.cache.invalidate(p);
                        }
                    }
                    Transition::Conflict(_) => {
                        // Cancelled first (timeout or customer): give the money back.
                        self.guard
                            .call(|| self.provider.refund(order_id), ProviderError::is_fault)
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?;
                        self.bus.publish(ShopEvent::Refunded { order_id, charge_id });
                    }
                    Transition::Already | Transition::NotFound => {}
                }
                Ok(())
            }
            ShopEvent::PaymentFailed { order_id, .. } => {
                self.cancel_order(order_id, reasons::DECLINED).await.map_err(|e| e.to_string())?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Notification service: records a message per order and kind.
    async fn notify(&self, event: ShopEvent) -> Result<(), String> {
        let order_id = event.order_id();
        let (kind, message) = match &event {
            ShopEvent::OrderPlaced { .. } => {
                ("order_placed", format!("Order {order_id} placed; stock reserved until payment."))
            }
            ShopEvent::PaymentRequested { .. } => return Ok(()),
            ShopEvent::PaymentSucceeded { charge_id, .. } => (
                "payment_succeeded",
                format!("Payment received (charge {charge_id}); order {order_id} confirmed."),
            ),
            ShopEvent::PaymentFailed { reason, .. } => {
                ("payment_failed", format!("Payment for order {order_id} failed: {reason}."))
            }
            ShopEvent::OrderCancelled { reason, .. } => (
                "order_cancelled",
                format!("Order {order_id} cancelled ({reason}); stock released."),
            ),
            ShopEvent::Refunded { charge_id, .. } => (
                "refunded",
                format!("Charge {charge_id} refunded: order {order_id} had been cancelled."),
            ),
        };
        self.store
            .add_notification(order_id, kind, &message, self.clock.now_ms())
            .await
            .map_err(|e| e.to_string())?;
        self.metrics.notifications.inc();
        Ok(())
    }
}

fn outcome(o: &'static str) -> crate::metrics::OutcomeLabel {
    crate::metrics::OutcomeLabel { outcome: o }
}
