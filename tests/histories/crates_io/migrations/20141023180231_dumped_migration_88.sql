-- crates.io migration 20141023180231_dumped_migration_88 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN repository varchar;

-- migrate:down
ALTER TABLE crates DROP COLUMN repository;
