-- crates.io migration 20141007171516_dumped_migration_69 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN homepage VARCHAR;

-- migrate:down
ALTER TABLE crates DROP COLUMN homepage;
