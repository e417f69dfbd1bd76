-- crates.io migration 2022-08-14-090630_checksum-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions
    ADD COLUMN checksum CHAR(64) NULL;

-- migrate:down
ALTER TABLE versions
    DROP COLUMN checksum;
