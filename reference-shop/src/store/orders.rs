//! Orders as try-confirm-cancel: placement reserves stock (try; or takes over the reservation
//! its cart held), payment turns the reservation into a sale (confirm), a decline, the customer
//! or the unpaid timeout releases it (cancel).
//! Each step is one transaction guarded by the order's status, so running a step twice, or two
//! steps at once, changes stock at most once.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::catalog::lock_cart;
use super::holding::{HoldingCaps, OverCap, holding};
use super::{Store, StoreError, outbox};
use crate::domain::{Notification, Order, OrderLine, OrderStatus, ShopEvent};

/// An order to place.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Owner.
    pub customer_id: i64,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// `(product, quantity)`, one line per product.
    pub lines: Vec<(i64, i64)>,
    /// Payment card token, if the customer pays at once.
    pub card: Option<String>,
    /// Now, Unix milliseconds.
    pub now_ms: i64,
    /// When the order is cancelled if still unpaid.
    pub expires_at_ms: i64,
    /// Whether the lines come from the customer's cart: each line the cart holds in that
    /// quantity takes the cart's reservation over (and leaves the cart) instead of reserving
    /// stock again.
    pub from_cart: bool,
    /// What the customer may hold reserved, this order included.
    pub caps: HoldingCaps,
}

impl NewOrder {
    /// What identifies the request behind an idempotency key.
    fn fingerprint(&self) -> String {
        let mut lines = self.lines.clone();
        lines.sort_unstable();
        let mut s: String = lines.iter().map(|(p, q)| format!("{p}x{q};")).collect();
        s.push('|');
        s.push_str(self.card.as_deref().unwrap_or(""));
        s
    }
}

/// What placing an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// A new order; its stock is reserved.
    Created(Order),
    /// The idempotency key was used before for the same request: that order.
    Replayed(Order),
    /// The idempotency key was used before for a different request.
    KeyReused,
    /// Not enough stock of a product; nothing was reserved.
    OutOfStock {
        /// The product.
        product_id: i64,
        /// Units available now.
        available: i64,
    },
    /// A product does not exist.
    UnknownProduct(i64),
    /// The order would take the customer over a cap on what they may hold; nothing was
    /// reserved.
    OverCap(OverCap),
}

/// What a confirm or cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The order moved; these products' stock changed.
    Applied(Vec<i64>),
    /// The order was already in the target status (a repeated step).
    Already,
    /// The order is in another final status.
    Conflict(OrderStatus),
    /// No such order.
    NotFound,
}

/// An unpaid order, as the timers and the payment re-drive see it after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOrder {
    /// Order.
    pub id: i64,
    /// When it is cancelled if still unpaid.
    pub expires_at_ms: i64,
    /// Whether a card is on file (payment should be attempted).
    pub has_card: bool,
}

/// The cancel step's order update (`$1 = order, $2 = reason, $3 = now`): only an order
/// still awaiting payment moves, so of two cancels (a timer and a sweep, two shops) one
/// applies and the other finds it done.
const CANCEL_ORDER: &str = "UPDATE orders SET status = 'cancelled', cancel_reason = $2, \
     updated_at_ms = $3 WHERE id = $1 AND status = 'awaiting_payment'";
/// The cancel step's release of one line (`$1 = quantity, $2 = product, $3 = now`).
const CANCEL_ITEM: &str = "UPDATE products SET stock = stock + $1, reserved = reserved - $1, \
     updated_at_ms = $3 WHERE id = $2";

const ORDER_COLUMNS: &str = "SELECT id, customer_id, status, total_cents, card, charge_id, payment_error, \
     cancel_reason, created_at_ms, expires_at_ms FROM orders";

fn order_from(r: &AnyRow, lines: Vec<OrderLine>) -> Result<Order, StoreError> {
    let status: String = r.try_get("status")?;
    let card: Option<String> = r.try_get("card")?;
    Ok(Order {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Cancelled),
        total_cents: r.try_get("total_cents")?,
        lines,
        has_card: card.is_some(),
        charge_id: r.try_get("charge_id")?,
        payment_error: r.try_get("payment_error")?,
        cancel_reason: r.try_get("cancel_reason")?,
        created_at_ms: r.try_get("created_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
    })
}

