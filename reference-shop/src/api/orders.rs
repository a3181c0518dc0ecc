//! The orders' requests and answers.

use serde::{Deserialize, Serialize};

use super::CartItem;
use crate::domain::{Notification, Order};

/// `POST /orders` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Lines; the cart's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<CartItem>>,
    /// Card token to pay at once (1 to 64 printable characters; `tok_declined` is declined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pay {
    /// Card token (1 to 64 printable characters).
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

/// `GET /orders` query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Page size, 1 to 100 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Orders to skip (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
}

/// `GET /orders` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderList {
    /// The caller's orders, newest first.
    pub orders: Vec<Order>,
}

/// `GET /orders/{id}/notifications` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationList {
    /// What the customer was told about the order, oldest first.
    pub notifications: Vec<Notification>,
}
