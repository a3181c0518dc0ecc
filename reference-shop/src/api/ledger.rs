//! `GET /admin/stock`: where every unit of every product is, read in one statement (one
//! snapshot of the database), so a checker can prove that no unit was created or lost.

use serde::{Deserialize, Serialize};

/// One product's units: on the shelf, reserved, sold, and who holds the reserved ones.
///
/// In a consistent shop `reserved == held_by_orders + held_by_carts` at every instant, and
/// `stock + reserved + sold` changes only when an operator changes the stock
/// (`PATCH /admin/products/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductStock {
    /// The product.
    pub product_id: i64,
    /// Units on the shelf (`products.stock`): neither reserved nor sold.
    pub stock: i64,
    /// Units reserved (`products.reserved`) by unpaid orders and carts.
    pub reserved: i64,
    /// Units of paid orders.
    pub sold: i64,
    /// Units of orders awaiting payment.
    pub held_by_orders: i64,
    /// Units in carts.
    pub held_by_carts: i64,
}

/// `GET /admin/stock` answer: every product, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockLedger {
    /// Every product, by id.
    pub products: Vec<ProductStock>,
}
