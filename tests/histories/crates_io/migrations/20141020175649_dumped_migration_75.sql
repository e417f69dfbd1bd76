-- crates.io migration 20141020175649_dumped_migration_75 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_name_search ON crates USING gin(textsearchable_index_col);

-- migrate:down
DROP INDEX index_crates_name_search;
