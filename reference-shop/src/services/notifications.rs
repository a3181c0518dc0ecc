//! Notifications: what the customer is told about each order, one message per order and kind
//! (a redelivered event does not tell twice).

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use super::Infra;
use crate::api::{ApiError, NotificationList};
use crate::clock::ShopClock;
use crate::domain::ShopEvent;
use crate::store::Store;

/// The notification service.
#[derive(Debug)]
pub struct Notifications {
    store: Arc<Store>,
    clock: ShopClock,
    sent: Counter,
}

impl Notifications {
    /// Notifications over `infra`.
    #[must_use]
    pub fn new(infra: &Infra) -> Self {
        Self {
            store: Arc::clone(&infra.store),
            clock: infra.clock.clone(),
            sent: infra.counters.notifications.clone(),
        }
    }

    /// Handles any event (subscriptions `notification-orders` and `notification-payments`):
    /// records the message it calls for.
    ///
    /// # Errors
    /// A store failure: the event is redelivered later.
    pub async fn on_event(&self, event: ShopEvent) -> Result<(), String> {
        let order_id = event.order_id();
        let (kind, message) = match &event {
            ShopEvent::OrderPlaced { .. } => {
                ("order_placed", format!("Order {order_id} placed; stock reserved until payment."))
            }
            ShopEvent::PaymentRequested { .. } => return Ok(()),
            ShopEvent::PaymentSucceeded { charge_id, .. } => (
                "payment_succeeded",
                format!("Payment received (charge {charge_id}); order {order_id} confirmed."),
            ),
            ShopEvent::PaymentFailed { reason, .. } => {
                ("payment_failed", format!("Payment for order {order_id} failed: {reason}."))
            }
            ShopEvent::OrderCancelled { reason, .. } => (
                "order_cancelled",
                format!("Order {order_id} cancelled ({reason}); stock released."),
            ),
            ShopEvent::Refunded { charge_id, .. } => (
                "refunded",
                format!("Charge {charge_id} refunded: order {order_id} had been cancelled."),
            ),
        };
        self.store
            .add_notification(order_id, kind, &message, self.clock.now_ms())
            .await
            .map_err(|e| e.to_string())?;
        self.sent.inc();
        Ok(())
    }

    /// What the customer was told about `order_id`, oldest first. (The caller checks the
    /// order is theirs.)
    ///
    /// # Errors
    /// Store failures.
    pub async fn for_order(&self, order_id: i64) -> Result<NotificationList, ApiError> {
        Ok(NotificationList { notifications: self.store.notifications(order_id).await? })
    }
}
