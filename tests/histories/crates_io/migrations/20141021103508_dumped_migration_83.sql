-- crates.io migration 20141021103508_dumped_migration_83 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_keywords_keyword_id
                           ON crates_keywords (keyword_id);

-- migrate:down
DROP INDEX index_crates_keywords_keyword_id;
