-- crates.io migration 20141007131740_dumped_migration_66 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD COLUMN deleted BOOLEAN NOT NULL;

-- migrate:down
ALTER TABLE crate_owners DROP COLUMN deleted;
