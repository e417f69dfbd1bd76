-- crates.io migration 20151118135514_dumped_migration_102 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN max_upload_size INTEGER;

-- migrate:down
ALTER TABLE crates DROP COLUMN max_upload_size;
