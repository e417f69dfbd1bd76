-- The concurrent drop.
DROP INDEX CONCURRENTLY IF EXISTS orders_created_idx;
