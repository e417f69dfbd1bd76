-- crates.io migration 20140925161623_dumped_migration_15 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE packages ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;

-- migrate:down
ALTER TABLE packages DROP COLUMN downloads;
