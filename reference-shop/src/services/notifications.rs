//! Notifications: what the customer is told about each order, one message per order and kind,
//! and about their cart, one message per event id (a redelivered event does not tell twice).

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use super::Infra;
use crate::api::CartNotificationList;
use crate::api::{ApiError, NotificationList};
use crate::clock::ShopClock;
use crate::domain::{ReleasedLine, ShopEvent};
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

    /// Handles any event (subscriptions `notification-orders`, `notification-payments` and
    /// `notification-carts`): records the message it calls for.
    ///
    /// # Errors
    /// A store failure: the event is redelivered later.
    pub async fn on_event(&self, event: ShopEvent) -> Result<(), String> {
        if let ShopEvent::CartExpired { event_id, customer_id, released, .. } = &event {
            return self.cart_expired(event_id, *customer_id, released).await;
        }
        // Every other event is about an order.
        let Some(order_id) = event.order_id() else { return Ok(()) };
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
            ShopEvent::CartExpired { .. } => return Ok(()),
        };
        self.store
            .add_notification(order_id, kind, &message, self.clock.now_ms())
            .await
            .map_err(|e| e.to_string())?;
        self.sent.inc();
        Ok(())
    }

    /// A cart expired (subscription `notification-carts`): tells its customer once per event
    /// id, however often the event arrives.
    async fn cart_expired(
        &self,
        event_id: &str,
        customer_id: i64,
        released: &[ReleasedLine],
    ) -> Result<(), String> {
        let units: i64 = released.iter().map(|l| l.quantity).sum();
        let message = format!(
            "Your cart expired: its {} line(s), {units} unit(s), went back to stock.",
            released.len()
        );
        let now = self.clock.now_ms();
        let recorded = self
            .store
            .add_customer_notification(event_id, customer_id, "cart_expired", &message, now)
            .await
            .map_err(|e| e.to_string())?;
        if recorded {
            self.sent.inc();
        }
        Ok(())
    }

    /// What `customer_id` was told about their cart, oldest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn for_customer(&self, customer_id: i64) -> Result<CartNotificationList, ApiError> {
        Ok(CartNotificationList {
            notifications: self.store.customer_notifications(customer_id).await?,
        })
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
