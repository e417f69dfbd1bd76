-- crates.io migration 20140929103749_dumped_migration_21 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crate_updated_at ON crates (updated_at);

-- migrate:down
DROP INDEX index_crate_updated_at;
