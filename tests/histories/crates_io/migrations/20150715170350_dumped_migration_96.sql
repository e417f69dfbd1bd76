-- crates.io migration 20150715170350_dumped_migration_96 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crate_owners ADD COLUMN owner_kind INTEGER NOT NULL DEFAULT 0;

-- migrate:down
ALTER TABLE crate_owners DROP COLUMN owner_kind;
