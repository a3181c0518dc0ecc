//! The stock ledger at the end of a soak against the one at its start (`GET /admin/stock`).
//!
//! Every unit of a product is on the shelf, reserved or sold: `stock + reserved + sold` is
//! the same at the end as at the start (nothing in a soak changes stock by hand), no count is
//! negative, sales are never undone (`sold` does not fall), and every reserved unit is held
//! by an order awaiting payment or a cart (`reserved == held_by_orders + held_by_carts`).
//! `sold` is summed from the paid orders' lines, so a paid order whose units were not taken
//! from the reservation, or were taken twice, breaks the first rule.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::{ProductStock, StockLedger};

/// Violations listed at most (their count is always exact).
pub const MAX_LISTED: usize = 20;

/// What the stock check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockVerdict {
    /// Whether every unit is accounted for.
    pub passed: bool,
    /// Products whose ledger is wrong.
    pub violation_count: usize,
    /// The first [`MAX_LISTED`], one line each.
    pub violations: Vec<String>,
    /// Products checked.
    pub products: usize,
    /// Units of every product (on the shelf + reserved + sold) at the start.
    pub units_at_start: i64,
    /// The same at the end.
    pub units_at_end: i64,
    /// Units sold during the run.
    pub sold_during_run: i64,
    /// Units reserved at the end, by orders and by carts.
    pub reserved_at_end: i64,
}

fn total(p: &ProductStock) -> i64 {
    p.stock + p.reserved + p.sold
}

/// What is wrong with one product, `before` the run and `after` it.
fn product_violation(before: Option<&ProductStock>, after: &ProductStock) -> Option<String> {
    let id = after.product_id;
    let mut wrong = Vec::new();
    if after.stock < 0 || after.reserved < 0 || after.sold < 0 {
        wrong.push(format!(
            "a negative count (stock {}, reserved {}, sold {})",
            after.stock, after.reserved, after.sold
        ));
    }
    let held = after.held_by_orders + after.held_by_carts;
    if after.reserved != held {
        wrong.push(format!(
            "{} units reserved but {held} held ({} by orders, {} by carts)",
            after.reserved, after.held_by_orders, after.held_by_carts
        ));
    }
    match before {
        None => wrong.push("not in the ledger at the start".to_owned()),
        Some(before) => {
            if total(after) != total(before) {
                wrong.push(format!(
                    "{} units at the start, {} at the end (stock {} + reserved {} + sold {})",
                    total(before),
                    total(after),
                    after.stock,
                    after.reserved,
                    after.sold
                ));
            }
            if after.sold < before.sold {
                wrong.push(format!("sold fell from {} to {}", before.sold, after.sold));
            }
        }
    }
    (!wrong.is_empty()).then(|| format!("product {id}: {}", wrong.join("; ")))
}

