-- crates.io migration 20140930203146_dumped_migration_40 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_dependencies_crate_id ON dependencies (crate_id);

-- migrate:down
DROP INDEX index_dependencies_crate_id;
