//! Carts. A cart line reserves its stock (as an unpaid order does) until the cart's
//! reservation ends, `orders.cart_reservation` after its last change; then a timer on the shop
//! clock removes its lines and releases the stock, and the same transaction writes a
//! `cart_expired` event to the outbox (the notification consumer tells the customer once).
//! The timers are re-armed from the store after a start, so a restart loses no expiry. An
//! order placed from the cart takes the reservation over.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use super::{Catalog, Infra};
use crate::api::{ApiError, CartItem, CartView, OrderItem};
use crate::bus::EventBus;
use crate::clock::ShopClock;
use crate::config::OrdersConfig;
use crate::store::catalog::CartChange;
use crate::store::{HoldingCaps, Store, StoreError};
use crate::timeouts::{Deadline, ShopTimers};

/// How long a failed cart expiry waits before it runs again.
const EXPIRY_RETRY: Duration = Duration::from_secs(5);

/// The cart service.
#[derive(Debug)]
pub struct Carts {
    store: Arc<Store>,
    bus: EventBus,
    catalog: Arc<Catalog>,
    timers: Arc<ShopTimers>,
    clock: ShopClock,
    reservation: Duration,
    max_quantity: u32,
    caps: HoldingCaps,
    expired: Counter,
}

impl Carts {
    /// Carts over `infra`, telling `catalog` when stock moves, with `orders`' reservation
    /// length and quantity bound, and `caps` on what one customer may hold.
    #[must_use]
    pub fn new(
        infra: &Infra,
        catalog: Arc<Catalog>,
        orders: &OrdersConfig,
        caps: HoldingCaps,
    ) -> Self {
        Self {
            store: Arc::clone(&infra.store),
            bus: infra.bus.clone(),
            catalog,
            timers: Arc::clone(&infra.timers),
            clock: infra.clock.clone(),
            reservation: orders.cart_reservation,
            max_quantity: orders.max_quantity,
            caps,
            expired: infra.counters.carts_expired.clone(),
        }
    }

    /// A customer's cart.
    ///
    /// # Errors
    /// Store failures.
    pub async fn view(&self, customer_id: i64) -> Result<CartView, ApiError> {
        let cart = self.store.cart(customer_id).await?;
        let total_cents = cart.lines.iter().map(|l| l.price_cents * l.quantity).sum();
        Ok(CartView { lines: cart.lines, total_cents, reserved_until_ms: cart.expires_at_ms })
    }

    /// Sets a line's quantity (0 removes it), reserving or releasing the difference in stock,
    /// and extends the cart's reservation.
    ///
    /// # Errors
    /// 422 for a quantity over `orders.max_quantity`; 404 for no such product; 409
    /// `out_of_stock` when not enough is left, `reservation_cap` when the customer would hold
    /// more than `limits.max_reserved_units`; store failures.
    pub async fn set_item(&self, customer_id: i64, item: CartItem) -> Result<CartView, ApiError> {
        if item.quantity > self.max_quantity {
            return Err(ApiError::invalid(
                "invalid_quantity",
                format!("quantity must lie in 0..={}", self.max_quantity),
            ));
        }
        match self.set(customer_id, item.product_id, i64::from(item.quantity)).await? {
            CartChange::Done { .. } => self.view(customer_id).await,
            CartChange::UnknownProduct => Err(ApiError::not_found("product")),
            CartChange::OutOfStock { available } => {
                Err(ApiError::out_of_stock(item.product_id, available))
            }
            CartChange::OverCap(over) => Err(ApiError::over_cap(&over)),
        }
    }

    /// Removes a line (nothing to do when the cart has none for the product).
    ///
    /// # Errors
    /// Store failures.
    pub async fn remove_item(
        &self,
        customer_id: i64,
        product_id: i64,
    ) -> Result<CartView, ApiError> {
        self.set(customer_id, product_id, 0).await?;
        self.view(customer_id).await
    }

