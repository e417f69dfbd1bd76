-- crates.io migration 2020-07-13-125308_remove_api_token_default (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE api_tokens ALTER COLUMN token DROP DEFAULT;

-- migrate:down
ALTER TABLE api_tokens ALTER COLUMN token SET DEFAULT random_string(32);
