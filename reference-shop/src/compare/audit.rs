//! No order lost: every order the load generator saw acknowledged (201) is looked up in the
//! shop afterwards, and its end is counted: paid (with a charge), awaiting payment (its
//! payment event still retrying, or in the dead-letter queue, replayable), or cancelled (by
//! reason: a declined card is the story the load generator tells).

use std::collections::BTreeMap;

use levee::core::LatencyRecorder;
use serde::Serialize;

use crate::domain::OrderStatus;
use crate::loadgen::Latency;
use crate::store::{Store, StoreError};

/// What became of the orders a run placed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OrderAudit {
    /// Orders the shop acknowledged (201) to the load generator.
    pub placed: u64,
    /// Of those, found in the shop.
    pub found: u64,
    /// Acknowledged but not in the shop: lost.
    pub missing: Vec<i64>,
    /// Paid, with a charge id.
    pub paid: u64,
    /// Paid without a charge id (never expected).
    pub paid_without_charge: u64,
    /// Still awaiting payment.
    pub awaiting: u64,
    /// Cancelled, by reason.
    pub cancelled: BTreeMap<String, u64>,
    /// Dead letters in the shop's queues at the end (payments given up on, replayable).
    pub dead_letters: u64,
    /// From placement to the `payment_succeeded` notification of each paid order, ms.
    pub time_to_paid_ms: Latency,
}

impl OrderAudit {
    /// Whether every acknowledged order is in the shop, every paid one with its charge.
    #[must_use]
    pub fn nothing_lost(&self) -> bool {
        self.missing.is_empty() && self.paid_without_charge == 0
    }
}

/// Looks up each of `placed` in `store`; `dead_letters` is the queues' count at the end.
///
/// # Errors
/// The store's, when a look-up fails (an order not found is counted, not an error).
pub async fn audit(
    store: &Store,
    placed: &[i64],
    dead_letters: u64,
) -> Result<OrderAudit, StoreError> {
    let mut a = OrderAudit { placed: placed.len() as u64, dead_letters, ..OrderAudit::default() };
    let to_paid = LatencyRecorder::with_stripes(1);
    for &id in placed {
        let Some(order) = store.order(id).await? else {
            a.missing.push(id);
            continue;
        };
        a.found += 1;
        match order.status {
            OrderStatus::Paid if order.charge_id.is_none() => a.paid_without_charge += 1,
            OrderStatus::Paid => {
                a.paid += 1;
                let paid_at = store
                    .notifications(id)
                    .await?
                    .into_iter()
                    .find(|n| n.kind == "payment_succeeded")
                    .map(|n| n.created_at_ms);
                if let Some(at) = paid_at {
                    let ms = u64::try_from(at - order.created_at_ms).unwrap_or(0);
                    to_paid.record_nanos(ms.saturating_mul(1_000_000));
                }
            }
            OrderStatus::AwaitingPayment => a.awaiting += 1,
            OrderStatus::Cancelled => {
                let reason = order.cancel_reason.unwrap_or_else(|| "no reason".to_owned());
                *a.cancelled.entry(reason).or_default() += 1;
            }
        }
    }
    a.time_to_paid_ms = Latency::of(&to_paid.merged());
    Ok(a)
}
