-- crates.io migration 2026-06-17-094708-0000_add_versions_tar_sha256 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN IF NOT EXISTS tar_sha256 bytea;

COMMENT ON COLUMN versions.tar_sha256 IS 'SHA256 checksum of the crate tarball, stored as 32 raw bytes.';

ALTER TABLE versions
    ADD CONSTRAINT versions_tar_sha256_len
    CHECK (octet_length(tar_sha256) = 32) NOT VALID;

-- migrate:down
ALTER TABLE versions DROP CONSTRAINT IF EXISTS versions_tar_sha256_len;
ALTER TABLE versions DROP COLUMN IF EXISTS tar_sha256;
