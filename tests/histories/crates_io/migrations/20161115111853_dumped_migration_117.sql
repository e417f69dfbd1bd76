-- crates.io migration 20161115111853_dumped_migration_117 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_categories_crate_id
                           ON crates_categories (crate_id);

-- migrate:down
DROP INDEX index_crates_categories_crate_id;
