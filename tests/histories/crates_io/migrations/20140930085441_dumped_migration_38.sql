-- crates.io migration 20140930085441_dumped_migration_38 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN features VARCHAR;

-- migrate:down
ALTER TABLE versions DROP COLUMN features;
