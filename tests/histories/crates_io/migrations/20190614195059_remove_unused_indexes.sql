-- crates.io migration 2019-06-14-195059_remove_unused_indexes (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX path_categories_idx;
DROP INDEX index_version_num;

-- migrate:down
CREATE INDEX index_version_num ON versions (num);
CREATE INDEX path_categories_idx ON categories (path);
