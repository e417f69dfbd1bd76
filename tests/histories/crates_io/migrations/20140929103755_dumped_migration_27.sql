-- crates.io migration 20140929103755_dumped_migration_27 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_dependencies_depends_on_id ON version_dependencies (depends_on_id);

-- migrate:down
DROP INDEX index_version_dependencies_depends_on_id;
