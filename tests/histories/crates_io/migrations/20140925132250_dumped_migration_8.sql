-- crates.io migration 20140925132250_dumped_migration_8 (converted from Diesel's up.sql/down.sql)

-- migrate:up
UPDATE packages SET updated_at = now() WHERE updated_at IS NULL;
UPDATE packages SET created_at = now() WHERE created_at IS NULL;

-- migrate:down

