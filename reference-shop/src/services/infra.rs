//! What every service may use: the store, the event bus, the timers, the clock and the shop's
//! counters.

use std::sync::Arc;

use crate::bus::EventBus;
use crate::clock::ShopClock;
use crate::metrics::ShopCounters;
use crate::store::Store;
use crate::timeouts::ShopTimers;

/// The shared infrastructure, handed to each service's constructor; a service keeps what it
/// uses.
#[derive(Debug, Clone)]
pub struct Infra {
    /// Storage.
    pub store: Arc<Store>,
    /// Events between the services.
    pub bus: EventBus,
    /// Unpaid-order and cart-reservation timers.
    pub timers: Arc<ShopTimers>,
    /// Time.
    pub clock: ShopClock,
    /// The shop's own counters (orders placed, payments, ...), exported on `/metrics`.
    pub counters: ShopCounters,
}
