-- crates.io migration 2026-06-17-110629-0000_versions_checksum_drop_not_null (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- safety-assured:start
-- The previous release stopped selecting `checksum` into the `Version` read
-- model and reads the digest from `tar_sha256` instead, so no running code
-- depends on `checksum` being non-null. Making it nullable lets this release
-- stop writing it before the column is dropped.
ALTER TABLE versions ALTER COLUMN checksum DROP NOT NULL;
-- safety-assured:end

-- migrate:down
ALTER TABLE versions ALTER COLUMN checksum SET NOT NULL;
