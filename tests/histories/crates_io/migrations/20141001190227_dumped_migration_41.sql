-- crates.io migration 20141001190227_dumped_migration_41 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ADD COLUMN gh_login VARCHAR NOT NULL;

-- migrate:down
ALTER TABLE users DROP COLUMN gh_login;
