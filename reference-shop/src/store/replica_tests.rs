//! Shops sharing one PostgreSQL database (issue 18 item 5), at the store: two [`Store`]s
//! on one fresh database stand for two replicas. Each test runs when
//! `LEVEE_TEST_POSTGRES_URL` is set (skipped without it, a failure under `CI=true`); the sweep
//! also runs on SQLite, where one store sweeps alone.
//!
//! - Two stores opened at once on an empty database migrate and seed it once.
//! - The outbox claim: while one relay holds a claim, the other's is `Busy`; a claim
//!   dropped without `outbox_done` (a relay that died) hands the same rows to the next claim;
//!   a finished claim deletes them, so nothing is claimed twice.
//! - The sweep: two stores sweeping at once, with the timer's own cancel racing them, cancel
//!   each overdue order exactly once (the `Applied` count is the order count) and put the
//!   stock back exactly; likewise each overdue cart.

use std::collections::HashSet;
use std::sync::Arc;

use levee::core::ManualClock;
use sqlx::Row;

use super::contention_tests::{postgres_database, stock, store};
use super::{HoldingCaps, NewOrder, OutboxClaim, PlaceOutcome, Store, Transition};
use crate::domain::ShopEvent;

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(&store.pool).await.unwrap().try_get("n").unwrap()
}

