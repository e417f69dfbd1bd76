-- crates.io migration 20141021103507_dumped_migration_82 (converted from Diesel's up.sql/down.sql)

-- migrate:up
CREATE INDEX index_crates_keywords_crate_id
                           ON crates_keywords (crate_id);

-- migrate:down
DROP INDEX index_crates_keywords_crate_id;
