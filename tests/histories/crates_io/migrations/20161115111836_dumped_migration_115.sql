-- crates.io migration 20161115111836_dumped_migration_115 (converted from Diesel's up.sql/down.sql)

-- migrate:up
ALTER TABLE crates_categories ADD CONSTRAINT fk_crates_categories_crate_id
                                 FOREIGN KEY (crate_id) REFERENCES crates (id);

-- migrate:down
ALTER TABLE crates_categories DROP CONSTRAINT fk_crates_categories_crate_id;
