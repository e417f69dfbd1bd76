-- crates.io migration 20140929103760_dumped_migration_32 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_downloads_version_id ON version_downloads (version_id);

-- migrate:down
DROP INDEX index_version_downloads_version_id;
