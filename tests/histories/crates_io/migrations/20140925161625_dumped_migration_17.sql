-- crates.io migration 20140925161625_dumped_migration_17 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ALTER COLUMN downloads DROP DEFAULT;
ALTER TABLE packages ALTER COLUMN downloads DROP DEFAULT;

-- migrate:down

