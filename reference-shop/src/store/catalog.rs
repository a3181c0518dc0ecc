//! Products and carts. A cart line reserves its stock (as an unpaid order does) until the
//! cart's reservation ends; every change to the cart extends it, and an order placed from the
//! cart takes the reservation over.

use std::sync::atomic::Ordering;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::holding::{HoldingCaps, OverCap, holding};
use super::{Store, StoreError, outbox};
use crate::domain::{CartLine, Product, ReleasedLine, ShopEvent, cart_expired_id};

/// A customer's cart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    /// Lines, by product.
    pub lines: Vec<CartLine>,
    /// When the cart's reservation ends (shop-clock milliseconds); `None` when empty.
    pub expires_at_ms: Option<i64>,
}

/// What setting a cart line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartChange {
    /// Done.
    Done {
        /// Whether stock was reserved or released (the product's cache entry is stale).
        stock_changed: bool,
        /// When the cart's reservation now ends; `None` when the cart is empty.
        expires_at_ms: Option<i64>,
    },
    /// No such product; nothing changed.
    UnknownProduct,
    /// Not enough stock for the increase; nothing changed.
    OutOfStock {
        /// Units available now.
        available: i64,
    },
    /// The increase would take the customer over a cap on what they may hold; nothing
    /// changed.
    OverCap(OverCap),
}

