-- crates.io migration 20140929103758_dumped_migration_30 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crate_downloads_date ON crate_downloads (date(date));

-- migrate:down
DROP INDEX index_crate_downloads_date;
