//! The cart's requests and answers.

use serde::{Deserialize, Serialize};

use crate::domain::CartLine;

/// A product and a quantity: `POST /cart/items` body, and a line of `POST /orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartItem {
    /// Product.
    pub product_id: i64,
    /// Units (0 removes the line from a cart).
    pub quantity: u32,
}

/// A cart as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartView {
    /// Lines, by product.
    pub lines: Vec<CartLine>,
    /// Sum of the lines at current prices, in cents.
    pub total_cents: i64,
    /// When the cart's reservation ends (Unix milliseconds); `null` when empty.
    pub reserved_until_ms: Option<i64>,
}
