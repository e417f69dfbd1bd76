-- crates.io migration 2017-10-17-052814_add_readme_file_to_crates (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN readme_file VARCHAR;

-- migrate:down
ALTER TABLE crates DROP COLUMN readme_file;
