//! The synchronous checkout: the customer's request waits for the payment's outcome.
//!
//! ```text
//! card on the order -> charge through the waiting pipeline -> paid:     confirm, 200
//!                                                          -> declined: cancel, 402
//!                                                          -> no answer: hand to the queue, 202
//! ```
//!
//! "No answer" is the last provider fault, the checkout's deadline (`payment.checkout`), or the
//! open breaker, which answers at once: the customer learns in a bounded time that the payment
//! is pending, and the queued path (`PaymentRequested`, redelivered with backoff, then the
//! dead-letter queue) goes on trying. 202 rather than 503: the order and its card are
//! accepted and the shop will take the payment; a 503 would invite the client to retry into
//! the provider that just failed, which the queue already does on a budget.
//!
//! No double charge: the provider is idempotent on the order id (the queued path's
//! idempotency key), so a payment made here and also by the queue charges once; the queue
//! never calls the provider for an order already paid (`Store::payable`). A checkout dropped
//! before its outcome (the client went away, the server's request deadline) hands the
//! payment to the queue on drop, so an order with a card is never left without a payment on
//! its way.

use std::time::Duration;

use super::{Orders, cancelled, check_card, reasons};
use crate::api::{ApiError, Checkout, Pay, retry_after_secs};
use crate::bus::EventBus;
use crate::domain::{Order, OrderStatus, ShopEvent};
use crate::services::Settlement;

/// `Retry-After` of a pending payment when the breaker named no wait: the queue's first
/// redelivery comes about then.
const PENDING_RETRY: Duration = Duration::from_secs(1);

/// Hands the payment of an order to the queued path when dropped armed: a payment request
/// through the outbox, written by a task of its own (a drop cannot wait, and the request
/// that dropped it may be gone). Should that write fail, the order stays unpaid with its
/// card until the next start re-drives it.
struct HandOff {
    bus: EventBus,
    now_ms: i64,
    order_id: i64,
    armed: bool,
}

impl HandOff {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for HandOff {
    fn drop(&mut self) {
        if self.armed {
            let (bus, now_ms) = (self.bus.clone(), self.now_ms);
            let event = ShopEvent::PaymentRequested { order_id: self.order_id };
            tokio::spawn(async move {
                if let Err(error) = bus.announce(event, now_ms).await {
                    tracing::error!(%error, "a checkout's payment was not handed to the queue");
                }
            });
        }
    }
}

impl Orders {
    /// Puts a card on the customer's unpaid order and charges it while the caller waits.
    ///
    /// # Errors
    /// 422 for a bad card; 404 as [`get`](Self::get); 409 when the order was cancelled;
    /// 402 `payment_declined` when the provider declined the card (the order is then
    /// cancelled, its stock released); store failures.
    pub async fn checkout(
        &self,
        customer_id: i64,
        id: i64,
        pay: Pay,
    ) -> Result<Checkout, ApiError> {
        check_card(&pay.card)?;
        let order = self.get(customer_id, id).await?;
        match order.status {
            OrderStatus::Paid => return Ok(Checkout::Paid(order)),
            OrderStatus::Cancelled => return Err(cancelled()),
            OrderStatus::AwaitingPayment => {}
        }
        let card_set = self.store.set_card_for_checkout(id, &pay.card, self.clock.now_ms()).await?;
        let payable = if card_set { self.store.payable(id).await? } else { None };
        let Some((card, amount)) = payable else {
            // It moved on meanwhile.
            return self.settled(customer_id, id).await;
        };
        let hand_off = HandOff {
            bus: self.bus.clone(),
            now_ms: self.clock.now_ms(),
            order_id: id,
            armed: true,
        };
        match self.payments.charge_waiting(id, amount, &card).await {
            Settlement::Paid(charge_id) => {
                hand_off.disarm();
                // Settle now so that the answer tells the truth; the `PaymentSucceeded` the
                // payments service announced finds the order paid already. A cancel that
                // came first is a conflict here: that event's handler refunds.
                self.confirm(id, &charge_id, self.clock.now_ms()).await?;
                self.settled(customer_id, id).await
            }
            Settlement::Declined(reason) => {
                hand_off.disarm();
                self.cancel_for(id, reasons::DECLINED).await?;
                Err(declined(&reason))
            }
            Settlement::Pending { retry_after, .. } => {
                drop(hand_off);
                let order = self.get(customer_id, id).await?;
                let wait = retry_after.unwrap_or(PENDING_RETRY);
                Ok(Checkout::Pending { order, retry_after_secs: retry_after_secs(wait) })
            }
        }
    }

    /// The answer for an order whose payment ended: paid, or 402 / 409 for a cancelled one.
    async fn settled(&self, customer_id: i64, id: i64) -> Result<Checkout, ApiError> {
        let order = self.get(customer_id, id).await?;
        match order.status {
            OrderStatus::Paid => Ok(Checkout::Paid(order)),
            OrderStatus::Cancelled if is_declined(&order) => Err(declined("card declined")),
            OrderStatus::Cancelled => Err(cancelled()),
            // Not settled yet (a payment made elsewhere is announced but not applied).
            OrderStatus::AwaitingPayment => {
                Ok(Checkout::Pending { order, retry_after_secs: retry_after_secs(PENDING_RETRY) })
            }
        }
    }
}

fn is_declined(order: &Order) -> bool {
    order.cancel_reason.as_deref() == Some(reasons::DECLINED)
}

fn declined(reason: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYMENT_REQUIRED,
        "payment_declined",
        format!("the payment was declined ({reason}); the order is cancelled"),
    )
}
