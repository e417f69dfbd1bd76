-- crates.io migration 2024-02-12-120203_remove_unused_index (converted from Diesel's up.sql/down.sql)
-- dbops:transaction off

-- migrate:up
DROP INDEX CONCURRENTLY IF EXISTS index_follows_user_id;

-- migrate:down
CREATE INDEX index_follows_user_id ON follows (user_id);
