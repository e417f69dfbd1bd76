-- crates.io migration 2018-04-13-170549_properly_index_version_downloads (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE UNIQUE INDEX index_version_downloads_not_processed
  ON version_downloads (id)
  WHERE processed = FALSE;
DROP INDEX index_version_downloads_processed;

-- migrate:down
CREATE INDEX index_version_downloads_processed
  ON version_downloads (processed)
  WHERE processed = FALSE;
DROP INDEX index_version_downloads_not_processed;
