-- crates.io migration 20140926130044_dumped_migration_18 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE packages ADD COLUMN max_version VARCHAR;

-- migrate:down
ALTER TABLE packages DROP COLUMN max_version;