/// Two stores on one new PostgreSQL database (opened one after the other), or `None`.
async fn replicas(dir: &std::path::Path, clock: &ManualClock) -> Option<(Arc<Store>, Arc<Store>)> {
    let url = postgres_database().await?;
    let a = store(dir, Some(url.clone()), clock).await;
    let b = store(dir, Some(url), clock).await;
    Some((Arc::new(a), Arc::new(b)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_opened_together_on_an_empty_database_seed_it_once() {
    let Some(url) = postgres_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (a, b) = tokio::join!(
        store(dir.path(), Some(url.clone()), &clock),
        store(dir.path(), Some(url), &clock)
    );
    assert_eq!(count(&a, "SELECT COUNT(*) AS n FROM products").await, 1, "one seeded product");
    assert_eq!(count(&b, "SELECT COUNT(*) AS n FROM customers").await, 2, "two demo customers");
    let migrations = count(&a, "SELECT COUNT(*) AS n FROM _sqlx_migrations").await;
    assert_eq!(migrations, 4, "each migration applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_claims_the_outbox_at_a_time_and_a_dead_relays_rows_go_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let Some((a, b)) = replicas(dir.path(), &clock).await else { return };
    for order_id in 1..=3 {
        a.add_to_outbox(&ShopEvent::OrderPlaced { order_id }, 0).await.unwrap();
    }
    let OutboxClaim::Rows(claim) = a.outbox_claim(10).await.unwrap() else {
        panic!("the outbox is free")
    };
    let ids: Vec<i64> = claim.rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(matches!(b.outbox_claim(10).await.unwrap(), OutboxClaim::Busy), "a holds it");
    // a's relay dies mid-claim: its transaction ends without a delete (the pool rolls a
    // dropped transaction back on a task of its own; a dead process's connection closes).
    drop(claim);
    let claim = claim_within_5s(&b).await;
    assert_eq!(claim.rows.iter().map(|r| r.id).collect::<Vec<_>>(), ids, "the same rows");
    b.outbox_done(claim, &ids[..2]).await.unwrap();
    // Only the row not confirmed is claimed again.
    let OutboxClaim::Rows(claim) = a.outbox_claim(10).await.unwrap() else {
        panic!("b's claim ended")
    };
    assert_eq!(claim.rows.iter().map(|r| r.id).collect::<Vec<_>>(), ids[2..]);
    a.outbox_done(claim, &ids[2..]).await.unwrap();
    assert_eq!(a.outbox_len().await.unwrap(), 0);
}

/// Claims the outbox on `store`, polling while another claim holds it (5 s at most).
async fn claim_within_5s(store: &Store) -> super::Claimed {
    for _ in 0..500 {
        if let OutboxClaim::Rows(claim) = store.outbox_claim(10).await.unwrap() {
            return claim;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the outbox stayed claimed for 5 s")
}

/// Places `n` one-unit orders of product 1 for a new customer, all due at `due_ms`.
async fn overdue_orders(store: &Store, n: i64, due_ms: i64) -> Vec<i64> {
    let c = store.create_customer("sweep", 0).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let new = NewOrder {
            customer_id: c.id,
            idempotency_key: format!("k{i}"),
            lines: vec![(1, 1)],
            card: None,
            now_ms: 0,
            expires_at_ms: due_ms,
            from_cart: false,
            caps: HoldingCaps::NONE,
        };
        match store.place_order(&new).await.unwrap() {
            PlaceOutcome::Created(order) => ids.push(order.id),
            other => panic!("order {i}: {other:?}"),
        }
    }
    ids
}

/// Sweeps `store` until it finds nothing due at `now_ms`; the orders it cancelled.
async fn sweep_all(store: Arc<Store>, now_ms: i64) -> Vec<i64> {
    let mut cancelled = Vec::new();
    while let Some((id, products)) =
        store.cancel_next_overdue("payment_timeout", now_ms).await.unwrap()
    {
        assert_eq!(products, vec![1]);
        cancelled.push(id);
    }
    cancelled
}

async fn two_sweeps_and_the_timers_cancel_each_overdue_order_once(a: Arc<Store>, b: Arc<Store>) {
    let before = stock(&a).await;
    let ids = overdue_orders(&a, 12, 1_000).await;
    let not_due = overdue_orders(&a, 1, 5_000).await;
    assert_eq!(stock(&a).await, before - 13);
    // The arming shop's timers cancel every order too, racing both sweeps.
    let timers = {
        let (a, ids) = (Arc::clone(&a), ids.clone());
        tokio::spawn(async move {
            let mut applied = Vec::new();
            for id in ids {
                if let Transition::Applied(_) =
                    a.cancel_order(id, "payment_timeout", 2_000).await.unwrap()
                {
                    applied.push(id);
                }
            }
            applied
        })
    };
    let (from_a, from_b) = tokio::join!(
        tokio::spawn(sweep_all(Arc::clone(&a), 2_000)),
        tokio::spawn(sweep_all(Arc::clone(&b), 2_000))
    );
    let mut all = from_a.unwrap();
    all.extend(from_b.unwrap());
    all.extend(timers.await.unwrap());
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), ids.len(), "each order cancelled once: {all:?}");
    assert_eq!(distinct, ids.iter().copied().collect(), "every overdue order, and only those");
    // The stock came back once per order; the order not yet due holds its unit.
    assert_eq!(stock(&b).await, before - 1);
    assert!(a.cancel_next_overdue("payment_timeout", 2_000).await.unwrap().is_none());
    assert_eq!(
        b.cancel_next_overdue("payment_timeout", 6_000).await.unwrap().map(|c| c.0),
        Some(not_due[0])
    );
    // One `order_cancelled` event per order in the outbox.
    let cancels = a
        .outbox_pending(1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.event, ShopEvent::OrderCancelled { .. }))
        .count();
    assert_eq!(cancels, ids.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_on_two_stores_cancel_each_overdue_order_once_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let Some((a, b)) = replicas(dir.path(), &clock).await else { return };
    two_sweeps_and_the_timers_cancel_each_overdue_order_once(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_cancels_each_overdue_order_once_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let a = Arc::new(store(dir.path(), None, &clock).await);
    two_sweeps_and_the_timers_cancel_each_overdue_order_once(Arc::clone(&a), a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_on_two_stores_expire_each_overdue_cart_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let Some((a, b)) = replicas(dir.path(), &clock).await else { return };
    let before = stock(&a).await;
    let mut customers = Vec::new();
    for i in 0..6 {
        let c = a.create_customer(&format!("cart{i}"), 0).await.unwrap();
        a.set_cart_item(c.id, 1, 2, 0, 1_000, HoldingCaps::NONE).await.unwrap();
        customers.push(c.id);
    }
    let later = a.create_customer("later", 0).await.unwrap();
    a.set_cart_item(later.id, 1, 1, 0, 9_000, HoldingCaps::NONE).await.unwrap();
    assert_eq!(stock(&a).await, before - 13);
    let sweep = |store: Arc<Store>| async move {
        let mut expired = Vec::new();
        while let Some((customer, products)) = store.expire_next_overdue_cart(2_000).await.unwrap()
        {
            if !products.is_empty() {
                expired.push(customer);
            }
        }
        expired
    };
    // The arming shop's timer expires one cart too, racing both sweeps.
    let (x, y, timer) = tokio::join!(
        tokio::spawn(sweep(Arc::clone(&a))),
        tokio::spawn(sweep(Arc::clone(&b))),
        a.expire_cart(customers[0], 2_000)
    );
    let mut all = x.unwrap();
    all.extend(y.unwrap());
    if !timer.unwrap().is_empty() {
        all.push(customers[0]);
    }
    all.sort_unstable();
    assert_eq!(all, customers, "each overdue cart expired once");
    assert_eq!(stock(&a).await, before - 1, "the cart not yet due holds its unit");
    let expired = a
        .outbox_pending(1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.event, ShopEvent::CartExpired { .. }))
        .count();
    assert_eq!(expired, customers.len(), "one cart_expired event per cart");
}
