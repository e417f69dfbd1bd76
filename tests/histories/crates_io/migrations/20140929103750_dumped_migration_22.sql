-- crates.io migration 20140929103750_dumped_migration_22 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crate_created_at ON crates (created_at);

-- migrate:down
DROP INDEX index_crate_created_at;
