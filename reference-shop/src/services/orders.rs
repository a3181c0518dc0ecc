//! Orders as try-confirm-cancel: placing one reserves its stock (try) and arms its unpaid
//! timer; the payment's outcome, delivered as an event, confirms it (the reservation becomes
//! a sale) or cancels it; the customer or the unpaid timer cancels it too (the stock is
//! released). A payment that arrives after the order was cancelled is refunded.

mod checkout;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;

use super::{Carts, Catalog, Infra, Payments};
use crate::api::{
    ApiError, OrderItem, OrderList, Page, Pay, PaymentOutcome, PlaceOrder, Placement,
};
use crate::bus::EventBus;
use crate::clock::ShopClock;
use crate::config::OrdersConfig;
use crate::domain::{Order, OrderStatus, ShopEvent};
use crate::metrics::ShopCounters;
use crate::store::{HoldingCaps, NewOrder, PlaceOutcome, Store, StoreError, Transition};
use crate::timeouts::{Deadline, ShopTimers};

/// Reasons recorded on cancelled orders.
pub mod reasons {
    /// The customer cancelled.
    pub const CUSTOMER: &str = "cancelled_by_customer";
    /// Not paid in time.
    pub const TIMEOUT: &str = "payment_timeout";
    /// The provider declined the payment.
    pub const DECLINED: &str = "payment_declined";
}

/// How long a failed timeout cancel waits before it runs again.
const CANCEL_RETRY: Duration = Duration::from_secs(5);

/// The order service.
#[derive(Debug)]
pub struct Orders {
    store: Arc<Store>,
    bus: EventBus,
    timers: Arc<ShopTimers>,
    clock: ShopClock,
    counters: ShopCounters,
    catalog: Arc<Catalog>,
    carts: Arc<Carts>,
    payments: Arc<Payments>,
    settings: OrdersConfig,
    caps: HoldingCaps,
}

/// A card token: 1 to 64 printable ASCII characters.
fn check_card(card: &str) -> Result<(), ApiError> {
    if card.is_empty() || card.len() > 64 || !card.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "invalid_card",
            "card must be a token of 1 to 64 printable characters (try tok_visa)",
        ));
    }
    Ok(())
}

impl Orders {
    /// Orders over `infra`, telling `catalog` when stock moves, taking lines from `carts`
    /// and refunds from `payments`, with `settings`' limits and unpaid timeout, and `caps` on
    /// what one customer may hold.
    #[must_use]
    pub fn new(
        infra: &Infra,
        catalog: Arc<Catalog>,
        carts: Arc<Carts>,
        payments: Arc<Payments>,
        settings: &OrdersConfig,
        caps: HoldingCaps,
    ) -> Self {
        Self {
            store: Arc::clone(&infra.store),
            bus: infra.bus.clone(),
            timers: Arc::clone(&infra.timers),
            clock: infra.clock.clone(),
            counters: infra.counters.clone(),
            catalog,
            carts,
            payments,
            settings: settings.clone(),
            caps,
        }
    }

