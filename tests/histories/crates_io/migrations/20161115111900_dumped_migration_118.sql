-- crates.io migration 20161115111900_dumped_migration_118 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_categories_category_id
                           ON crates_categories (category_id);

-- migrate:down
DROP INDEX index_crates_categories_category_id;
