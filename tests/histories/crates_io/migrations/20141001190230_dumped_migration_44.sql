-- crates.io migration 20141001190230_dumped_migration_44 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;

-- migrate:down
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
