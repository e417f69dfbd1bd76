-- crates.io migration 2021-05-03-174624_add_index_version_downloads_not_processed (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX IF NOT EXISTS index_version_downloads_not_processed ON version_downloads (processed) WHERE NOT processed;

-- migrate:down
DROP INDEX index_version_downloads_not_processed;