fn line_from(r: &AnyRow) -> Result<(i64, OrderLine), StoreError> {
    Ok((
        r.try_get("order_id")?,
        OrderLine {
            product_id: r.try_get("product_id")?,
            quantity: r.try_get("quantity")?,
            unit_price_cents: r.try_get("unit_price_cents")?,
        },
    ))
}

impl Store {
    /// Places an order: records it and reserves its stock in one transaction, or changes
    /// nothing.
    ///
    /// # Errors
    /// Database failures.
    pub async fn place_order(&self, new: &NewOrder) -> Result<PlaceOutcome, StoreError> {
        self.faults.store_delay().await;
        let fingerprint = new.fingerprint();
        let mut lines = new.lines.clone();
        // One lock order for every transaction: PostgreSQL cannot deadlock on product rows.
        lines.sort_unstable();
        let outcome = self.retrying(|| self.try_place(new, &fingerprint, &lines)).await?;
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
        // The key was taken: the same request again, or a different one.
        let row = sqlx::query(
            "SELECT id, fingerprint FROM orders WHERE customer_id = $1 AND idempotency_key = $2",
        )
        .bind(new.customer_id)
        .bind(&new.idempotency_key)
        .fetch_one(&self.pool)
        .await?;
        let stored: String = row.try_get("fingerprint")?;
        if stored != fingerprint {
            return Ok(PlaceOutcome::KeyReused);
        }
        let id: i64 = row.try_get("id")?;
        let order = self.load_order(id).await?;
        Ok(order.map_or(PlaceOutcome::KeyReused, PlaceOutcome::Replayed))
    }

