//! The transactional outbox: events written in the same transaction as the state change they
//! report, for the bus's relay (`bus::relay`) to publish and then delete.
//!
//! A transaction that changes an order calls [`enqueue`] before it commits, so the event
//! exists exactly when the change does: a crash before the commit loses both, a crash after
//! it keeps both, and the relay publishes what is pending after the restart. The row id is
//! the event's message id: a row published but not yet deleted when the process died is
//! published again with the same id, and the broker's dedup window drops the copy (outside
//! the window the copy is delivered, and the consumers, idempotent per order and kind, take
//! it as a redelivery).
//!
//! Several shops on one PostgreSQL database share one outbox: a relay claims the rows it
//! publishes ([`Store::outbox_claim`]), so two relays do not publish each row twice, and a
//! relay that died mid-claim leaves its rows to the next.

use sqlx::{Row, Transaction};

use super::{Backend, Store, StoreError};
use crate::domain::ShopEvent;

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The row id: the event's message id.
    pub id: i64,
    /// The event.
    pub event: ShopEvent,
}

/// The advisory lock a relay holds on PostgreSQL while it publishes the outbox (see
/// [`Store::outbox_claim`]).
pub const RELAY_LOCK: i64 = 0x6c65_7665_654f_7574; // "leveeOut"

/// What [`Store::outbox_claim`] got.
#[derive(Debug)]
pub enum OutboxClaim {
    /// Another shop's relay is publishing the outbox now: try again shortly.
    Busy,
    /// Rows for this relay to publish (none when the outbox is empty).
    Rows(Claimed),
}

/// Outbox rows claimed by one relay until [`Store::outbox_done`] (dropping it without that
/// gives the rows back, unpublished as far as the store knows).
#[derive(Debug)]
pub struct Claimed {
    /// The rows, oldest first.
    pub rows: Vec<OutboxRow>,
    /// The claim's transaction on PostgreSQL (it holds the relay lock).
    tx: Option<Transaction<'static, sqlx::Any>>,
}

