-- crates.io migration 20141021103509_dumped_migration_84 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_keywords_keyword
                           ON keywords (keyword);

-- migrate:down
DROP INDEX index_keywords_keyword;
