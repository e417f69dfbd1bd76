-- crates.io migration 20140929103752_dumped_migration_24 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_crate_id ON versions (crate_id);

-- migrate:down
DROP INDEX index_version_crate_id;
