-- crates.io migration 2023-06-14-084044_add-token-expiry (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE api_tokens ADD expired_at TIMESTAMP;

-- migrate:down
ALTER TABLE api_tokens DROP expired_at;
