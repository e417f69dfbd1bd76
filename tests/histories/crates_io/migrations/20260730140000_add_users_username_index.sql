-- crates.io migration 2026-07-30-140000-0000_add_users_username_index (converted from Diesel's up.sql/down.sql)
-- dbops:transaction off

-- migrate:up
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_users_canon_username
ON users (canon_username(username))

-- migrate:down
DROP INDEX CONCURRENTLY IF EXISTS index_users_canon_username
