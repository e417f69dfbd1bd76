-- crates.io migration 2023-03-23-211241_add_rust_version_to_versions (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN rust_version VARCHAR;

-- migrate:down
ALTER TABLE versions DROP COLUMN rust_version;
