//! Notifications about a customer rather than an order (a cart that expired), recorded once
//! per event id: the notification consumer may see an event twice (a redelivery, or a
//! re-publish from the outbox outside the broker's dedup window) and tells once.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::CustomerNotification;

impl Store {
    /// Records `message` for `customer_id` unless a notification of `event_id` exists.
    /// Returns whether it was recorded now.
    ///
    /// # Errors
    /// Database failures (the event is redelivered).
    pub async fn add_customer_notification(
        &self,
        event_id: &str,
        customer_id: i64,
        kind: &str,
        message: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.faults.store_delay().await;
        let done = sqlx::query(
            "INSERT INTO customer_notifications \
             (event_id, customer_id, kind, message, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(customer_id)
        .bind(kind)
        .bind(message)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `customer_id`'s notifications about their cart, oldest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn customer_notifications(
        &self,
        customer_id: i64,
    ) -> Result<Vec<CustomerNotification>, StoreError> {
        self.faults.store_delay().await;
        let rows = sqlx::query(
            "SELECT event_id, kind, message, created_at_ms FROM customer_notifications \
             WHERE customer_id = $1 ORDER BY id",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CustomerNotification {
                    event_id: r.try_get("event_id")?,
                    kind: r.try_get("kind")?,
                    message: r.try_get("message")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect()
    }
}
