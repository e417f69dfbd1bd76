-- crates.io migration 20141007131741_dumped_migration_67 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD COLUMN updated_at TIMESTAMP NOT NULL;

-- migrate:down
ALTER TABLE crate_owners DROP COLUMN updated_at;
