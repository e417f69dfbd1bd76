-- crates.io migration 20141022110441_dumped_migration_86 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE dependencies ADD COLUMN target varchar;

-- migrate:down
ALTER TABLE dependencies DROP COLUMN target;
