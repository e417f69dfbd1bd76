-- crates.io migration 20170322130523_version_downloads_needs_no_id (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE version_downloads ALTER COLUMN "date" TYPE date;
CREATE UNIQUE INDEX version_downloads_unique ON version_downloads (version_id, date);

-- migrate:down
ALTER TABLE version_downloads ALTER COLUMN "date" TYPE timestamp;
DROP INDEX version_downloads_unique;
