-- crates.io migration 20141013115510_dumped_migration_72 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN yanked BOOLEAN DEFAULT FALSE;

-- migrate:down
ALTER TABLE versions DROP COLUMN yanked;
