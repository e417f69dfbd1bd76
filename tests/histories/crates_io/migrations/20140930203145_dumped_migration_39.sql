-- crates.io migration 20140930203145_dumped_migration_39 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_dependencies_version_id ON dependencies (version_id);

-- migrate:down
DROP INDEX index_dependencies_version_id;
