-- crates.io migration 20150818112907_dumped_migration_101 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners DROP CONSTRAINT crate_owners_unique_user_per_crate;
ALTER TABLE crate_owners ADD CONSTRAINT crate_owners_unique_owner_per_crate UNIQUE (owner_id, crate_id, owner_kind);

-- migrate:down
ALTER TABLE crate_owners DROP CONSTRAINT crate_owners_unique_owner_per_crate;
ALTER TABLE crate_owners ADD CONSTRAINT crate_owners_unique_user_per_crate UNIQUE (owner_id, crate_id);
