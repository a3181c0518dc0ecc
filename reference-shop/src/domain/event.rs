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
