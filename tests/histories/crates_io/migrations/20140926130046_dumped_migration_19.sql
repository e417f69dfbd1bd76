-- crates.io migration 20140926130046_dumped_migration_19 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ALTER COLUMN downloads SET NOT NULL;

-- migrate:down
ALTER TABLE versions ALTER COLUMN downloads DROP NOT NULL;
