-- crates.io migration 2022-08-17-073805_explicit-name (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE dependencies
    ADD COLUMN explicit_name VARCHAR NULL;

-- migrate:down
ALTER TABLE dependencies
    DROP COLUMN explicit_name;
