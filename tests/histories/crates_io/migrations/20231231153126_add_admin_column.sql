-- crates.io migration 2023-12-31-153126_add_admin_column (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE users ADD COLUMN is_admin BOOL DEFAULT false NOT NULL;

-- migrate:down
ALTER TABLE users DROP COLUMN is_admin;