/// Serializes the cart changes of one customer. PostgreSQL locks the customer's row for the
/// rest of the transaction (a no-op update); SQLite's `BEGIN IMMEDIATE` already holds the one
/// write lock. Without it two concurrent changes could both reserve the same difference.
pub(super) async fn lock_cart(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    customer_id: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE customers SET name = name WHERE id = $1")
        .bind(customer_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Gives `quantity` reserved units of `product_id` back to its stock.
pub(super) async fn release(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    product_id: i64,
    quantity: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE products SET stock = stock + $1, reserved = reserved - $1, updated_at_ms = $3 \
         WHERE id = $2",
    )
    .bind(quantity)
    .bind(product_id)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn product_from(r: &AnyRow) -> Result<Product, StoreError> {
    Ok(Product {
        id: r.try_get("id")?,
        sku: r.try_get("sku")?,
        name: r.try_get("name")?,
        category: r.try_get("category")?,
        price_cents: r.try_get("price_cents")?,
        stock: r.try_get("stock")?,
        reserved: r.try_get("reserved")?,
    })
}

/// What a product search asks for.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    /// Words the name contains (case-insensitive).
    pub text: Option<String>,
    /// Exact category.
    pub category: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Store {
    /// One product.
    ///
    /// # Errors
    /// Database failures.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, StoreError> {
        self.faults.store_delay().await;
        self.product_reads.fetch_add(1, Ordering::Relaxed);
        let row = sqlx::query(
            "SELECT id, sku, name, category, price_cents, stock, reserved FROM products WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| product_from(&r)).transpose()
    }

    /// A page of products, by id, filtered by name text and category.
    ///
    /// # Errors
    /// Database failures.
    pub async fn products(&self, q: &ProductQuery) -> Result<Vec<Product>, StoreError> {
        self.faults.store_delay().await;
        let pattern =
            q.text.as_deref().map(|t| format!("%{}%", t.to_lowercase().replace(['%', '_'], "")));
        let rows = sqlx::query(
            "SELECT id, sku, name, category, price_cents, stock, reserved FROM products \
             WHERE ($1 IS NULL OR LOWER(name) LIKE $1) AND ($2 IS NULL OR category = $2) \
             ORDER BY id LIMIT $3 OFFSET $4",
        )
        .bind(pattern)
        .bind(q.category.clone())
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(product_from).collect()
    }

    /// Sets a product's price and/or stock (admin). Returns the product, or `None` when it
    /// does not exist.
    ///
    /// # Errors
    /// Database failures.
    pub async fn update_product(
        &self,
        id: i64,
        price_cents: Option<i64>,
        stock: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<Product>, StoreError> {
        self.faults.store_delay().await;
        let row = self
            .retrying(|| async {
                let mut tx = self.write_tx().await?;
                let row = sqlx::query(
                    "UPDATE products SET price_cents = COALESCE($2, price_cents), \
                 stock = COALESCE($3, stock), updated_at_ms = $4 WHERE id = $1 \
                 RETURNING id, sku, name, category, price_cents, stock, reserved",
                )
                .bind(id)
                .bind(price_cents)
                .bind(stock)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row)
            })
            .await?;
        row.map(|r| product_from(&r)).transpose()
    }

    /// A customer's cart, with when its reservation ends.
    ///
    /// # Errors
    /// Database failures.
    pub async fn cart(&self, customer_id: i64) -> Result<Cart, StoreError> {
        self.faults.store_delay().await;
        let rows = sqlx::query(
            "SELECT c.product_id, c.quantity, c.expires_at_ms, p.price_cents, p.name \
             FROM cart_items c JOIN products p ON p.id = c.product_id \
             WHERE c.customer_id = $1 ORDER BY c.product_id",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        let mut expires_at_ms = None;
        let lines = rows
            .iter()
            .map(|r| {
                let expires: i64 = r.try_get("expires_at_ms")?;
                expires_at_ms = Some(expires_at_ms.map_or(expires, |e: i64| e.max(expires)));
                Ok(CartLine {
                    product_id: r.try_get("product_id")?,
                    quantity: r.try_get("quantity")?,
                    price_cents: r.try_get("price_cents")?,
                    name: r.try_get("name")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Cart { lines, expires_at_ms })
    }

    /// Sets the quantity of a product in a cart (0 removes it), reserving or releasing the
    /// difference in stock, and extends the whole cart's reservation to `expires_at_ms`. An
    /// increase that would take the customer's holding over `caps` changes nothing.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_cart_item(
        &self,
        customer_id: i64,
        product_id: i64,
        quantity: i64,
        now_ms: i64,
        expires_at_ms: i64,
        caps: HoldingCaps,
    ) -> Result<CartChange, StoreError> {
        self.faults.store_delay().await;
        self.retrying(|| async {
            let mut tx = self.write_tx().await?;
            lock_cart(&mut tx, customer_id).await?;
            let held: i64 = sqlx::query(
                "SELECT quantity FROM cart_items WHERE customer_id = $1 AND product_id = $2",
            )
            .bind(customer_id)
            .bind(product_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("quantity"))
            .transpose()?
            .unwrap_or(0);
            let more = quantity - held;
            if more > 0
                && caps != HoldingCaps::NONE
                && let Some(over) = caps.check(holding(&mut tx, customer_id).await?, more, 0)
            {
                tx.rollback().await?;
                return Ok(CartChange::OverCap(over));
            }
            if more > 0 {
                // Reserve the difference while enough stock is left, as an order would.
                let reserved = sqlx::query(
                    "UPDATE products SET stock = stock - $1, reserved = reserved + $1, \
                     updated_at_ms = $3 WHERE id = $2 AND stock >= $1 RETURNING id",
                )
                .bind(more)
                .bind(product_id)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                if reserved.is_none() {
                    let stock = sqlx::query("SELECT stock FROM products WHERE id = $1")
                        .bind(product_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.rollback().await?;
                    return Ok(match stock {
                        Some(r) => CartChange::OutOfStock { available: r.try_get("stock")? },
                        None => CartChange::UnknownProduct,
                    });
                }
            } else if more < 0 {
                release(&mut tx, product_id, -more, now_ms).await?;
            }
            if quantity == 0 {
                sqlx::query("DELETE FROM cart_items WHERE customer_id = $1 AND product_id = $2")
                    .bind(customer_id)
                    .bind(product_id)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO cart_items (customer_id, product_id, quantity, expires_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id, product_id) \
                     DO UPDATE SET quantity = excluded.quantity",
                )
                .bind(customer_id)
                .bind(product_id)
                .bind(quantity)
                .bind(expires_at_ms)
                .execute(&mut *tx)
                .await?;
            }
            let extended =
                sqlx::query("UPDATE cart_items SET expires_at_ms = $2 WHERE customer_id = $1")
                    .bind(customer_id)
                    .bind(expires_at_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            tx.commit().await?;
            Ok(CartChange::Done {
                stock_changed: more != 0,
                expires_at_ms: (extended > 0).then_some(expires_at_ms),
            })
        })
        .await
    }

    /// Empties a cart and releases its reservations. Returns the products whose stock came
    /// back.
    ///
    /// # Errors
    /// Database failures.
    pub async fn clear_cart(&self, customer_id: i64, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        self.faults.store_delay().await;
        self.retrying(|| self.release_cart(customer_id, None, now_ms)).await
    }

    /// Empties a cart whose reservation ended by `now_ms` and releases its stock: the cart
    /// timer's work. Returns the products whose stock came back; none when the cart is empty
    /// or was extended meanwhile (a later timer covers it). A cart that expires writes a
    /// [`ShopEvent::CartExpired`] to the outbox in the same transaction: the event exists
    /// exactly when the release does.
    ///
    /// # Errors
    /// Database failures.
    pub async fn expire_cart(&self, customer_id: i64, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        self.faults.store_delay().await;
        self.retrying(|| self.release_cart(customer_id, Some(now_ms), now_ms)).await
    }

    async fn release_cart(
        &self,
        customer_id: i64,
        due_by: Option<i64>,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.write_tx().await?;
        lock_cart(&mut tx, customer_id).await?;
        let products = release_cart_in(&mut tx, customer_id, due_by, now_ms).await?;
        tx.commit().await?;
        Ok(products)
    }

    /// Carts holding stock, with when each one's reservation ends (to re-arm their timers
    /// after a restart).
    ///
    /// # Errors
    /// Database failures.
    pub async fn pending_carts(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT customer_id, MAX(expires_at_ms) AS expires_at_ms FROM cart_items \
             GROUP BY customer_id ORDER BY customer_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("customer_id")?, r.try_get("expires_at_ms")?))).collect()
    }
}

/// Removes the lines of `customer_id`'s cart due by `due_by` (all of them without it) inside
/// `tx`, which holds the cart's lock, and releases their stock; an expiry (`due_by`) writes
/// the [`ShopEvent::CartExpired`] event to the outbox. Returns the products released.
pub(super) async fn release_cart_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    customer_id: i64,
    due_by: Option<i64>,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let rows = sqlx::query(
        "DELETE FROM cart_items WHERE customer_id = $1 AND expires_at_ms <= $2 \
             RETURNING product_id, quantity, expires_at_ms",
    )
    .bind(customer_id)
    .bind(due_by.unwrap_or(i64::MAX))
    .fetch_all(&mut **tx)
    .await?;
    let mut lines = rows
        .iter()
        .map(|r| {
            Ok((r.try_get("product_id")?, r.try_get("quantity")?, r.try_get("expires_at_ms")?))
        })
        .collect::<Result<Vec<(i64, i64, i64)>, StoreError>>()?;
    // One lock order for every transaction (by product id): no deadlock with orders.
    lines.sort_unstable();
    for &(product_id, quantity, _) in &lines {
        release(tx, product_id, quantity, now_ms).await?;
    }
    if due_by.is_some()
        && let Some(reserved_until_ms) = lines.iter().map(|&(_, _, until)| until).max()
    {
        let event = ShopEvent::CartExpired {
            event_id: cart_expired_id(customer_id, reserved_until_ms),
            customer_id,
            reserved_until_ms,
            released: lines
                .iter()
                .map(|&(product_id, quantity, _)| ReleasedLine { product_id, quantity })
                .collect(),
        };
        outbox::enqueue(tx, &event, now_ms).await?;
    }
    Ok(lines.into_iter().map(|(p, _, _)| p).collect())
}
