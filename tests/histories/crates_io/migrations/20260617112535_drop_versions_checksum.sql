-- crates.io migration 2026-06-17-112535-0000_drop_versions_checksum (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- safety-assured:start
-- The previous release stopped reading and writing `checksum` entirely, so no
-- running code references the column when it is dropped.
ALTER TABLE versions DROP COLUMN checksum;
-- safety-assured:end

-- migrate:down
-- This only restores the column shape; the dropped checksum data is gone.
ALTER TABLE versions ADD COLUMN checksum char(64);
