-- crates.io migration 20141007171517_dumped_migration_70 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN documentation VARCHAR;

-- migrate:down
ALTER TABLE crates DROP COLUMN documentation;
