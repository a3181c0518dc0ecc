//! The store on its own: migrations and seed on first open (and not again), the
//! try-confirm-cancel transitions and their idempotency, atomic multi-line reservation, cart
//! reservations (held, handed over to an order, expired, and the expiry's event written to
//! the outbox in the same transaction, recorded once per event id by its consumer).

mod common;

use std::sync::Arc;

use common::{TestDb, test_config};
use levee::core::ManualClock;
use reference_shop::ShopClock;
use reference_shop::domain::{OrderStatus, ReleasedLine, ShopEvent, cart_expired_id};
use reference_shop::faults::{FaultSettings, Faults};
use reference_shop::store::catalog::CartChange;
use reference_shop::store::{
    DEMO_CUSTOMERS, HoldingCaps, NewOrder, PlaceOutcome, Store, Transition,
};

async fn open(db: &TestDb, products: u32) -> Store {
    let mut config = test_config();
    config.storage.seed_products = products;
    db.apply(&mut config);
    let faults = Arc::new(Faults::new(FaultSettings::default()));
    Store::open(&config.storage, faults, ShopClock::manual(ManualClock::new()))
        .await
        .expect("store opens")
}

fn order(customer_id: i64, key: &str, lines: Vec<(i64, i64)>) -> NewOrder {
    NewOrder {
        customer_id,
        idempotency_key: key.to_owned(),
        lines,
        card: Some("tok_visa".to_owned()),
        now_ms: 1_000,
        expires_at_ms: 2_000,
        from_cart: false,
        caps: HoldingCaps::NONE,
    }
}

async fn all(store: &Store) -> Vec<reference_shop::domain::Product> {
    let q = reference_shop::store::catalog::ProductQuery { limit: 1000, ..Default::default() };
    store.products(&q).await.unwrap()
}

async fn migrates_and_seeds_once(db: TestDb) {
    let store = open(&db, 120).await;
    assert_eq!(all(&store).await.len(), 120);
    let alice = store.customer_by_key(DEMO_CUSTOMERS[0].1).await.unwrap().unwrap();
    assert_eq!(alice.name, "alice");
    store.close().await;
    // A second open finds the schema and the data: no second migration, no second seed.
    let store = open(&db, 500).await;
    assert_eq!(all(&store).await.len(), 120);
    store.close().await;
}

async fn transitions_are_idempotent_and_atomic(db: TestDb) {
    let store = open(&db, 10).await;
    let customer = store.create_customer("t", 0).await.unwrap();
    let stock = |id| {
        let store = &store;
        async move {
            let p = store.product(id).await.unwrap().unwrap();
            (p.stock, p.reserved)
        }
    };
    let (s1, _) = stock(1).await;
    let (s2, _) = stock(2).await;

    // A multi-line order that cannot be filled reserves nothing.
    let too_much = order(customer.id, "k0", vec![(1, 1), (2, s2 + 1)]);
    assert_eq!(
        store.place_order(&too_much).await.unwrap(),
        PlaceOutcome::OutOfStock { product_id: 2, available: s2 }
    );
    assert_eq!(stock(1).await, (s1, 0));
    assert_eq!(
        store.place_order(&order(customer.id, "k0b", vec![(99, 1)])).await.unwrap(),
        PlaceOutcome::UnknownProduct(99)
    );

    // Try.
    let PlaceOutcome::Created(a) =
        store.place_order(&order(customer.id, "k1", vec![(1, 2), (2, 1)])).await.unwrap()
    else {
        panic!("order a not created")
    };
    assert_eq!(stock(1).await, (s1 - 2, 2));
    assert!(matches!(
        store.place_order(&order(customer.id, "k1", vec![(1, 2), (2, 1)])).await.unwrap(),
        PlaceOutcome::Replayed(o) if o.id == a.id
    ));
    assert_eq!(store.pending_orders().await.unwrap().len(), 1);

    // Confirm, twice; cancel after confirm is refused.
    assert!(matches!(store.confirm_order(a.id, "ch", 5).await.unwrap(), Transition::Applied(_)));
    assert_eq!(store.confirm_order(a.id, "ch", 6).await.unwrap(), Transition::Already);
    assert_eq!(
        store.cancel_order(a.id, "late", 7).await.unwrap(),
        Transition::Conflict(OrderStatus::Paid)
    );
    assert_eq!(stock(1).await, (s1 - 2, 0));

    // Cancel, twice; confirm after cancel is refused; stock comes back once.
    let PlaceOutcome::Created(b) =
        store.place_order(&order(customer.id, "k2", vec![(1, 3)])).await.unwrap()
    else {
        panic!("order b not created")
    };
    assert_eq!(stock(1).await, (s1 - 5, 3));
    assert!(matches!(
        store.cancel_order(b.id, "timeout", 8).await.unwrap(),
        Transition::Applied(_)
    ));
    assert_eq!(store.cancel_order(b.id, "timeout", 9).await.unwrap(), Transition::Already);
    assert_eq!(
        store.confirm_order(b.id, "ch", 10).await.unwrap(),
        Transition::Conflict(OrderStatus::Cancelled)
    );
    assert_eq!(stock(1).await, (s1 - 2, 0));
    assert_eq!(store.cancel_order(12345, "x", 11).await.unwrap(), Transition::NotFound);
    assert!(store.pending_orders().await.unwrap().is_empty());

    // Notifications: once per order and kind.
    for _ in 0..2 {
        store.add_notification(a.id, "order_placed", "hello", 1).await.unwrap();
    }
    assert_eq!(store.notifications(a.id).await.unwrap().len(), 1);
    let listed = store.orders_of(customer.id, 10, 0).await.unwrap();
    assert_eq!(listed.iter().map(|o| o.id).collect::<Vec<_>>(), vec![b.id, a.id]);
    assert_eq!(listed[1].lines.len(), 2);
    store.close().await;
}

