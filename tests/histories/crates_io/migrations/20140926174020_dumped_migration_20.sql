-- crates.io migration 20140926174020_dumped_migration_20 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE packages RENAME TO crates;
ALTER TABLE versions RENAME COLUMN package_id TO crate_id;

-- migrate:down
ALTER TABLE crates RENAME TO packages;
ALTER TABLE versions RENAME COLUMN crate_id TO package_id;
