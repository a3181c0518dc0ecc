//! A dead letter as the admin API shows it.

use serde::Serialize;

use crate::domain::ShopEvent;

/// An event that failed every delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The message's sequence number, for replay.
    pub id: u64,
    /// The subscription that failed it.
    pub subscription: String,
    /// The event.
    pub event: ShopEvent,
    /// Deliveries made.
    pub deliveries: u32,
    /// Why it was given up: the last handler error (the reason its nack carried).
    pub last_error: String,
}

impl DeadLetter {
    /// The view of levee's dead letter `d` of `subscription`.
    pub(super) fn of(subscription: &str, d: &levee::queue::broker::DeadLetter<ShopEvent>) -> Self {
        use levee::queue::broker::DeadLetterReason;
        let last_error = match (&d.reason, d.last_reason()) {
            (DeadLetterReason::Terminated { reason }, _) => reason.clone(),
            (_, Some(reason)) => reason.to_owned(),
            (other, None) => format!("{other:?}"),
        };
        Self {
            id: d.seq(),
            subscription: subscription.to_owned(),
            event: d.payload().clone(),
            deliveries: d.attempts,
            last_error,
        }
    }
}
