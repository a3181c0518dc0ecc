//! The events the services exchange through the queue, and their topics.

use serde::{Deserialize, Serialize};

/// The events the services exchange through the queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// A cart's reservation ended with nobody touching it: its lines were removed and their
    /// stock released (topic `carts`). Written in the transaction that released the stock.
    CartExpired {
        /// The event's id, the same in every copy of it (a consumer handles each id once):
        /// see [`cart_expired_id`].
        event_id: String,
        /// Whose cart.
        customer_id: i64,
        /// When its reservation ended (shop clock, ms).
        reserved_until_ms: i64,
        /// What it held, by product id, whose stock came back.
        released: Vec<ReleasedLine>,
    },
}

/// A cart line released when the cart expired.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReleasedLine {
    /// Product.
    pub product_id: i64,
    /// Units that went back to stock.
    pub quantity: i64,
}

/// The id of the `cart_expired` event of `customer_id`'s cart whose reservation ended at
/// `reserved_until_ms`. One cart expires at most once at a given end (a cart filled again
/// after it expired ends later), so the pair names one expiry.
#[must_use]
pub fn cart_expired_id(customer_id: i64, reserved_until_ms: i64) -> String {
    format!("cart-{customer_id}-{reserved_until_ms}")
}

impl ShopEvent {
    /// The order the event is about (`None` for a cart's event).
    #[must_use]
    pub fn order_id(&self) -> Option<i64> {
        match self {
            Self::OrderPlaced { order_id }
            | Self::PaymentRequested { order_id }
            | Self::PaymentSucceeded { order_id, .. }
            | Self::PaymentFailed { order_id, .. }
            | Self::OrderCancelled { order_id, .. }
            | Self::Refunded { order_id, .. } => Some(*order_id),
            Self::CartExpired { .. } => None,
        }
    }

    /// The message's ordering key: events with one key are handled one at a time, in
    /// publish order. An order's events are keyed by the order id, a cart's by
    /// `cart-<customer id>`.
    #[must_use]
    pub fn ordering_key(&self) -> String {
        match self {
            Self::OrderPlaced { order_id }
            | Self::PaymentRequested { order_id }
            | Self::PaymentSucceeded { order_id, .. }
            | Self::PaymentFailed { order_id, .. }
            | Self::OrderCancelled { order_id, .. }
            | Self::Refunded { order_id, .. } => order_id.to_string(),
            Self::CartExpired { customer_id, .. } => format!("cart-{customer_id}"),
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
            Self::CartExpired { .. } => TOPIC_CARTS,
        }
    }
}

/// Topic of order lifecycle events.
pub const TOPIC_ORDERS: &str = "orders";
/// Topic of payment outcomes.
pub const TOPIC_PAYMENTS: &str = "payments";
/// Topic of cart events.
pub const TOPIC_CARTS: &str = "carts";
