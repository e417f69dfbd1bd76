-- crates.io migration 20140929103757_dumped_migration_29 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crate_downloads_crate_id ON crate_downloads (crate_id);

-- migrate:down
DROP INDEX index_crate_downloads_crate_id;
