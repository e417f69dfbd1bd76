-- crates.io migration 20141007131739_dumped_migration_65 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crate_owners_crate_id
                           ON crate_owners (crate_id);

-- migrate:down
DROP INDEX index_crate_owners_crate_id;
