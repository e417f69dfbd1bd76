-- crates.io migration 20150209202206_dumped_migration_92 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD CONSTRAINT crate_owners_unique_user_per_crate UNIQUE (user_id, crate_id);

-- migrate:down
ALTER TABLE crate_owners DROP CONSTRAINT crate_owners_unique_user_per_crate;
