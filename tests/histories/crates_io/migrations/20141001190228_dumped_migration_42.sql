-- crates.io migration 20141001190228_dumped_migration_42 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ADD COLUMN name VARCHAR;

-- migrate:down
ALTER TABLE users DROP COLUMN name;
