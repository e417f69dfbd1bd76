-- crates.io migration 20140929103761_dumped_migration_33 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_version_downloads_date ON version_downloads (date(date));

-- migrate:down
DROP INDEX index_version_downloads_date;
