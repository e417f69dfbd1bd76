-- crates.io migration 20170311180634_remove_semver_index (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX versions_to_semver_no_prerelease_idx;

-- migrate:down
CREATE INDEX versions_to_semver_no_prerelease_idx ON versions (crate_id, to_semver_no_prerelease(num) DESC NULLS LAST) WHERE NOT yanked;
