//! Where every unit is: one read over products, orders and carts (`GET /admin/stock`).

use sqlx::Row;

use super::{Store, StoreError};
use crate::api::ProductStock;

/// One statement, so both databases answer it from one snapshot (SQLite reads under one
/// lock; PostgreSQL gives each statement its own snapshot even in READ COMMITTED): the
/// columns of a product agree with each other even while orders are placed and paid.
/// `CAST(.. AS BIGINT)` because PostgreSQL sums a `BIGINT` as `NUMERIC`, which sqlx's `Any`
/// driver does not decode.
const LEDGER: &str = "\
    SELECT p.id, p.stock, p.reserved, \
        CAST(COALESCE(o.sold, 0) AS BIGINT) AS sold, \
        CAST(COALESCE(o.held, 0) AS BIGINT) AS held_by_orders, \
        CAST(COALESCE(c.held, 0) AS BIGINT) AS held_by_carts \
    FROM products p \
    LEFT JOIN ( \
        SELECT i.product_id, \
            SUM(CASE WHEN r.status = 'paid' THEN i.quantity ELSE 0 END) AS sold, \
            SUM(CASE WHEN r.status = 'awaiting_payment' THEN i.quantity ELSE 0 END) AS held \
        FROM order_items i JOIN orders r ON r.id = i.order_id GROUP BY i.product_id \
    ) o ON o.product_id = p.id \
    LEFT JOIN ( \
        SELECT product_id, SUM(quantity) AS held FROM cart_items GROUP BY product_id \
    ) c ON c.product_id = p.id \
    ORDER BY p.id";

impl Store {
    /// Every product's units: on the shelf, reserved, sold, held by orders and by carts.
    ///
    /// # Errors
    /// Database failures.
    pub async fn stock_ledger(&self) -> Result<Vec<ProductStock>, StoreError> {
        let rows = sqlx::query(LEDGER).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ProductStock {
                    product_id: r.try_get("id")?,
                    stock: r.try_get("stock")?,
                    reserved: r.try_get("reserved")?,
                    sold: r.try_get("sold")?,
                    held_by_orders: r.try_get("held_by_orders")?,
                    held_by_carts: r.try_get("held_by_carts")?,
                })
            })
            .collect()
    }
}
