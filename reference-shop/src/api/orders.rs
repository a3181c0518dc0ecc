//! The orders' requests and answers.

use serde::{Deserialize, Serialize};

use super::CartItem;
use crate::domain::{Notification, Order};

/// `POST /orders` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Lines (1 to `orders.max_lines`, each product once); the cart's when absent or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 50)]
    pub items: Option<Vec<OrderItem>>,
    /// Card token to pay at once (1 to 64 printable ASCII characters; `tok_declined` is
    /// declined); none when absent or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub card: Option<String>,
}

/// A line of `POST /orders`: a product and how many units of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    /// Product.
    pub product_id: i64,
    /// Units, 1 to `orders.max_quantity`.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: u32,
}

impl From<CartItem> for OrderItem {
    fn from(item: CartItem) -> Self {
        Self { product_id: item.product_id, quantity: item.quantity }
    }
}

/// What placing an order did: the order, and whether it was placed before under the same
/// idempotency key (answered 200 with `Idempotent-Replayed: true` instead of 201).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The order.
    pub order: Order,
    /// Placed by an earlier request with the same key.
    pub replayed: bool,
}

/// `POST /orders/{id}/pay` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pay {
    /// Card token (1 to 64 printable ASCII characters).
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub card: String,
}

/// What asking to pay did: the order, and whether a payment was started (202) or the order
/// was paid already (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOutcome {
    /// The order now.
    pub order: Order,
    /// A payment was started.
    pub started: bool,
}

/// What a synchronous checkout (`POST /orders/{id}/checkout`) came to, short of a declined
/// card (402) or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// Paid (now, or before): 200.
    Paid(Order),
    /// The provider gave no answer in time (a fault, the checkout's deadline, or the open
    /// breaker): the payment was handed to the queue, which goes on trying; 202 with
    /// `Retry-After`, the time to look at the order again.
    Pending {
        /// The order now, awaiting payment, its `payment_error` saying why.
        order: Order,
        /// Seconds until the order is worth looking at again (at least 1).
        retry_after_secs: u64,
    },
}

/// `GET /orders` query.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Page size, 1 to 100 (default 20).
    #[serde(
        default,
        deserialize_with = "super::integral::opt_u32",
        skip_serializing_if = "Option::is_none"
    )]
    #[param(minimum = 1, maximum = 100, nullable = false)]
    pub limit: Option<u32>,
    /// Orders to skip (default 0).
    #[serde(
        default,
        deserialize_with = "super::integral::opt_u32",
        skip_serializing_if = "Option::is_none"
    )]
    #[param(maximum = 4_294_967_295_u64, nullable = false)]
    pub offset: Option<u32>,
}

/// `GET /orders` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderList {
    /// The caller's orders, newest first.
    pub orders: Vec<Order>,
}

/// `GET /orders/{id}/notifications` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationList {
    /// What the customer was told about the order, oldest first.
    pub notifications: Vec<Notification>,
}
