//! Orders: their status in the try-confirm-cancel life, their lines.

use serde::{Deserialize, Serialize};

/// Where an order is in its try-confirm-cancel life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OrderLine {
    /// Product.
    pub product_id: i64,
    /// Units.
    pub quantity: i64,
    /// Unit price in cents at placement.
    pub unit_price_cents: i64,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    #[schema(required = true)]
    pub charge_id: Option<String>,
    /// Why the last payment attempt did not go through, if it did not.
    #[schema(required = true)]
    pub payment_error: Option<String>,
    /// Why the order was cancelled.
    #[schema(required = true)]
    pub cancel_reason: Option<String>,
    /// Placement time, Unix milliseconds.
    pub created_at_ms: i64,
    /// When an unpaid order is cancelled, Unix milliseconds.
    pub expires_at_ms: i64,
}
