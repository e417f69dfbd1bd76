-- crates.io migration 2025-07-16-123330_add_gh_encrypted_token (converted from Diesel's up.sql/down.sql)

-- migrate:up
alter table users
    add column gh_encrypted_token bytea;

comment on column users.gh_encrypted_token is 'Encrypted GitHub access token';

-- migrate:down
alter table users drop column gh_encrypted_token;
