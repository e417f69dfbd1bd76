-- crates.io migration 20140925161624_dumped_migration_16 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;

-- migrate:down
ALTER TABLE versions DROP COLUMN downloads;
