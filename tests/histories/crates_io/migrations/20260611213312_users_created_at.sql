-- crates.io migration 2026-06-11-213312-0000_users-created-at (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users
ADD COLUMN IF NOT EXISTS created_at TIMESTAMP WITH TIME ZONE NULL DEFAULT NULL,
ALTER COLUMN created_at
SET DEFAULT NOW();

COMMENT ON COLUMN users.created_at IS 'The time the user was created.';

-- migrate:down
ALTER TABLE users
DROP COLUMN IF EXISTS created_at;
