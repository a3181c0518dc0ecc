-- Cart lines reserve stock (products.stock -> products.reserved) until the cart expires.
-- Keep in step with ../sqlite/0002_cart_reservations.sql.
--
-- Carts from before this migration never reserved their stock: releasing them at expiry
-- would create stock, so they are emptied (a cart is not a promise; orders are kept).
DELETE FROM cart_items;
ALTER TABLE cart_items ADD COLUMN expires_at_ms BIGINT NOT NULL DEFAULT 0;
