-- crates.io migration 20141020175651_dumped_migration_77 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN keywords varchar;

-- migrate:down
ALTER TABLE crates DROP COLUMN keywords;
