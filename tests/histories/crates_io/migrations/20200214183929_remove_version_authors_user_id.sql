-- crates.io migration 2020-02-14-183929_remove_version_authors_user_id (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE version_authors DROP COLUMN user_id;

-- migrate:down
ALTER TABLE version_authors ADD COLUMN user_id INTEGER;
