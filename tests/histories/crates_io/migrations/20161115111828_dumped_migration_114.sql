-- crates.io migration 20161115111828_dumped_migration_114 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE TABLE crates_categories ( crate_id         INTEGER NOT NULL, category_id      INTEGER NOT NULL);

-- migrate:down
DROP TABLE crates_categories;