async fn cart_reservations_move_into_orders_and_expire(db: TestDb) {
    let store = open(&db, 10).await;
    let c = store.create_customer("c", 0).await.unwrap();
    let stock = |id| {
        let store = &store;
        async move {
            let p = store.product(id).await.unwrap().unwrap();
            (p.stock, p.reserved)
        }
    };
    let done = |expires| CartChange::Done { stock_changed: true, expires_at_ms: Some(expires) };
    let (s3, s4, s5) = (stock(3).await.0, stock(4).await.0, stock(5).await.0);

    // A cart line reserves its stock; more than is left changes nothing.
    assert_eq!(
        store.set_cart_item(c.id, 3, 2, 1, 100, HoldingCaps::NONE).await.unwrap(),
        done(100)
    );
    assert_eq!(stock(3).await, (s3 - 2, 2));
    assert_eq!(
        store.set_cart_item(c.id, 3, s3 + 1, 2, 200, HoldingCaps::NONE).await.unwrap(),
        CartChange::OutOfStock { available: s3 - 2 }
    );
    assert_eq!(
        store.set_cart_item(c.id, 99, 1, 2, 200, HoldingCaps::NONE).await.unwrap(),
        CartChange::UnknownProduct
    );
    assert_eq!(stock(3).await, (s3 - 2, 2));
    assert_eq!(store.cart(c.id).await.unwrap().expires_at_ms, Some(100));

    // Lowering a line gives the difference back; every change extends the whole cart.
    assert_eq!(
        store.set_cart_item(c.id, 4, 1, 3, 300, HoldingCaps::NONE).await.unwrap(),
        done(300)
    );
    assert_eq!(
        store.set_cart_item(c.id, 3, 1, 3, 300, HoldingCaps::NONE).await.unwrap(),
        done(300)
    );
    assert_eq!(stock(3).await, (s3 - 1, 1));
    assert_eq!(store.pending_carts().await.unwrap(), vec![(c.id, 300)]);

    // An order from the cart takes over the line it holds in that quantity (product 3: no
    // second reservation); a line in another quantity is reserved afresh and stays in the cart.
    let from_cart = NewOrder { from_cart: true, ..order(c.id, "cart", vec![(3, 1), (4, 2)]) };
    assert!(matches!(store.place_order(&from_cart).await.unwrap(), PlaceOutcome::Created(_)));
    assert_eq!(stock(3).await, (s3 - 1, 1));
    assert_eq!(stock(4).await, (s4 - 3, 3));
    let cart = store.cart(c.id).await.unwrap();
    assert_eq!(cart.lines.iter().map(|l| (l.product_id, l.quantity)).collect::<Vec<_>>(), [(4, 1)]);

    // Expiry: nothing before its time, then the cart's stock comes back, once.
    assert!(store.expire_cart(c.id, 299).await.unwrap().is_empty());
    assert_eq!(store.expire_cart(c.id, 300).await.unwrap(), vec![4]);
    assert!(store.expire_cart(c.id, 301).await.unwrap().is_empty());
    assert_eq!(stock(4).await, (s4 - 2, 2), "the order's two units stay reserved");
    assert!(store.pending_carts().await.unwrap().is_empty());
    assert_eq!(store.cart(c.id).await.unwrap().expires_at_ms, None);

    // Emptying the cart releases it too.
    store.set_cart_item(c.id, 5, 3, 4, 400, HoldingCaps::NONE).await.unwrap();
    assert_eq!(stock(5).await, (s5 - 3, 3));
    assert_eq!(store.clear_cart(c.id, 5).await.unwrap(), vec![5]);
    assert_eq!(stock(5).await, (s5, 0));

    // Concurrent changes of one line (several connections at once) never leak a
    // reservation: what is reserved is what the cart holds.
    let s6 = stock(6).await.0;
    let changes = (1..=24).map(|q| store.set_cart_item(c.id, 6, q % 5, 10, 500, HoldingCaps::NONE));
    for change in futures::future::join_all(changes).await {
        assert!(matches!(change.unwrap(), CartChange::Done { .. }));
    }
    let held = store.cart(c.id).await.unwrap().lines.first().map_or(0, |l| l.quantity);
    assert_eq!(stock(6).await, (s6 - held, held));
    store.close().await;
}

