-- crates.io migration 2020-07-13-182546_remove_api_tokens_index (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_token_key;
DROP INDEX api_tokens_token_idx;

-- migrate:down
CREATE INDEX api_tokens_token_idx ON api_tokens (token);
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_token_key UNIQUE (token);
