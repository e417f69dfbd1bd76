-- crates.io migration 20141120162357_dumped_migration_90 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE dependencies ADD COLUMN kind INTEGER;

-- migrate:down
ALTER TABLE dependencies DROP COLUMN kind;
