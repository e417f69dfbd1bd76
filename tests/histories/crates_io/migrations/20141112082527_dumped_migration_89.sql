-- crates.io migration 20141112082527_dumped_migration_89 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_email_key;

-- migrate:down

