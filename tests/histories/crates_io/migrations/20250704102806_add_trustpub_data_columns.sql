-- crates.io migration 2025-07-04-102806_add_trustpub_data_columns (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- Add trustpub_data column to trustpub_tokens table
ALTER TABLE trustpub_tokens ADD COLUMN trustpub_data JSONB;
COMMENT ON COLUMN trustpub_tokens.trustpub_data IS 'JSONB data containing JWT claims from the trusted publisher (e.g., GitHub Actions context like repository, run_id, sha)';

-- Add trustpub_data column to versions table
ALTER TABLE versions ADD COLUMN trustpub_data JSONB;
COMMENT ON COLUMN versions.trustpub_data IS 'JSONB data containing JWT claims from the trusted publisher (e.g., GitHub Actions context like repository, run_id, sha)';

-- migrate:down
-- Remove trustpub_data column from versions table
ALTER TABLE versions DROP COLUMN trustpub_data;

-- Remove trustpub_data column from trustpub_tokens table  
ALTER TABLE trustpub_tokens DROP COLUMN trustpub_data;
