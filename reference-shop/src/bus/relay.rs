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
//!
//! Replicas on one PostgreSQL database share the outbox: each round is a claim
//! ([`Store::outbox_claim`]) that holds the outbox's advisory lock until its rows are
//! deleted, so one relay publishes at a time, each row once in the normal case and in row
//! order; a relay that finds the outbox claimed pauses [`BUSY_PAUSE`] and tries again. A
//! relay that dies mid-claim frees the lock with its connection, and the next claim
//! publishes its rows again under the same message ids (deduplicated by the broker).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::EventBus;
use crate::store::{OutboxClaim, Store};

/// Rows published per round.
const BATCH: i64 = 256;
/// How often the relay looks at the outbox when nobody woke it.
const POLL: Duration = Duration::from_secs(1);
/// How long a relay waits when another shop's relay holds the outbox (PostgreSQL replicas):
/// that relay publishes every pending row, this shop's too, so the pause only spreads the
/// claims; a wake-up ends it early.
const BUSY_PAUSE: Duration = Duration::from_millis(50);
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
        let failed = match store.outbox_claim(BATCH).await {
            Ok(OutboxClaim::Busy) => {
                // Another shop's relay publishes the outbox (ours included) right now.
                let _ = tokio::time::timeout(BUSY_PAUSE, woken).await;
                continue;
            }
            Ok(OutboxClaim::Rows(claim)) if claim.rows.is_empty() => {
                // Ends the claim (an empty one deletes nothing).
                let _ = store.outbox_done(claim, &[]).await;
                let _ = tokio::time::timeout(POLL, woken).await;
                continue;
            }
            Ok(OutboxClaim::Rows(claim)) => {
                let publishes = claim
                    .rows
                    .iter()
                    .map(|row| bus.publish_as(Some(message_id(row.id)), row.event.clone()));
                let results = futures::future::join_all(publishes).await;
                let mut done = Vec::with_capacity(claim.rows.len());
                let mut failed = 0_u64;
                for (row, result) in claim.rows.iter().zip(results) {
                    match result {
                        Ok(()) => done.push(row.id),
                        Err(e) => {
                            failed += 1;
                            tracing::warn!(id = row.id, error = %e, "outbox event not published; retrying");
                        }
                    }
                }
                if let Err(e) = store.outbox_done(claim, &done).await {
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