    /// Try: records the order and reserves its stock (or, without `items`, takes over what
    /// the cart held), arms its unpaid timer and announces it. The same `idempotency_key`
    /// with the same request answers the first order again.
    ///
    /// # Errors
    /// 400 without an idempotency key (1 to 128 characters); 422 for a bad card, no lines,
    /// too many lines, a bad quantity or a product twice; 404 for an unknown product (as in
    /// the cart); 409 when the key was used for a different order, `out_of_stock`, or
    /// `reservation_cap` when the customer would hold more than `limits.max_reserved_units`
    /// units or `limits.max_unpaid_orders` unpaid orders; store failures.
    pub async fn place(
        &self,
        customer_id: i64,
        idempotency_key: Option<&str>,
        body: PlaceOrder,
    ) -> Result<Placement, ApiError> {
        let key = idempotency_key.map_or("", str::trim);
        if key.is_empty() || key.len() > 128 {
            return Err(ApiError::bad_request(
                "idempotency_key_required",
                "send an Idempotency-Key header (1 to 128 characters) so a retried request cannot \
                 place the order twice",
            ));
        }
        if let Some(card) = &body.card {
            check_card(card)?;
        }
        let from_cart = body.items.is_none();
        let items = match body.items {
            Some(items) => items,
            None => self.carts.lines(customer_id).await?,
        };
        if items.is_empty() {
            if from_cart {
                // A retry after the cart was turned into an order: answer with that order.
                if let Some(order) = self.store.order_by_key(customer_id, key).await? {
                    return Ok(Placement { order, replayed: true });
                }
            }
            return Err(ApiError::invalid("empty_order", "an order needs at least one item"));
        }
        let lines = self.lines(&items)?;
        let now_ms = self.clock.now_ms();
        let new = NewOrder {
            customer_id,
            idempotency_key: key.to_owned(),
            lines,
            card: body.card,
            now_ms,
            expires_at_ms: self.clock.after_ms(self.settings.unpaid_timeout),
            from_cart,
            caps: self.caps,
        };
        // From the cart, the order takes the cart's lines (and their reservation) over in the
        // same transaction that records it: nothing to empty afterwards.
        match self.store.place_order(&new).await? {
            PlaceOutcome::Created(order) => {
                self.counters.orders_placed.inc();
                self.catalog.stock_changed(order.lines.iter().map(|l| l.product_id));
                self.timers.schedule(Deadline::Order(order.id), order.expires_at_ms);
                // The store wrote `OrderPlaced` to the outbox with the order.
                self.bus.outbox_written();
                if from_cart {
                    self.carts.checked_out(customer_id).await;
                }
                Ok(Placement { order, replayed: false })
            }
            PlaceOutcome::Replayed(order) => Ok(Placement { order, replayed: true }),
            PlaceOutcome::KeyReused => Err(ApiError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different order",
            )),
            PlaceOutcome::OutOfStock { product_id, available } => {
                self.counters.orders_out_of_stock.inc();
                Err(ApiError::out_of_stock(product_id, available))
            }
            PlaceOutcome::OverCap(over) => Err(ApiError::over_cap(&over)),
            PlaceOutcome::UnknownProduct(id) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_product",
                format!("product {id} does not exist"),
            )),
        }
    }

    /// Checks an order's lines: how many, each quantity, each product once.
    fn lines(&self, items: &[OrderItem]) -> Result<Vec<(i64, i64)>, ApiError> {
        let limits = &self.settings;
        if items.len() > limits.max_lines {
            return Err(ApiError::invalid(
                "too_many_lines",
                format!("an order has at most {} lines", limits.max_lines),
            ));
        }
        let mut lines = BTreeMap::new();
        for item in items {
            if item.quantity == 0 || item.quantity > limits.max_quantity {
                return Err(ApiError::invalid(
                    "invalid_quantity",
                    format!("quantity must lie in 1..={}", limits.max_quantity),
                ));
            }
            if lines.insert(item.product_id, i64::from(item.quantity)).is_some() {
                return Err(ApiError::invalid(
                    "duplicate_product",
                    format!("product {} appears twice", item.product_id),
                ));
            }
        }
        Ok(lines.into_iter().collect())
    }

    /// A customer's orders, newest first.
    ///
    /// # Errors
    /// 422 for a page size outside 1..=100; store failures.
    pub async fn list(&self, customer_id: i64, page: Page) -> Result<OrderList, ApiError> {
        let limit = page.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid("invalid_limit", "limit must lie in 1..=100"));
        }
        let offset = i64::from(page.offset.unwrap_or(0));
        let orders = self.store.orders_of(customer_id, i64::from(limit), offset).await?;
        Ok(OrderList { orders })
    }

    /// The customer's order `id`.
    ///
    /// # Errors
    /// 404 for no such order, also for other customers' orders (their existence is not
    /// revealed); store failures.
    pub async fn get(&self, customer_id: i64, id: i64) -> Result<Order, ApiError> {
        match self.store.order(id).await? {
            Some(o) if o.customer_id == customer_id => Ok(o),
            _ => Err(ApiError::not_found("order")),
        }
    }

    /// Puts a card on an unpaid order and asks the payments service to charge it.
    ///
    /// # Errors
    /// 422 for a bad card; 404 as [`get`](Self::get); 409 when the order was cancelled;
    /// store failures.
    pub async fn pay(
        &self,
        customer_id: i64,
        id: i64,
        pay: Pay,
    ) -> Result<PaymentOutcome, ApiError> {
        check_card(&pay.card)?;
        let order = self.get(customer_id, id).await?;
        match order.status {
            OrderStatus::Paid => return Ok(PaymentOutcome { order, started: false }),
            OrderStatus::Cancelled => return Err(cancelled()),
            OrderStatus::AwaitingPayment => {}
        }
        if self.store.set_card(order.id, &pay.card, self.clock.now_ms()).await? {
            // The store wrote `PaymentRequested` to the outbox with the card.
            self.bus.outbox_written();
            let order = self.get(customer_id, id).await?;
            return Ok(PaymentOutcome { order, started: true });
        }
        // It moved on meanwhile.
        let order = self.get(customer_id, id).await?;
        match order.status {
            OrderStatus::Paid => Ok(PaymentOutcome { order, started: false }),
            _ => Err(cancelled()),
        }
    }

    /// Cancels the customer's unpaid order (a cancelled one stays cancelled).
    ///
    /// # Errors
    /// 404 as [`get`](Self::get); 409 for a paid order; store failures.
    pub async fn cancel(&self, customer_id: i64, id: i64) -> Result<Order, ApiError> {
        self.get(customer_id, id).await?;
        match self.cancel_for(id, reasons::CUSTOMER).await? {
            Transition::Applied(_) | Transition::Already => {}
            Transition::Conflict(_) => {
                return Err(ApiError::conflict("order_paid", "a paid order cannot be cancelled"));
            }
            Transition::NotFound => return Err(ApiError::not_found("order")),
        }
        self.get(customer_id, id).await
    }

    /// Cancel: releases an unpaid order's stock, disarms its timer and announces it.
    /// Idempotent.
    async fn cancel_for(&self, order_id: i64, reason: &str) -> Result<Transition, StoreError> {
        let t = self.store.cancel_order(order_id, reason, self.clock.now_ms()).await?;
        if let Transition::Applied(products) = &t {
            self.cancelled(order_id, products);
        }
        Ok(t)
    }

    /// What follows a cancellation this shop applied: count it, refresh the products' stock,
    /// disarm the order's timer, wake the relay.
    fn cancelled(&self, order_id: i64, products: &[i64]) {
        self.counters.orders_cancelled.inc();
        self.catalog.stock_changed(products.iter().copied());
        self.timers.cancel(Deadline::Order(order_id));
        // The store wrote `OrderCancelled` to the outbox with the cancellation.
        self.bus.outbox_written();
    }

    /// The sweep's share (`crate::sweep`): cancels up to `batch` unpaid orders past their
    /// deadline, whichever shop armed their timers, each in a transaction of its own that
    /// only moves an order still awaiting payment. Returns how many it cancelled.
    ///
    /// # Errors
    /// Store failures (what was cancelled before stays cancelled).
    pub async fn sweep_overdue(&self, batch: u32) -> Result<u32, StoreError> {
        let mut swept = 0;
        while swept < batch {
            let now = self.clock.now_ms();
            let Some((order_id, products)) =
                self.store.cancel_next_overdue(reasons::TIMEOUT, now).await?
            else {
                break;
            };
            self.cancelled(order_id, &products);
            tracing::info!(order_id, "unpaid order timed out (sweep)");
            swept += 1;
        }
        Ok(swept)
    }

    /// The unpaid timer of `order_id` fired.
    pub async fn on_unpaid_timeout(&self, order_id: i64) {
        match self.cancel_for(order_id, reasons::TIMEOUT).await {
            Ok(t) => tracing::info!(order_id, outcome = ?t, "unpaid order timed out"),
            Err(e) => {
                // Try again shortly: the timer must not be lost to a database hiccup.
                tracing::warn!(order_id, error = %e, "timeout cancel failed; re-arming");
                self.timers.schedule(Deadline::Order(order_id), self.clock.after_ms(CANCEL_RETRY));
            }
        }
    }

    /// Handles a payment's outcome (subscription `orders` of topic `payments`): confirms a
    /// paid order, cancels a declined one, refunds a payment that arrived after the order was
    /// cancelled.
    ///
    /// # Errors
    /// What failed, for a redelivery.
    pub async fn on_payment_event(&self, event: ShopEvent) -> Result<(), String> {
        let now = self.clock.now_ms();
        match event {
            ShopEvent::PaymentSucceeded { order_id, charge_id } => {
                let t = self.confirm(order_id, &charge_id, now).await.map_err(|e| e.to_string())?;
                if let Transition::Conflict(_) = t {
                    // Cancelled first (timeout or customer): give the money back.
                    self.payments.refund(order_id, charge_id).await?;
                }
                Ok(())
            }
            ShopEvent::PaymentFailed { order_id, .. } => {
                self.cancel_for(order_id, reasons::DECLINED).await.map_err(|e| e.to_string())?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Confirm: the paid order's reservation becomes a sale and its timer is disarmed.
    /// Idempotent; a cancelled order is a [`Transition::Conflict`] (the caller refunds).
    async fn confirm(
        &self,
        order_id: i64,
        charge_id: &str,
        now: i64,
    ) -> Result<Transition, StoreError> {
        let t = self.store.confirm_order(order_id, charge_id, now).await?;
        if let Transition::Applied(products) = &t {
            self.counters.orders_paid.inc();
            self.timers.cancel(Deadline::Order(order_id));
            self.catalog.stock_changed(products.iter().copied());
        }
        Ok(t)
    }

    /// After a start: re-arms the timer of every unpaid order and re-drives the payment of
    /// those with a card (the provider is idempotent, so a payment already made is not
    /// repeated). Returns how many unpaid orders there were.
    ///
    /// The outbox already keeps every committed event; the re-drive stays as the safety net
    /// of the `memory` backend, whose queued events die with the process (on the durable
    /// broker and NATS it only adds a harmless duplicate request per unpaid order).
    ///
    /// # Errors
    /// Store failures.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let pending = self.store.pending_orders().await?;
        for order in &pending {
            self.timers.schedule(Deadline::Order(order.id), order.expires_at_ms);
            if order.has_card {
                let event = ShopEvent::PaymentRequested { order_id: order.id };
                self.store.add_to_outbox(&event, self.clock.now_ms()).await?;
                self.bus.outbox_written();
            }
        }
        Ok(pending.len())
    }
}

fn cancelled() -> ApiError {
    ApiError::conflict("order_cancelled", "the order was cancelled")
}
