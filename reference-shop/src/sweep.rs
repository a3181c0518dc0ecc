//! Timers across replicas: the store sweep that ends the unpaid orders and carts whose timer
//! died with the shop that armed it.
//!
//! Each shop arms a timer for each unpaid order and each cart it touches
//! ([`crate::timeouts`]): that is what makes an order cancelled on time in the normal case.
//! When shops share one PostgreSQL database, the shop that armed a timer may die before it
//! fires. So each of them also sweeps the store every `replicas.sweep_interval`: it claims
//! the overdue unpaid orders and carts one transaction each (`FOR UPDATE SKIP LOCKED`, so two
//! sweeping shops take different rows) and ends them with the same guarded transition the
//! timers use, outbox event included. Whoever comes first (the arming shop's timer, a
//! sweep, a customer's cancel, a payment) moves the order; everyone after finds it moved and
//! changes nothing, so each order is cancelled once, its stock released once, and one
//! `order_cancelled` event written.
//!
//! The bound: with the arming shop alive, an order is cancelled within the timer's tick of
//! its deadline. With it dead, by the first sweep of a live shop after the deadline: at most
//! `deadline + sweep_interval` plus one sweep's transactions. A shop that starts later also
//! re-arms every pending timer from the store ([`crate::app::Shop::recover`]).
//!
//! The sweep runs on PostgreSQL only: the embedded SQLite database has one shop (the data
//! directory's lock), whose timers are re-armed from the store at its next start.

use std::sync::Arc;

use levee::core::Clock;
use tokio::sync::watch;

use crate::clock::ShopClock;
use crate::config::ReplicasConfig;
use crate::services::{Carts, Orders};

/// Sweeps every `config.sweep_interval` (on `clock`) until `stop` turns true; a sweep that
/// filled its batch sweeps again at once.
pub async fn run(
    orders: Arc<Orders>,
    carts: Arc<Carts>,
    clock: ShopClock,
    config: ReplicasConfig,
    mut stop: watch::Receiver<bool>,
) {
    let interval = u64::try_from(config.sweep_interval.as_nanos()).unwrap_or(u64::MAX);
    let mut full = false;
    loop {
        if !full {
            let wake = clock.now().saturating_add(interval);
            tokio::select! {
                () = clock.sleep_until(wake) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        if *stop.borrow() {
            return;
        }
        let swept = orders.sweep_overdue(config.sweep_batch).await;
        let carts_swept = carts.sweep_overdue(config.sweep_batch).await;
        full = false;
        match swept {
            Ok(n) => full |= n == config.sweep_batch,
            Err(e) => tracing::warn!(error = %e, "sweep of overdue orders failed; next round"),
        }
        match carts_swept {
            Ok(n) => full |= n == config.sweep_batch,
            Err(e) => tracing::warn!(error = %e, "sweep of overdue carts failed; next round"),
        }
    }
}
