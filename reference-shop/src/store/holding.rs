//! What one customer holds reserved, and the caps on it (`limits.max_reserved_units`,
//! `limits.max_unpaid_orders`): units across their cart and unpaid orders, and the number
//! of unpaid orders.
//!
//! Every change that can raise a holding (a cart line going up, an order placed) runs in a
//! transaction that first locks the customer (`catalog::lock_cart`:
//! PostgreSQL's row lock, SQLite's one write lock), then reads the holding and checks the
//! change against the caps before it commits. So the changes of one customer are checked
//! one after the other, each against what the previous ones left: no two concurrent orders
//! can pass the check on the same holding and exceed a cap together.

use serde::Serialize;
use sqlx::Row;

use super::StoreError;
use crate::config::LimitsConfig;

/// What a customer holds reserved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Holding {
    /// Units in their cart and unpaid orders.
    pub units: i64,
    /// Their unpaid orders.
    pub unpaid_orders: i64,
}

/// The caps on what one customer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldingCaps {
    /// Units at most (cart and unpaid orders together).
    pub units: i64,
    /// Unpaid orders at most.
    pub unpaid_orders: i64,
}

impl HoldingCaps {
    /// No caps.
    pub const NONE: Self = Self { units: i64::MAX, unpaid_orders: i64::MAX };

    /// The caps `limits` sets.
    #[must_use]
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            units: i64::from(limits.max_reserved_units),
            unpaid_orders: i64::from(limits.max_unpaid_orders),
        }
    }
}

/// Which cap a change would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// `limits.max_reserved_units`.
    MaxReservedUnits,
    /// `limits.max_unpaid_orders`.
    MaxUnpaidOrders,
}

impl Cap {
    /// Its name in the settings and in error bodies.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxReservedUnits => "max_reserved_units",
            Self::MaxUnpaidOrders => "max_unpaid_orders",
        }
    }
}

/// A change refused because it would exceed a cap; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverCap {
    /// The cap.
    pub cap: Cap,
    /// Its value.
    pub limit: i64,
    /// What the customer holds now (before the refused change).
    pub held: Holding,
    /// What the change asked for in the cap's unit: units it would add, or one order.
    pub requested: i64,
}

impl HoldingCaps {
    /// `None` when a customer holding `held` may add `units` units (and `orders` unpaid
    /// orders); else the cap that refuses it. A change that adds nothing is never refused
    /// (lowering a cart line, or checking out a cart, under caps lowered since).
    #[must_use]
    pub fn check(&self, held: Holding, units: i64, orders: i64) -> Option<OverCap> {
        if orders > 0 && held.unpaid_orders.saturating_add(orders) > self.unpaid_orders {
            return Some(OverCap {
                cap: Cap::MaxUnpaidOrders,
                limit: self.unpaid_orders,
                held,
                requested: orders,
            });
        }
        if units > 0 && held.units.saturating_add(units) > self.units {
            return Some(OverCap {
                cap: Cap::MaxReservedUnits,
                limit: self.units,
                held,
                requested: units,
            });
        }
        None
    }
}

/// What `customer_id` holds, read in `tx` (which should hold the customer's lock).
pub(super) async fn holding(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    customer_id: i64,
) -> Result<Holding, StoreError> {
    // SUM is NUMERIC on PostgreSQL: cast, so both databases answer a BIGINT.
    let row = sqlx::query(
        "SELECT \
         CAST((SELECT COALESCE(SUM(quantity), 0) FROM cart_items WHERE customer_id = $1) \
              AS BIGINT) AS cart_units, \
         CAST((SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i \
               JOIN orders o ON o.id = i.order_id \
               WHERE o.customer_id = $1 AND o.status = 'awaiting_payment') AS BIGINT) \
              AS order_units, \
         CAST((SELECT COUNT(*) FROM orders \
               WHERE customer_id = $1 AND status = 'awaiting_payment') AS BIGINT) AS unpaid",
    )
    .bind(customer_id)
    .fetch_one(&mut **tx)
    .await?;
    let cart: i64 = row.try_get("cart_units")?;
    let orders: i64 = row.try_get("order_units")?;
    Ok(Holding { units: cart + orders, unpaid_orders: row.try_get("unpaid")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_refuse_only_what_would_exceed_them() {
        let caps = HoldingCaps { units: 10, unpaid_orders: 2 };
        let held = Holding { units: 8, unpaid_orders: 1 };
        assert_eq!(caps.check(held, 2, 1), None, "up to the cap is fine");
        let over = caps.check(held, 3, 0).unwrap();
        assert_eq!(
            (over.cap, over.limit, over.held, over.requested),
            (Cap::MaxReservedUnits, 10, held, 3)
        );
        let full = Holding { units: 0, unpaid_orders: 2 };
        assert_eq!(caps.check(full, 1, 1).unwrap().cap, Cap::MaxUnpaidOrders);
        // Nothing added, nothing refused, even over caps lowered since.
        let over_already = Holding { units: 50, unpaid_orders: 5 };
        assert_eq!(caps.check(over_already, 0, 0), None);
        assert_eq!(caps.check(over_already, -3, 0), None);
        assert_eq!(HoldingCaps::NONE.check(over_already, i64::MAX, 1), None);
    }
}
