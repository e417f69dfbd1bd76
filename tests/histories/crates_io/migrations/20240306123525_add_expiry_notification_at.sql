-- crates.io migration 2024-03-06-123525_add_expiry_notification_at (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE api_tokens ADD expiry_notification_at TIMESTAMP;

COMMENT ON COLUMN api_tokens.expiry_notification_at IS 'timestamp of when the user was informed about their token''s impending expiration';

-- migrate:down
-- Remove the `expiry_notification_at` column from the `api_tokens` table.
ALTER TABLE api_tokens DROP expiry_notification_at;
