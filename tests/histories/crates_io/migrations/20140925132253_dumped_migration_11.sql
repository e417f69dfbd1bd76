-- crates.io migration 20140925132253_dumped_migration_11 (converted from Diesel's up.sql/down.sql)

-- migrate:up
UPDATE versions SET updated_at = now() WHERE updated_at IS NULL;
UPDATE versions SET created_at = now() WHERE created_at IS NULL;

-- migrate:down

