-- crates.io migration 20141021103506_dumped_migration_81 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates_keywords ADD CONSTRAINT fk_crates_keywords_keyword_id
                                 FOREIGN KEY (keyword_id) REFERENCES keywords (id);

-- migrate:down
ALTER TABLE crates_keywords DROP CONSTRAINT fk_crates_keywords_keyword_id;
