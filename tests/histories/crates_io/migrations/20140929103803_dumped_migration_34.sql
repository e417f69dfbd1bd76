-- crates.io migration 20140929103763_dumped_migration_34 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_downloads_processed ON version_downloads (processed)
                        WHERE processed = FALSE;

-- migrate:down
DROP INDEX index_version_downloads_processed;