/// Adds `event` to the outbox inside `tx`: it is published if, and only if, `tx` commits.
///
/// # Errors
/// Database failures (the caller's transaction fails with them).
pub(super) async fn enqueue(
    tx: &mut Transaction<'static, sqlx::Any>,
    event: &ShopEvent,
    now_ms: i64,
) -> Result<(), StoreError> {
    // A ShopEvent is plain data: serialising it cannot fail.
    let payload = serde_json::to_string(event).unwrap_or_default();
    sqlx::query(
        "INSERT INTO outbox (topic, order_id, payload, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(event.topic())
    // The order it reports, 0 for an event about no order (a cart's).
    .bind(event.order_id().unwrap_or(0))
    .bind(payload)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Adds `event` to the outbox on its own (an event that reports no change of the shop's
    /// own state, such as a payment's outcome at the provider).
    ///
    /// # Errors
    /// Database failures.
    pub async fn add_to_outbox(&self, event: &ShopEvent, now_ms: i64) -> Result<(), StoreError> {
        self.retrying(|| async {
            let mut tx = self.write_tx().await?;
            enqueue(&mut tx, event, now_ms).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Claims up to `limit` pending events, oldest first, for this relay to publish; hand
    /// the claim back with [`Store::outbox_done`]. A row whose payload does not decode is
    /// marked poisoned (kept for an operator, never published) and skipped.
    ///
    /// On PostgreSQL, where several shops may relay one outbox, the claim is a transaction
    /// holding the outbox's advisory lock ([`RELAY_LOCK`]) until the rows are deleted: while
    /// one relay publishes, another's claim is [`OutboxClaim::Busy`] (it tries again
    /// shortly), so in the normal case each row is published once, by one relay, in row
    /// order. A relay that dies mid-claim loses its connection, PostgreSQL ends the
    /// transaction and frees the lock, and the next relay claims the same rows: they are
    /// published again under the same message ids, which the broker's dedup window drops.
    /// SQLite has one shop per database (the data directory's lock): no lock is taken.
    ///
    /// # Errors
    /// Database failures.
    pub async fn outbox_claim(&self, limit: i64) -> Result<OutboxClaim, StoreError> {
        let mut tx = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                let locked: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1) AS locked")
                    .bind(RELAY_LOCK)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("locked")?;
                if !locked {
                    tx.rollback().await?;
                    return Ok(OutboxClaim::Busy);
                }
                Some(tx)
            }
        };
        let rows = self.read_pending(tx.as_mut(), limit).await?;
        Ok(OutboxClaim::Rows(Claimed { rows, tx }))
    }

    /// Up to `limit` pending events, oldest first, without claiming them (for tests and
    /// tools; the relay claims). Poisons what does not decode, as a claim does.
    ///
    /// # Errors
    /// Database failures.
    pub async fn outbox_pending(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.read_pending(None, limit).await
    }

    /// Reads pending rows through `tx` (the pool without one), marking the rows that do not
    /// decode poisoned.
    async fn read_pending(
        &self,
        mut tx: Option<&mut Transaction<'static, sqlx::Any>>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let select =
            sqlx::query("SELECT id, payload FROM outbox WHERE poisoned = 0 ORDER BY id LIMIT $1")
                .bind(limit);
        let rows = match &mut tx {
            Some(tx) => select.fetch_all(&mut ***tx).await?,
            None => select.fetch_all(&self.pool).await?,
        };
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let payload: String = row.try_get("payload")?;
            match serde_json::from_str(&payload) {
                Ok(event) => pending.push(OutboxRow { id, event }),
                Err(e) => {
                    tracing::error!(id, error = %e, "outbox row does not decode; marked poisoned");
                    let poison =
                        sqlx::query("UPDATE outbox SET poisoned = 1 WHERE id = $1").bind(id);
                    match &mut tx {
                        Some(tx) => poison.execute(&mut ***tx).await?,
                        None => poison.execute(&self.pool).await?,
                    };
                }
            }
        }
        Ok(pending)
    }

    /// Deletes the claimed rows `ids` (their events were confirmed by the broker) and ends
    /// the claim; the claim's other rows stay for the next one.
    ///
    /// # Errors
    /// Database failures: the rows stay and are published again (deduplicated by id).
    pub async fn outbox_done(&self, claim: Claimed, ids: &[i64]) -> Result<(), StoreError> {
        let Claimed { tx, .. } = claim;
        let mut tx = tx;
        for chunk in ids.chunks(100) {
            let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            // Integers formatted by us: nothing to escape.
            let delete = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM outbox WHERE id IN ({list})"
            )));
            match &mut tx {
                Some(tx) => delete.execute(&mut **tx).await?,
                None => delete.execute(&self.pool).await?,
            };
        }
        if let Some(tx) = tx {
            tx.commit().await?;
        }
        Ok(())
    }

    /// How many events wait in the outbox (poisoned rows included).
    ///
    /// # Errors
    /// Database failures.
    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox").fetch_one(&self.pool).await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_through_its_payload() {
        let events = [
            ShopEvent::OrderPlaced { order_id: 1 },
            ShopEvent::PaymentRequested { order_id: 2 },
            ShopEvent::PaymentSucceeded { order_id: 3, charge_id: "ch_3".into() },
            ShopEvent::PaymentFailed { order_id: 4, reason: "declined".into() },
            ShopEvent::OrderCancelled { order_id: 5, reason: "payment_timeout".into() },
            ShopEvent::Refunded { order_id: 6, charge_id: "ch_6".into() },
            ShopEvent::CartExpired {
                event_id: crate::domain::cart_expired_id(7, 900),
                customer_id: 7,
                reserved_until_ms: 900,
                released: vec![crate::domain::ReleasedLine { product_id: 3, quantity: 2 }],
            },
        ];
        for e in events {
            let text = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<ShopEvent>(&text).unwrap(), e);
        }
    }
}