/// Checks the ledger `after` the run against the one `before` it.
#[must_use]
pub fn check(before: &StockLedger, after: &StockLedger) -> StockVerdict {
    let start: BTreeMap<i64, &ProductStock> =
        before.products.iter().map(|p| (p.product_id, p)).collect();
    let mut violations: Vec<String> = after
        .products
        .iter()
        .filter_map(|p| product_violation(start.get(&p.product_id).copied(), p))
        .collect();
    let end: BTreeMap<i64, &ProductStock> =
        after.products.iter().map(|p| (p.product_id, p)).collect();
    violations.extend(
        start
            .keys()
            .filter(|id| !end.contains_key(id))
            .map(|id| format!("product {id}: in the ledger at the start, gone at the end")),
    );
    let sum = |l: &StockLedger, f: fn(&ProductStock) -> i64| l.products.iter().map(f).sum::<i64>();
    let violation_count = violations.len();
    violations.truncate(MAX_LISTED);
    StockVerdict {
        passed: violation_count == 0 && !after.products.is_empty(),
        violation_count,
        violations,
        products: after.products.len(),
        units_at_start: sum(before, total),
        units_at_end: sum(after, total),
        sold_during_run: sum(after, |p| p.sold) - sum(before, |p| p.sold),
        reserved_at_end: sum(after, |p| p.reserved),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: i64, stock: i64, reserved: i64, sold: i64, orders: i64, carts: i64) -> ProductStock {
        ProductStock {
            product_id: id,
            stock,
            reserved,
            sold,
            held_by_orders: orders,
            held_by_carts: carts,
        }
    }

    fn ledger(products: Vec<ProductStock>) -> StockLedger {
        StockLedger { products }
    }

    fn start() -> StockLedger {
        ledger(vec![p(1, 100, 0, 0, 0, 0), p(2, 50, 2, 8, 2, 0)])
    }

    #[test]
    fn units_moved_between_shelf_reservations_and_sales_pass() {
        // Product 1: 30 sold, 5 held by orders and 3 by carts; product 2: its reservation paid.
        let end = ledger(vec![p(1, 62, 8, 30, 5, 3), p(2, 50, 0, 10, 0, 0)]);
        let v = check(&start(), &end);
        assert!(v.passed, "{v:?}");
        assert_eq!((v.units_at_start, v.units_at_end), (160, 160));
        assert_eq!((v.sold_during_run, v.reserved_at_end, v.products), (32, 8, 2));
    }

    #[test]
    fn a_unit_created_or_lost_fails() {
        // A release applied twice: stock came back without leaving the reservation.
        let end = ledger(vec![p(1, 101, 0, 0, 0, 0), p(2, 49, 2, 8, 2, 0)]);
        let v = check(&start(), &end);
        assert!(!v.passed);
        assert_eq!(v.violation_count, 2);
        assert_eq!(
            v.violations[0],
            "product 1: 100 units at the start, 101 at the end (stock 101 + reserved 0 + sold 0)"
        );
        assert!(v.violations[1].starts_with("product 2: 60 units at the start, 59"));
    }

    #[test]
    fn a_reservation_nobody_holds_fails() {
        // A paid order whose units stayed reserved: sold counts them and so does reserved.
        let end = ledger(vec![p(1, 90, 10, 10, 0, 0), p(2, 50, 2, 8, 2, 0)]);
        let v = check(&start(), &end);
        assert!(!v.passed);
        assert_eq!(v.violation_count, 1);
        assert!(v.violations[0].contains("10 units reserved but 0 held"), "{v:?}");
        assert!(v.violations[0].contains("100 units at the start, 110 at the end"), "{v:?}");
    }

    #[test]
    fn negative_counts_undone_sales_and_missing_products_fail() {
        let end = ledger(vec![p(1, -1, 1, 100, 1, 0), p(3, 5, 0, 0, 0, 0)]);
        let v = check(&start(), &end);
        assert!(!v.passed);
        assert_eq!(v.violation_count, 3, "{v:?}");
        assert!(v.violations[0].starts_with("product 1: a negative count"));
        assert_eq!(v.violations[1], "product 3: not in the ledger at the start");
        assert_eq!(v.violations[2], "product 2: in the ledger at the start, gone at the end");
        let end = ledger(vec![p(1, 100, 0, 0, 0, 0), p(2, 52, 2, 6, 2, 0)]);
        assert_eq!(check(&start(), &end).violations, ["product 2: sold fell from 8 to 6"]);
        // An empty ledger proves nothing.
        assert!(!check(&ledger(Vec::new()), &ledger(Vec::new())).passed);
    }

    #[test]
    fn the_list_is_bounded_and_the_count_exact() {
        let before = ledger((1..=50).map(|id| p(id, 10, 0, 0, 0, 0)).collect());
        let after = ledger((1..=50).map(|id| p(id, 11, 0, 0, 0, 0)).collect());
        let v = check(&before, &after);
        assert_eq!((v.violation_count, v.violations.len()), (50, MAX_LISTED));
    }
}