    /// `Ok(None)` when the idempotency key already exists.
    async fn try_place(
        &self,
        new: &NewOrder,
        fingerprint: &str,
        lines: &[(i64, i64)],
    ) -> Result<Option<PlaceOutcome>, StoreError> {
        let mut tx = self.write_tx().await?;
        // The customer's lock first: their cart, and what they hold, stay as read until the
        // commit (every order and cart change of theirs takes it first, then products).
        lock_cart(&mut tx, new.customer_id).await?;
        let held = if new.caps == HoldingCaps::NONE {
            None
        } else {
            Some(holding(&mut tx, new.customer_id).await?)
        };
        let inserted = sqlx::query(
            "INSERT INTO orders (customer_id, idempotency_key, fingerprint, status, total_cents, \
             card, created_at_ms, expires_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, 'awaiting_payment', 0, $4, $5, $6, $5) \
             ON CONFLICT (customer_id, idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(new.customer_id)
        .bind(&new.idempotency_key)
        .bind(fingerprint)
        .bind(new.card.clone())
        .bind(new.now_ms)
        .bind(new.expires_at_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(inserted) = inserted else {
            tx.rollback().await?;
            return Ok(None);
        };
        let order_id: i64 = inserted.try_get("id")?;
        // A replay (above) is answered whatever the caps; a new order counts, and so do its
        // units, unless they come from the cart (known once the lines below are taken).
        let units = if new.from_cart { 0 } else { lines.iter().map(|&(_, q)| q).sum() };
        if let Some(over) = held.and_then(|h| new.caps.check(h, units, 1)) {
            tx.rollback().await?;
            return Ok(Some(PlaceOutcome::OverCap(over)));
        }
        let mut added_units = 0_i64;
        let mut total = 0_i64;
        let mut order_lines = Vec::with_capacity(lines.len());
        for &(product_id, quantity) in lines {
            // The cart's reservation of this line, if it still holds it, moves to the order.
            let from_cart = new.from_cart
                && sqlx::query(
                    "DELETE FROM cart_items WHERE customer_id = $1 AND product_id = $2 \
                     AND quantity = $3 RETURNING product_id",
                )
                .bind(new.customer_id)
                .bind(product_id)
                .bind(quantity)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !from_cart {
                added_units += quantity;
            }
            let reserved = if from_cart {
                sqlx::query("SELECT price_cents FROM products WHERE id = $1")
                    .bind(product_id)
                    .fetch_optional(&mut *tx)
                    .await?
            } else {
                // The reservation: succeeds only while enough stock is left, so concurrent
                // orders for the last unit cannot both take it.
                sqlx::query(
                    "UPDATE products SET stock = stock - $1, reserved = reserved + $1, \
                     updated_at_ms = $3 WHERE id = $2 AND stock >= $1 RETURNING price_cents",
                )
                .bind(quantity)
                .bind(product_id)
                .bind(new.now_ms)
                .fetch_optional(&mut *tx)
                .await?
            };
            let Some(reserved) = reserved else {
                let stock = sqlx::query("SELECT stock FROM products WHERE id = $1")
                    .bind(product_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.rollback().await?;
                return Ok(Some(match stock {
                    Some(r) => {
                        PlaceOutcome::OutOfStock { product_id, available: r.try_get("stock")? }
                    }
                    None => PlaceOutcome::UnknownProduct(product_id),
                }));
            };
            let price: i64 = reserved.try_get("price_cents")?;
            sqlx::query(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(order_id)
            .bind(product_id)
            .bind(quantity)
            .bind(price)
            .execute(&mut *tx)
            .await?;
            total += price * quantity;
            order_lines.push(OrderLine { product_id, quantity, unit_price_cents: price });
        }
        // From the cart: the lines the cart no longer held as ordered are new units.
        let late = held.filter(|_| new.from_cart);
        if let Some(over) = late.and_then(|h| new.caps.check(h, added_units, 0)) {
            tx.rollback().await?;
            return Ok(Some(PlaceOutcome::OverCap(over)));
        }
        sqlx::query("UPDATE orders SET total_cents = $2 WHERE id = $1")
            .bind(order_id)
            .bind(total)
            .execute(&mut *tx)
            .await?;
        outbox::enqueue(&mut tx, &ShopEvent::OrderPlaced { order_id }, new.now_ms).await?;
        tx.commit().await?;
        Ok(Some(PlaceOutcome::Created(Order {
            id: order_id,
            customer_id: new.customer_id,
            status: OrderStatus::AwaitingPayment,
            total_cents: total,
            lines: order_lines,
            has_card: new.card.is_some(),
            charge_id: None,
            payment_error: None,
            cancel_reason: None,
            created_at_ms: new.now_ms,
            expires_at_ms: new.expires_at_ms,
        })))
    }

    /// Confirm: a paid order's reservation becomes a sale.
    ///
    /// # Errors
    /// Database failures.
    pub async fn confirm_order(
        &self,
        order_id: i64,
        charge_id: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        self.finish_order(
            order_id,
            OrderStatus::Paid,
            "UPDATE orders SET status = 'paid', charge_id = $2, payment_error = NULL, \
             updated_at_ms = $3 WHERE id = $1 AND status = 'awaiting_payment'",
            charge_id,
            // Confirm: the reserved units are sold; stock was taken at reservation.
            "UPDATE products SET reserved = reserved - $1, updated_at_ms = $3 WHERE id = $2",
            now_ms,
            // The payment's outcome was the event; the confirmation announces nothing more.
            None,
        )
        .await
    }

    /// Cancel: an unpaid order releases its reserved stock.
    ///
    /// # Errors
    /// Database failures.
    pub async fn cancel_order(
        &self,
        order_id: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        self.finish_order(
            order_id,
            OrderStatus::Cancelled,
            CANCEL_ORDER,
            reason,
            CANCEL_ITEM,
            now_ms,
            Some(ShopEvent::OrderCancelled { order_id, reason: reason.to_owned() }),
        )
        .await
    }

    /// The cancel step inside `tx`: moves the order out of `awaiting_payment`, releases its
    /// stock and writes `OrderCancelled` to the outbox. `None` when the order was not
    /// awaiting payment (nothing changed).
    pub(super) async fn cancel_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        order_id: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let event = ShopEvent::OrderCancelled { order_id, reason: reason.to_owned() };
        self.finish_in(tx, order_id, CANCEL_ORDER, reason, CANCEL_ITEM, now_ms, Some(&event)).await
    }

    /// The confirm and cancel steps of try-confirm-cancel: in one transaction, move an order
    /// out of `awaiting_payment` (`order_sql`, with `$2 = detail`) and apply `item_sql`
    /// (`$1 = quantity, $2 = product id, $3 = now`) to each of its lines, and put `event` in
    /// the outbox. A repeated step, or one racing the other, finds the order already moved and
    /// changes nothing.
    #[allow(clippy::too_many_arguments)]
    async fn finish_order(
        &self,
        order_id: i64,
        target: OrderStatus,
        order_sql: &'static str,
        detail: &str,
        item_sql: &'static str,
        now_ms: i64,
        event: Option<ShopEvent>,
    ) -> Result<Transition, StoreError> {
        self.faults.store_delay().await;
        self.retrying(|| async {
            let mut tx = self.write_tx().await?;
            let applied = self
                .finish_in(&mut tx, order_id, order_sql, detail, item_sql, now_ms, event.as_ref())
                .await?;
            let Some(products) = applied else {
                tx.rollback().await?;
                return self.settled(order_id, target).await;
            };
            tx.commit().await?;
            Ok(Transition::Applied(products))
        })
        .await
    }

    /// [`Store::finish_order`]'s work inside `tx`: the products whose stock changed, or
    /// `None` when the order had already left `awaiting_payment`.
    #[allow(clippy::too_many_arguments)]
    async fn finish_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        order_id: i64,
        order_sql: &'static str,
        detail: &str,
        item_sql: &'static str,
        now_ms: i64,
        event: Option<&ShopEvent>,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let moved = sqlx::query(order_sql)
            .bind(order_id)
            .bind(detail)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if moved == 0 {
            return Ok(None);
        }
        let items = self.items_in(tx, order_id).await?;
        for &(product_id, quantity) in &items {
            sqlx::query(item_sql)
                .bind(quantity)
                .bind(product_id)
                .bind(now_ms)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(event) = event {
            outbox::enqueue(tx, event, now_ms).await?;
        }
        Ok(Some(items.iter().map(|i| i.0).collect()))
    }

    async fn items_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        order_id: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY product_id",
        )
        .bind(order_id)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("product_id")?, r.try_get("quantity")?))).collect()
    }

    async fn settled(&self, order_id: i64, target: OrderStatus) -> Result<Transition, StoreError> {
        let row = sqlx::query("SELECT status FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Transition::NotFound);
        };
        let status: String = row.try_get("status")?;
        Ok(match OrderStatus::parse(&status) {
            Some(s) if s == target => Transition::Already,
            Some(s) => Transition::Conflict(s),
            None => Transition::NotFound,
        })
    }

    /// Puts a card on an unpaid order (for `pay`) and, in the same transaction, asks for its
    /// payment through the outbox. Returns `false` when the order is not awaiting payment.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_card(
        &self,
        order_id: i64,
        card: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.put_card(order_id, card, now_ms, true).await
    }

    /// Puts a card on an unpaid order for a synchronous checkout, which charges it while the
    /// customer waits: no payment request goes to the queue (its charge would race the
    /// checkout's); the checkout hands the payment to the queue itself when it gets no answer,
    /// and a shop that dies mid-checkout re-drives the unpaid carded order at its next start.
    /// Returns `false` when the order is not awaiting payment.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_card_for_checkout(
        &self,
        order_id: i64,
        card: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.put_card(order_id, card, now_ms, false).await
    }

    async fn put_card(
        &self,
        order_id: i64,
        card: &str,
        now_ms: i64,
        request_payment: bool,
    ) -> Result<bool, StoreError> {
        self.faults.store_delay().await;
        self.retrying(|| async {
            let mut tx = self.write_tx().await?;
            let n = sqlx::query(
                "UPDATE orders SET card = $2, payment_error = NULL, updated_at_ms = $3 \
                 WHERE id = $1 AND status = 'awaiting_payment'",
            )
            .bind(order_id)
            .bind(card)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            if request_payment {
                let event = ShopEvent::PaymentRequested { order_id };
                outbox::enqueue(&mut tx, &event, now_ms).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// The card on file for an unpaid order, with its amount: `None` when the order is not
    /// awaiting payment or has no card.
    ///
    /// # Errors
    /// Database failures.
    pub async fn payable(&self, order_id: i64) -> Result<Option<(String, i64)>, StoreError> {
        self.faults.store_delay().await;
        let row = sqlx::query(
            "SELECT card, total_cents FROM orders WHERE id = $1 AND status = 'awaiting_payment'",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let card: Option<String> = row.try_get("card")?;
        Ok(card.map(|c| (c, row.try_get("total_cents").unwrap_or(0))))
    }

    /// Records why the last payment attempt did not go through.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_payment_error(&self, order_id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE orders SET payment_error = $2 WHERE id = $1 AND status = 'awaiting_payment'",
        )
        .bind(order_id)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An order by id, whoever owns it.
    ///
    /// # Errors
    /// Database failures.
    pub async fn order(&self, order_id: i64) -> Result<Option<Order>, StoreError> {
        self.faults.store_delay().await;
        self.load_order(order_id).await
    }

    async fn load_order(&self, order_id: i64) -> Result<Option<Order>, StoreError> {
        let sql = format!("{ORDER_COLUMNS} WHERE id = $1");
        let Some(row) =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        let lines = sqlx::query(
            "SELECT order_id, product_id, quantity, unit_price_cents FROM order_items \
             WHERE order_id = $1 ORDER BY product_id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| line_from(r).map(|l| l.1))
        .collect::<Result<Vec<_>, _>>()?;
        order_from(&row, lines).map(Some)
    }

    /// A customer's order by the idempotency key that placed it.
    ///
    /// # Errors
    /// Database failures.
    pub async fn order_by_key(
        &self,
        customer_id: i64,
        idempotency_key: &str,
    ) -> Result<Option<Order>, StoreError> {
        self.faults.store_delay().await;
        let row =
            sqlx::query("SELECT id FROM orders WHERE customer_id = $1 AND idempotency_key = $2")
                .bind(customer_id)
                .bind(idempotency_key)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(r) => self.load_order(r.try_get("id")?).await,
            None => Ok(None),
        }
    }

    /// A customer's orders, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn orders_of(
        &self,
        customer_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Order>, StoreError> {
        self.faults.store_delay().await;
        let sql =
            format!("{ORDER_COLUMNS} WHERE customer_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(customer_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let line_rows = sqlx::query(
            "SELECT i.order_id, i.product_id, i.quantity, i.unit_price_cents FROM order_items i \
             JOIN orders o ON o.id = i.order_id WHERE o.customer_id = $1 \
             ORDER BY i.order_id, i.product_id",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        let mut lines: HashMap<i64, Vec<OrderLine>> = HashMap::new();
        for r in &line_rows {
            let (order_id, line) = line_from(r)?;
            lines.entry(order_id).or_default().push(line);
        }
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                order_from(r, lines.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// Every order still awaiting payment (to rebuild timers and payments after a restart).
    ///
    /// # Errors
    /// Database failures.
    pub async fn pending_orders(&self) -> Result<Vec<PendingOrder>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, expires_at_ms, card FROM orders WHERE status = 'awaiting_payment' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let card: Option<String> = r.try_get("card")?;
                Ok(PendingOrder {
                    id: r.try_get("id")?,
                    expires_at_ms: r.try_get("expires_at_ms")?,
                    has_card: card.is_some(),
                })
            })
            .collect()
    }

    /// Records a notification once per order and kind.
    ///
    /// # Errors
    /// Database failures.
    pub async fn add_notification(
        &self,
        order_id: i64,
        kind: &str,
        message: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.faults.store_delay().await;
        sqlx::query(
            "INSERT INTO notifications (order_id, kind, message, created_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (order_id, kind) DO NOTHING",
        )
        .bind(order_id)
        .bind(kind)
        .bind(message)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An order's notifications, oldest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn notifications(&self, order_id: i64) -> Result<Vec<Notification>, StoreError> {
        self.faults.store_delay().await;
        let rows = sqlx::query(
            "SELECT id, order_id, kind, message, created_at_ms FROM notifications \
             WHERE order_id = $1 ORDER BY id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Notification {
                    id: r.try_get("id")?,
                    order_id: r.try_get("order_id")?,
                    kind: r.try_get("kind")?,
                    message: r.try_get("message")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect()
    }
}
