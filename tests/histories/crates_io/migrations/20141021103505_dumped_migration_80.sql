-- crates.io migration 20141021103505_dumped_migration_80 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates_keywords ADD CONSTRAINT fk_crates_keywords_crate_id
                                 FOREIGN KEY (crate_id) REFERENCES crates (id);

-- migrate:down
ALTER TABLE crates_keywords DROP CONSTRAINT fk_crates_keywords_crate_id;
