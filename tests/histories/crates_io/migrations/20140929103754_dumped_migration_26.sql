-- crates.io migration 20140929103754_dumped_migration_26 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_dependencies_version_id ON version_dependencies (version_id);

-- migrate:down
DROP INDEX index_version_dependencies_version_id;
