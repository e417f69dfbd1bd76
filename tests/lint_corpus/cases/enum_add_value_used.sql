-- The new value cannot be used before the ADD VALUE commits: the migration fails.
ALTER TYPE order_status ADD VALUE 'cancelled';
UPDATE orders SET status = 'cancelled' WHERE id = 1;
