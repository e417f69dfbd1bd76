-- crates.io migration 2026-07-15-182934-0000_drop_users_gh_encrypted_token (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- safety-assured:start
-- The column is no longer read or written. Encrypted GitHub tokens are stored in
-- `oauth_github.encrypted_token`.
ALTER TABLE users DROP COLUMN gh_encrypted_token;
-- safety-assured:end

-- migrate:down
alter table users
    add column gh_encrypted_token bytea;

comment on column users.gh_encrypted_token is 'Encrypted GitHub access token';
