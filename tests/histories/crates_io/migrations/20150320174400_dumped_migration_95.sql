-- crates.io migration 20150320174400_dumped_migration_95 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_keywords_lower_keyword ON keywords (lower(keyword));

-- migrate:down
DROP INDEX index_keywords_lower_keyword;
