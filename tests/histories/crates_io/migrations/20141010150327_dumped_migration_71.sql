-- crates.io migration 20141010150327_dumped_migration_71 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN readme VARCHAR;

-- migrate:down
ALTER TABLE crates DROP COLUMN readme;
