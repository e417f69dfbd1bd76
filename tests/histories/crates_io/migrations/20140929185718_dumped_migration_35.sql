-- crates.io migration 20140929185718_dumped_migration_35 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_name_search ON crates USING gin(to_tsvector('english', name));

-- migrate:down
DROP INDEX index_crates_name_search;
