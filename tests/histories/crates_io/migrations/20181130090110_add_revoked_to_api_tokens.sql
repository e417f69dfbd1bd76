-- crates.io migration 2018-11-30-090110_add_revoked_to_api_tokens (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE api_tokens ADD COLUMN revoked BOOLEAN NOT NULL DEFAULT 'f';

-- migrate:down
ALTER TABLE api_tokens DROP COLUMN revoked;
