-- crates.io migration 2025-07-16-163013_make_gh_encrypted_token_not_null (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ALTER COLUMN gh_encrypted_token SET NOT NULL;

-- migrate:down
ALTER TABLE users ALTER COLUMN gh_encrypted_token DROP NOT NULL;
