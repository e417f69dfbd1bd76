-- crates.io migration 2025-06-26-183025_add-linecounts-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
-- Add line count statistics column to versions table
ALTER TABLE versions
ADD COLUMN linecounts JSONB DEFAULT NULL;

-- Add comment explaining the column
COMMENT ON COLUMN versions.linecounts IS 'Source Lines of Code statistics for this version, stored as JSON with language breakdown and totals.';

-- migrate:down
-- Remove line count statistics column from versions table
ALTER TABLE versions 
DROP COLUMN linecounts;
