-- crates.io migration 20140925132254_dumped_migration_12 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ALTER COLUMN updated_at DROP DEFAULT;
ALTER TABLE versions ALTER COLUMN created_at DROP DEFAULT;
ALTER TABLE packages ALTER COLUMN updated_at DROP DEFAULT;
ALTER TABLE packages ALTER COLUMN created_at DROP DEFAULT;

-- migrate:down

