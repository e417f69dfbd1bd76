-- crates.io migration 2019-08-28-224353_remove_licenses_column_from_crates (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- ALERT! DESTRUCTIVE MIGRATION
-- DO NOT DEPLOY UNTIL PREVIOUS COMMIT IS DEPLOYED
ALTER TABLE crates DROP COLUMN license;

-- migrate:down
-- This file should undo anything in `up.sql`
ALTER TABLE crates ADD COLUMN license VARCHAR;
