-- crates.io migration 2017-10-16-200404_stop_lying_to_schema (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates DROP COLUMN max_version;
ALTER TABLE crates ALTER COLUMN textsearchable_index_col SET NOT NULL;
ALTER TABLE users DROP COLUMN api_token;

-- migrate:down
ALTER TABLE crates ADD COLUMN max_version VARCHAR;
ALTER TABLE crates ALTER COLUMN textsearchable_index_col DROP NOT NULL;
ALTER TABLE users ADD COLUMN api_token VARCHAR NOT NULL DEFAULT random_string(32);
