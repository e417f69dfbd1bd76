-- crates.io migration 20170611165120_add_license_to_versions (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN license VARCHAR;

-- migrate:down
ALTER TABLE versions DROP COLUMN license;
