-- crates.io migration 20141023180230_dumped_migration_87 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN license varchar;

-- migrate:down
ALTER TABLE crates DROP COLUMN license;
