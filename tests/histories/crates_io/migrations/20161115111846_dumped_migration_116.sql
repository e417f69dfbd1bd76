-- crates.io migration 20161115111846_dumped_migration_116 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates_categories ADD CONSTRAINT fk_crates_categories_category_id FOREIGN KEY (category_id) REFERENCES categories (id) ON DELETE CASCADE;

-- migrate:down
ALTER TABLE crates_categories DROP CONSTRAINT fk_crates_categories_category_id;
