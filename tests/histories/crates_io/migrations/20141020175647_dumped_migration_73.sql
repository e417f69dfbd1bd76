-- crates.io migration 20141020175647_dumped_migration_73 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates ADD COLUMN textsearchable_index_col tsvector;

-- migrate:down
ALTER TABLE crates DROP COLUMN textsearchable_index_col;
