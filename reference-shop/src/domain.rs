//! The shop's data: what is stored, returned as JSON, and sent as events.

use serde::{Deserialize, Serialize};

/// A customer; the API key identifies them on every request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Customer {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Secret sent as `X-Api-Key`.
    pub api_key: String,
}

/// A catalog entry with its stock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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

/// Where an order is in its try-confirm-cancel life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock is reserved; payment has not succeeded yet (try).
    AwaitingPayment,
    /// Payment succeeded; the reservation became a sale (confirm).
    Paid,
    /// Cancelled by the customer, a declined payment or the unpaid timeout; stock released
    /// (cancel).
    Cancelled,
}

impl OrderStatus {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingPayment => "awaiting_payment",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored spelling.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "awaiting_payment" => Some(Self::AwaitingPayment),
            "paid" => Some(Self::Paid),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderLine {
    /// Product.
    pub product_id: i64,
    /// Units.
    pub quantity: i64,
    /// Unit price in cents at placement.
    pub unit_price_cents: i64,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Order {
    /// Id.
    pub id: i64,
    /// Owner.
    pub customer_id: i64,
    /// Status.
    pub status: OrderStatus,
    /// Sum of the lines in cents.
    pub total_cents: i64,
    /// Lines.
    pub lines: Vec<OrderLine>,
    /// Whether a payment card is on file for this order.
    pub has_card: bool,
    /// The provider's charge id once paid.
    pub charge_id: Option<String>,
    /// Why the last payment attempt did not go through, if it did not.
    pub payment_error: Option<String>,
    /// Why the order was cancelled.
    pub cancel_reason: Option<String>,
    /// Placement time, Unix milliseconds.
    pub created_at_ms: i64,
    /// When an unpaid order is cancelled, Unix milliseconds.
    pub expires_at_ms: i64,
}

/// A message to the customer about an order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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

/// The events the services exchange through the queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShopEvent {
    /// An order reserved its stock (topic `orders`).
    OrderPlaced {
        /// Order.
        order_id: i64,
    },
    /// The customer asked to pay (again) (topic `orders`).
    PaymentRequested {
        /// Order.
        order_id: i64,
    },
    /// The provider charged the order (topic `payments`).
    PaymentSucceeded {
        /// Order.
        order_id: i64,
        /// Provider's charge id.
        charge_id: String,
    },
    /// The provider refused the charge for good (topic `payments`).
    PaymentFailed {
        /// Order.
        order_id: i64,
        /// Why.
        reason: String,
    },
    /// The order was cancelled and its stock released (topic `orders`).
    OrderCancelled {
        /// Order.
        order_id: i64,
        /// Why.
        reason: String,
    },
    /// A charge was refunded because the order had been cancelled first (topic `payments`).
    Refunded {
        /// Order.
        order_id: i64,
        /// Provider's charge id.
        charge_id: String,
    },
}

impl ShopEvent {
    /// The order the event is about.
    #[must_use]
    pub fn order_id(&self) -> i64 {
        match self {
            Self::OrderPlaced { order_id }
            | Self::PaymentRequested { order_id }
            | Self::PaymentSucceeded { order_id, .. }
            | Self::PaymentFailed { order_id, .. }
            | Self::OrderCancelled { order_id, .. }
            | Self::Refunded { order_id, .. } => *order_id,
        }
    }

    /// The topic it is published on.
    #[must_use]
    pub fn topic(&self) -> &'static str {
        match self {
            Self::OrderPlaced { .. }
            | Self::PaymentRequested { .. }
            | Self::OrderCancelled { .. } => TOPIC_ORDERS,
            Self::PaymentSucceeded { .. } | Self::PaymentFailed { .. } | Self::Refunded { .. } => {
                TOPIC_PAYMENTS
            }
        }
    }
}

/// Topic of order lifecycle events.
pub const TOPIC_ORDERS: &str = "orders";
/// Topic of payment outcomes.
pub const TOPIC_PAYMENTS: &str = "payments";
