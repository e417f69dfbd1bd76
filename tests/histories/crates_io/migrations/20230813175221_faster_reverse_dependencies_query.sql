-- crates.io migration 2023-08-13-175221_faster_reverse_dependencies_query (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE versions ADD COLUMN IF NOT EXISTS semver_no_prerelease semver_triple GENERATED ALWAYS AS (to_semver_no_prerelease(num)) STORED;

-- migrate:down
ALTER TABLE versions DROP COLUMN IF EXISTS semver_no_prerelease;
