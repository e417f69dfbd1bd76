-- crates.io migration 2019-05-13-192055_remove_readme_from_crates (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- Your SQL goes here
ALTER TABLE crates DROP COLUMN readme_file;

-- migrate:down
-- This file should undo anything in `up.sql`
ALTER TABLE crates ADD COLUMN readme_file VARCHAR;
