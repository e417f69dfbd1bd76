-- crates.io migration 2025-11-19-091444-0000_add_trustpub_only_to_crates (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN trustpub_only BOOLEAN NOT NULL DEFAULT FALSE;
COMMENT ON COLUMN crates.trustpub_only IS 'When true, this crate can only be published via Trusted Publishing, not with API tokens';

-- migrate:down
ALTER TABLE crates DROP COLUMN trustpub_only;