/// The events waiting in the outbox, oldest first.
async fn events(store: &Store) -> Vec<ShopEvent> {
    store.outbox_pending(100).await.unwrap().into_iter().map(|r| r.event).collect()
}

async fn an_expired_cart_writes_one_event_with_its_release(db: TestDb) {
    let store = open(&db, 10).await;
    let c = store.create_customer("c", 0).await.unwrap();
    let before = events(&store).await;
    store.set_cart_item(c.id, 3, 2, 1, 100, HoldingCaps::NONE).await.unwrap();
    store.set_cart_item(c.id, 4, 1, 2, 200, HoldingCaps::NONE).await.unwrap();
    // Emptying the cart by hand is no expiry: no event.
    store.set_cart_item(c.id, 5, 1, 3, 300, HoldingCaps::NONE).await.unwrap();
    store.set_cart_item(c.id, 5, 0, 3, 300, HoldingCaps::NONE).await.unwrap();
    assert_eq!(events(&store).await, before);

    // Before its end nothing expires and nothing is written.
    assert!(store.expire_cart(c.id, 299).await.unwrap().is_empty());
    assert_eq!(events(&store).await, before);

    // At its end the lines go, their stock comes back, and the same transaction writes one
    // `cart_expired` with what was released; a second expiry finds nothing and writes nothing.
    assert_eq!(store.expire_cart(c.id, 300).await.unwrap(), vec![3, 4]);
    let expected = ShopEvent::CartExpired {
        event_id: cart_expired_id(c.id, 300),
        customer_id: c.id,
        reserved_until_ms: 300,
        released: vec![
            ReleasedLine { product_id: 3, quantity: 2 },
            ReleasedLine { product_id: 4, quantity: 1 },
        ],
    };
    let after = events(&store).await;
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after[before.len()..], [expected]);
    assert!(store.expire_cart(c.id, 10_000).await.unwrap().is_empty());
    assert_eq!(events(&store).await.len(), after.len());

    // The consumer's record is kept once per event id.
    let id = cart_expired_id(c.id, 300);
    assert!(store.add_customer_notification(&id, c.id, "cart_expired", "m", 5).await.unwrap());
    assert!(!store.add_customer_notification(&id, c.id, "cart_expired", "m", 6).await.unwrap());
    let other = cart_expired_id(c.id, 900);
    assert!(store.add_customer_notification(&other, c.id, "cart_expired", "n", 7).await.unwrap());
    let notes = store.customer_notifications(c.id).await.unwrap();
    assert_eq!(
        notes.iter().map(|n| (n.event_id.as_str(), n.created_at_ms)).collect::<Vec<_>>(),
        [(id.as_str(), 5), (other.as_str(), 7)]
    );
    let d = store.create_customer("d", 0).await.unwrap();
    assert!(store.customer_notifications(d.id).await.unwrap().is_empty());
    store.close().await;
}

on_both_databases!(
    migrates_and_seeds_once,
    transitions_are_idempotent_and_atomic,
    cart_reservations_move_into_orders_and_expire,
    an_expired_cart_writes_one_event_with_its_release,
);
