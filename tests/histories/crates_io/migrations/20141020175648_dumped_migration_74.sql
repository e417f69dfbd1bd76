-- crates.io migration 20141020175648_dumped_migration_74 (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP INDEX index_crates_name_search;

-- migrate:down
CREATE INDEX index_crates_name_search ON crates USING gin(to_tsvector('english', name));
