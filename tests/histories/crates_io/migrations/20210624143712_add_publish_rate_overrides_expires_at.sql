-- crates.io migration 2021-06-24-143712_add_publish_rate_overrides_expires_at (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE publish_rate_overrides ADD COLUMN expires_at TIMESTAMP;

-- migrate:down
ALTER TABLE publish_rate_overrides DROP COLUMN expires_at;
