-- crates.io migration 20141001190231_dumped_migration_45 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ADD COLUMN gh_avatar VARCHAR;

-- migrate:down
ALTER TABLE users DROP COLUMN gh_avatar;
