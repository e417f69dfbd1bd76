-- crates.io migration 2025-07-16-170846_drop_gh_access_token (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users DROP COLUMN gh_access_token;

-- migrate:down
ALTER TABLE users ADD COLUMN gh_access_token VARCHAR NOT NULL DEFAULT '';
