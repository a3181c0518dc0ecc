-- The transactional outbox: each event is written in the same transaction as the state
-- change it reports, and a relay publishes it to the event broker (the row id is the
-- message id, so a re-publish after a crash is deduplicated) and deletes it only once the
-- broker confirmed it. A row whose payload does not decode is kept, marked `poisoned`.
-- Keep in step with ../postgres/0003_outbox.sql.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    order_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    poisoned BIGINT NOT NULL DEFAULT 0
);
