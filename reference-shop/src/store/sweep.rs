//! The store side of the sweep that takes over the timers of a shop that is gone
//! (`crate::sweep`): claim one overdue unpaid order, or one overdue cart, and end it in the
//! same transaction.
//!
//! Each call is one transaction that picks the oldest overdue row and ends it with the same
//! guarded statements as the timers (the order's `WHERE status = 'awaiting_payment'`, the
//! cart's `DELETE ... WHERE expires_at_ms <= now` under the cart's lock), with the outbox event
//! in the same transaction. On PostgreSQL the pick is `FOR UPDATE SKIP LOCKED`: two shops
//! sweeping at once take different rows instead of queueing on the same one, and a timer
//! cancelling the same order meanwhile waits for the row and then finds it cancelled
//! (`Transition::Already`). "Exactly once" is the guarded transition's, never the timing's.
//! SQLite's write transaction is exclusive (`BEGIN IMMEDIATE`), so it needs no row lock.

use sqlx::Row;

use super::catalog::release_cart_in;
use super::{Backend, Store, StoreError};

/// Locks the picked row on PostgreSQL, skipping rows another transaction holds.
fn skip_locked(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    }
}

impl Store {
    /// Cancels the unpaid order whose deadline passed longest ago (by `now_ms`) and that no
    /// other transaction holds, for `reason`. Returns it with the products whose stock came
    /// back; `None` when no such order is left.
    ///
    /// # Errors
    /// Database failures (nothing changed).
    pub async fn cancel_next_overdue(
        &self,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
        self.faults.store_delay().await;
        let pick = format!(
            "SELECT id FROM orders WHERE status = 'awaiting_payment' AND expires_at_ms <= $1 \
             ORDER BY expires_at_ms, id LIMIT 1{}",
            skip_locked(self.backend)
        );
        let pick = &pick;
        self.retrying(|| async move {
            let mut tx = self.write_tx().await?;
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(pick.as_str()))
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?
            else {
                tx.rollback().await?;
                return Ok(None);
            };
            let order_id: i64 = row.try_get("id")?;
            // Held since the pick: the guarded update cannot miss.
            let products = self.cancel_in(&mut tx, order_id, reason, now_ms).await?;
            tx.commit().await?;
            Ok(products.map(|p| (order_id, p)))
        })
        .await
    }

    /// Expires a cart whose reservation ended by `now_ms` (the lowest customer id first) and
    /// that no other transaction holds: its lines go, their stock comes back and `cart_expired` goes to the
    /// outbox. Returns the customer with the products released; `None` when no such cart is
    /// left.
    ///
    /// # Errors
    /// Database failures (nothing changed).
    pub async fn expire_next_overdue_cart(
        &self,
        now_ms: i64,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
        self.faults.store_delay().await;
        // The customer's row is the cart's lock (`lock_cart`): the pick takes it.
        let pick = format!(
            "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM cart_items \
             WHERE expires_at_ms <= $1) ORDER BY id LIMIT 1{}",
            skip_locked(self.backend)
        );
        let pick = &pick;
        self.retrying(|| async move {
            let mut tx = self.write_tx().await?;
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(pick.as_str()))
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?
            else {
                tx.rollback().await?;
                return Ok(None);
            };
            let customer_id: i64 = row.try_get("id")?;
            let products = release_cart_in(&mut tx, customer_id, Some(now_ms), now_ms).await?;
            tx.commit().await?;
            Ok(Some((customer_id, products)))
        })
        .await
    }
}
