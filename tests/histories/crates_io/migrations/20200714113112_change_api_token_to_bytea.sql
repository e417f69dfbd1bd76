-- crates.io migration 2020-07-14-113112_change_api_token_to_bytea (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public;
ALTER TABLE api_tokens
  ALTER COLUMN token
  TYPE bytea USING decode(token, 'escape');
CREATE UNIQUE INDEX ON api_tokens (token);

-- migrate:down
ALTER TABLE api_tokens
  ALTER COLUMN token
  TYPE text USING encode(token, 'escape');
DROP INDEX api_tokens_token_idx;
