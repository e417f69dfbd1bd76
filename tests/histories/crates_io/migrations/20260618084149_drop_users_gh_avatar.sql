-- crates.io migration 2026-06-18-084149-0000_drop_users_gh_avatar (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- safety-assured:start
-- The column is no longer read or written. Avatars are stored in `oauth_github.avatar`.
ALTER TABLE users DROP COLUMN gh_avatar;
-- safety-assured:end

-- migrate:down
ALTER TABLE users ADD COLUMN gh_avatar VARCHAR;
