-- crates.io migration 2020-08-25-101655_lock_users (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users
    ADD COLUMN account_lock_reason VARCHAR DEFAULT NULL,
    ADD COLUMN account_lock_until TIMESTAMP DEFAULT NULL;

-- migrate:down
ALTER TABLE users
    DROP COLUMN account_lock_reason,
    DROP COLUMN account_lock_until;
