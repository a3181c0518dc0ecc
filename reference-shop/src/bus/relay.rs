//! The outbox relay: publishes the events the store's transactions left in the outbox, then
//! deletes them.
//!
//! One task reads the pending rows oldest first (up to [`BATCH`]), publishes them all at
//! once (the durable broker covers the whole batch with one group commit; publishes are
//! started in row order, so events of one order keep their order) with `outbox-<row id>` as
//! each message id, and deletes the rows whose publish the broker confirmed. A failed publish
//! leaves its row for the next round, after a backoff. A crash between the confirmation and
//! the delete publishes the row again after the restart under the same id, which the
//! broker's dedup window drops. The task wakes when a service says it wrote to the outbox,
//! and every [`POLL`] in any case (rows written by a process that died before it said so).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::EventBus;
use crate::store::Store;

/// Rows published per round.
const BATCH: i64 = 256;
/// How often the relay looks at the outbox when nobody woke it.
const POLL: Duration = Duration::from_secs(1);
/// The first pause after a failed round; it doubles up to [`POLL`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// The message id of the outbox row `id`.
#[must_use]
pub(super) fn message_id(id: i64) -> String {
    format!("outbox-{id}")
}

/// Publishes pending outbox rows until aborted.
pub(super) async fn run(bus: EventBus, store: Arc<Store>, wake: Arc<Notify>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        // Registered before the read, so a wake-up during the round is not missed.
        let woken = wake.notified();
        let mut woken = std::pin::pin!(woken);
        woken.as_mut().enable();
        let failed = match store.outbox_pending(BATCH).await {
            Ok(rows) if rows.is_empty() => {
                let _ = tokio::time::timeout(POLL, woken).await;
                continue;
            }
            Ok(rows) => {
                let publishes = rows
                    .iter()
                    .map(|row| bus.publish_as(Some(message_id(row.id)), row.event.clone()));
                let results = futures::future::join_all(publishes).await;
                let mut done = Vec::with_capacity(rows.len());
                let mut failed = 0_u64;
                for (row, result) in rows.iter().zip(results) {
                    match result {
                        Ok(()) => done.push(row.id),
                        Err(e) => {
                            failed += 1;
                            tracing::warn!(id = row.id, error = %e, "outbox event not published; retrying");
                        }
                    }
                }
                if let Err(e) = store.outbox_done(&done).await {
                    // Published but kept: published again later, deduplicated by id.
                    tracing::warn!(error = %e, "published outbox rows not deleted");
                    failed += 1;
                }
                bus.count_publish_failures(failed);
                failed > 0
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox not read; retrying");
                true
            }
        };
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(POLL);
        } else {
            backoff = FIRST_BACKOFF;
        }
    }
}
