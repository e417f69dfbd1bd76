-- crates.io migration 20141002195941_dumped_migration_48 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_follows_user_id ON follows (user_id);

-- migrate:down
DROP INDEX index_follows_user_id;
