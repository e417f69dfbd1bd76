-- crates.io migration 2026-05-27-120000_add_username_to_users (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ADD COLUMN IF NOT EXISTS username VARCHAR;
COMMENT ON COLUMN users.username IS 'Username associated with the user''s crates.io account, independent of linked OAuth usernames.';

-- migrate:down
ALTER TABLE users DROP COLUMN username;
