-- crates.io migration 2019-11-11-162609_drop_email_from_user (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users DROP COLUMN email CASCADE;

-- migrate:down
-- Not reversible
