-- Issue 15: a cart that expires writes a `cart_expired` event through the outbox (no new
-- column: the outbox's order_id is 0 for an event about no order). The notification
-- consumer records what it tells the customer here, once per event id (a redelivered or
-- re-published event finds its row and does nothing).
-- Keep in step with ../sqlite/0004_cart_expired.sql.
CREATE TABLE customer_notifications (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX customer_notifications_by_customer ON customer_notifications (customer_id, id);
