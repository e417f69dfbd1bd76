-- crates.io migration 20150804170127_dumped_migration_97 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ALTER owner_kind DROP DEFAULT;

-- migrate:down
ALTER TABLE crate_owners ALTER owner_kind SET DEFAULT 0;
