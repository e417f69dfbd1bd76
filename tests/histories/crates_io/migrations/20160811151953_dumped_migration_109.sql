-- crates.io migration 20160811151953_dumped_migration_109 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ADD COLUMN gh_id INTEGER;

-- migrate:down
ALTER TABLE users DROP COLUMN gh_id;
