-- crates.io migration 20150804170129_dumped_migration_99 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners RENAME user_id TO owner_id;

-- migrate:down
ALTER TABLE crate_owners RENAME owner_id TO user_id;
