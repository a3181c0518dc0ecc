//! The cart's requests and answers.

use serde::{Deserialize, Serialize};

use crate::domain::{CartLine, CustomerNotification};

/// A product and a quantity: `POST /cart/items` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItem {
    /// Product.
    pub product_id: i64,
    /// Units (0 removes the line from the cart); at most `orders.max_quantity`.
    #[schema(maximum = 100)]
    pub quantity: u32,
}

/// A cart as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CartView {
    /// Lines, by product.
    pub lines: Vec<CartLine>,
    /// Sum of the lines at current prices, in cents.
    pub total_cents: i64,
    /// When the cart's reservation ends (Unix milliseconds); `null` when empty.
    #[schema(required = true)]
    pub reserved_until_ms: Option<i64>,
}

/// `GET /cart/notifications` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CartNotificationList {
    /// What the customer was told about their cart (`cart_expired`), oldest first.
    pub notifications: Vec<CustomerNotification>,
}
