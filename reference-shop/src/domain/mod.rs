//! The shop's data: what is stored, returned as JSON, and sent as events. One concept per
//! file: customers and the catalog here, orders in `order`, the events between the
//! services in `event`.

mod event;
mod order;

use serde::{Deserialize, Serialize};

pub use event::{
    ReleasedLine, ShopEvent, TOPIC_CARTS, TOPIC_ORDERS, TOPIC_PAYMENTS, cart_expired_id,
};
pub use order::{Order, OrderLine, OrderStatus};

/// A customer; the API key identifies them on every request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Customer {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Secret sent as `X-Api-Key`.
    pub api_key: String,
}

/// A catalog entry with its stock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Product {
    /// Id.
    pub id: i64,
    /// Stock-keeping unit.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Units that can still be ordered.
    pub stock: i64,
    /// Units held by unpaid orders (the "try" of try-confirm-cancel) and by carts.
    pub reserved: i64,
}

/// One line of a cart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CartLine {
    /// Product.
    pub product_id: i64,
    /// Units.
    pub quantity: i64,
    /// Current unit price in cents.
    pub price_cents: i64,
    /// Product name.
    pub name: String,
}

/// A message to the customer about an order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Notification {
    /// Id.
    pub id: i64,
    /// Order.
    pub order_id: i64,
    /// Kind: `order_placed`, `payment_succeeded`, `payment_failed`, `order_cancelled`,
    /// `refunded`.
    pub kind: String,
    /// Text.
    pub message: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// A message to a customer about something other than an order (their cart expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerNotification {
    /// The event it reports (one notification per event id).
    pub event_id: String,
    /// Kind: `cart_expired`.
    pub kind: String,
    /// Text.
    pub message: String,
    /// When it was recorded (shop clock, ms).
    pub created_at_ms: i64,
}