    /// Empties a cart and releases its stock.
    ///
    /// # Errors
    /// Store failures.
    pub async fn clear(&self, customer_id: i64) -> Result<CartView, ApiError> {
        let released = self.store.clear_cart(customer_id, self.clock.now_ms()).await?;
        self.catalog.stock_changed(released);
        self.timers.cancel(Deadline::Cart(customer_id));
        self.view(customer_id).await
    }

    /// The cart's lines, as order lines (for an order placed from the cart).
    ///
    /// # Errors
    /// Store failures.
    pub(crate) async fn lines(&self, customer_id: i64) -> Result<Vec<OrderItem>, ApiError> {
        let cart = self.store.cart(customer_id).await?;
        Ok(cart
            .lines
            .into_iter()
            .map(|l| OrderItem {
                product_id: l.product_id,
                quantity: u32::try_from(l.quantity).unwrap_or(u32::MAX),
            })
            .collect())
    }

    /// An order took the cart's lines over: an empty cart needs no timer.
    pub(crate) async fn checked_out(&self, customer_id: i64) {
        if self.store.cart(customer_id).await.is_ok_and(|c| c.lines.is_empty()) {
            self.timers.cancel(Deadline::Cart(customer_id));
        }
    }

    /// Sets a line and moves the cart's timer to the end of its extended reservation.
    async fn set(
        &self,
        customer_id: i64,
        product_id: i64,
        quantity: i64,
    ) -> Result<CartChange, StoreError> {
        let expires_at_ms = self.clock.after_ms(self.reservation);
        let change = self
            .store
            .set_cart_item(
                customer_id,
                product_id,
                quantity,
                self.clock.now_ms(),
                expires_at_ms,
                self.caps,
            )
            .await?;
        if let CartChange::Done { stock_changed, expires_at_ms } = change {
            if stock_changed {
                self.catalog.stock_changed([product_id]);
            }
            match expires_at_ms {
                Some(at) => self.timers.schedule(Deadline::Cart(customer_id), at),
                None => self.timers.cancel(Deadline::Cart(customer_id)),
            }
        }
        Ok(change)
    }

    /// The cart timer of `customer_id` fired: its reservation ends (unless the cart changed
    /// meanwhile and a later timer covers it).
    pub async fn on_timeout(&self, customer_id: i64) {
        match self.store.expire_cart(customer_id, self.clock.now_ms()).await {
            Ok(products) if products.is_empty() => {}
            Ok(products) => self.expired(customer_id, products),
            Err(e) => {
                tracing::warn!(customer_id, error = %e, "cart expiry failed; re-arming");
                self.timers
                    .schedule(Deadline::Cart(customer_id), self.clock.after_ms(EXPIRY_RETRY));
            }
        }
    }

    /// What follows an expiry this shop applied: wake the relay, count it, refresh the
    /// products' stock.
    fn expired(&self, customer_id: i64, products: Vec<i64>) {
        // The release wrote `cart_expired` to the outbox: the relay publishes it.
        self.bus.outbox_written();
        self.expired.inc();
        let lines = products.len();
        self.catalog.stock_changed(products);
        tracing::info!(customer_id, lines, "cart reservation expired");
    }

    /// The sweep's share (`crate::sweep`): expires up to `batch` carts past their
    /// reservation, whichever shop armed their timers, each in a transaction of its own that
    /// only removes lines still due. Returns how many carts released stock.
    ///
    /// # Errors
    /// Store failures (what was released before stays released).
    pub async fn sweep_overdue(&self, batch: u32) -> Result<u32, StoreError> {
        let mut swept = 0;
        for _ in 0..batch {
            let now = self.clock.now_ms();
            let Some((customer_id, products)) = self.store.expire_next_overdue_cart(now).await?
            else {
                break;
            };
            if !products.is_empty() {
                self.expired(customer_id, products);
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// After a start: re-arms the timer of every cart that holds stock.
    ///
    /// # Errors
    /// Store failures.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let carts = self.store.pending_carts().await?;
        for &(customer_id, expires_at_ms) in &carts {
            self.timers.schedule(Deadline::Cart(customer_id), expires_at_ms);
        }
        Ok(carts.len())
    }
}
