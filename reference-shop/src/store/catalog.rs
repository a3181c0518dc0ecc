//! Products and carts.

use std::sync::atomic::Ordering;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, retry_contention};
use crate::domain::{CartLine, Product};

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
        let row = retry_contention(|| async {
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

    /// A customer's cart.
    ///
    /// # Errors
    /// Database failures.
    pub async fn cart(&self, customer_id: i64) -> Result<Vec<CartLine>, StoreError> {
        self.faults.store_delay().await;
        let rows = sqlx::query(
            "SELECT c.product_id, c.quantity, p.price_cents, p.name FROM cart_items c \
             JOIN products p ON p.id = c.product_id WHERE c.customer_id = $1 ORDER BY c.product_id",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CartLine {
                    product_id: r.try_get("product_id")?,
                    quantity: r.try_get("quantity")?,
                    price_cents: r.try_get("price_cents")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    /// Sets the quantity of a product in a cart (0 removes it). Returns `false` when the
    /// product does not exist.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_cart_item(
        &self,
        customer_id: i64,
        product_id: i64,
        quantity: i64,
    ) -> Result<bool, StoreError> {
        self.faults.store_delay().await;
        retry_contention(|| async {
            let mut tx = self.write_tx().await?;
            if quantity == 0 {
                sqlx::query("DELETE FROM cart_items WHERE customer_id = $1 AND product_id = $2")
                    .bind(customer_id)
                    .bind(product_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(true);
            }
            let exists = sqlx::query("SELECT id FROM products WHERE id = $1")
                .bind(product_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !exists {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO cart_items (customer_id, product_id, quantity) VALUES ($1, $2, $3) \
                 ON CONFLICT (customer_id, product_id) DO UPDATE SET quantity = excluded.quantity",
            )
            .bind(customer_id)
            .bind(product_id)
            .bind(quantity)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Empties a cart.
    ///
    /// # Errors
    /// Database failures.
    pub async fn clear_cart(&self, customer_id: i64) -> Result<(), StoreError> {
        self.faults.store_delay().await;
        sqlx::query("DELETE FROM cart_items WHERE customer_id = $1")
            .bind(customer_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
