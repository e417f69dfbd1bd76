-- crates.io migration 20140929103751_dumped_migration_23 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crate_downloads ON crates (downloads);

-- migrate:down
DROP INDEX index_crate_downloads;
