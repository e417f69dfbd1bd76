-- crates.io migration 20141021103510_dumped_migration_85 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_keywords_crates_cnt
                           ON keywords (crates_cnt);

-- migrate:down
DROP INDEX index_keywords_crates_cnt;
